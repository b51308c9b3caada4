"""Every S3 key / URL builder of the library against the real examples of mwnb/contracts/s3_layouts.yaml."""
import json
import pytest

from mwnb.contracts import layout, layout_examples, load_contract
from mwnb.cloud import cloud_uri, https_url, rosat_events_uri, rosat_file_uri

HEASARC = "s3://nasa-heasarc/"


@pytest.fixture
def real_endpoints(monkeypatch):
    "The default (real) https root, even when a local archive of the test session has pointed it at 127.0.0.1."
    monkeypatch.delenv("MWNB_HEASARC_HTTPS", raising=False)


@pytest.mark.parametrize("example", layout_examples("rosat_processed"))
def test_rosat_paths_are_the_archive_paths(example):
    "rosat_processed: directory = leading digit of the sequence number + 00000 (rs931315n00 -> 900000), hri/pspc by prefix."
    inst_dir, seq, name = example.split("/")[2], example.split("/")[5], example.rsplit("/", 1)[1]
    instrument = {"hri": "HRI", "pspc": "PSPCB"}[inst_dir]
    product = name[len(seq) + 1:].split(".")[0]
    if product == "bas":
        assert rosat_events_uri(seq.upper(), instrument) == HEASARC + example
    assert rosat_file_uri(seq.upper(), instrument, product) == HEASARC + example


def test_rosat_layout_has_all_five_real_examples():
    assert len(layout_examples("rosat_processed")) == 5


def test_swift_observation_directory_is_the_month_of_start_time():
    "swift_observation: ObsID 00031968059 started at MJD 55807.7458 (2011-09-03): swift/data/obs/2011_09/00031968059/."
    from mwnb.swift import swift_obs_uri
    assert swift_obs_uri("00031968059", 55807.7458333333) == layout_examples("swift_observation")[0]


@pytest.mark.parametrize("example", layout_examples("chandra_obsid"))
def test_chandra_obsid_layout(example):
    "chandra_obsid: chandra/data/byobsid/<last digit>/<obsid>/{primary|secondary}/."
    from mwnb.chandra import chandra_obsid_prefix, obsid_of_key
    part = example.split("/")[5]
    assert example.startswith(chandra_obsid_prefix(1990, part))
    assert obsid_of_key(example) == 1990 and obsid_of_key(HEASARC + example) == 1990


def test_caldb_rmf_uri_and_its_https_mirror(real_endpoints):
    "caldb_swift_xrt_rmf: the https and s3 examples are one file."
    from mwnb.swift import caldb_rmf_uri
    https, s3 = layout_examples("caldb_swift_xrt_rmf")
    assert caldb_rmf_uri("swxpc0to12s6_20130101v014.rmf") == s3
    assert https_url(s3) == https and cloud_uri(https) == s3


def test_fermi_spacecraft_file(real_endpoints):
    from mwnb.fermi import SPACECRAFT_URI
    s3, https = layout_examples("fermi_lat_spacecraft_merged")
    assert SPACECRAFT_URI == s3 and https_url(s3) == https and cloud_uri(https) == s3


def test_lambda_wmap_key_from_its_https_url():
    "lambda_wmap: https://lambda.gsfc.nasa.gov/data/map/... -> s3://nasa-lambda/wmap/... ('map' renamed 'wmap'); cobe/ keeps its name."
    from mwnb.wmap import lambda_s3_uri
    https, s3 = layout("lambda_wmap")["examples"][0].split(" -> ")
    assert lambda_s3_uri(https.strip()) == s3.strip()
    assert lambda_s3_uri("https://lambda.gsfc.nasa.gov/data/cobe/firas/x.fits") == "s3://nasa-lambda/cobe/firas/x.fits"


def test_heasarc_https_s3_mirror_both_ways(real_endpoints):
    "heasarc_https_mirror: s3://nasa-heasarc/{key} <-> https://heasarc.gsfc.nasa.gov/FTP/{key}; DataLink's '//' collapsed."
    m = load_contract("s3_layouts.yaml")["heasarc_https_mirror"]
    assert cloud_uri(m["example"]["https"]) == m["example"]["s3"]
    assert https_url(m["example"]["s3"]) == m["example"]["https"]
    # the Swift tutorial's executed DataLink access_url and the aws column astroquery made of it (heasarc_sia.yaml swift_nb)
    assert cloud_uri("https://heasarc.gsfc.nasa.gov/FTP/swift/data/obs/2011_09//00031968062/") == layout_examples("swift_observation")[1]


def test_allwise_key_from_cloud_access():
    "allwise_atlas_image: the key IRSA's cloud_access JSON gives is used as is, in the bucket it names."
    (example,) = layout_examples("allwise_atlas_image")
    bucket, key = example[5:].split("/", 1)
    assert cloud_uri(json.dumps({"aws": {"bucket_name": bucket, "key": key, "region": "us-west-2"}})) == example


@pytest.fixture
def mast_paths(archive):
    "The local archive's path_lookup table, restored after the test."
    saved = dict(getattr(archive, "mast_paths", {}))
    yield archive
    archive.mast_paths = saved


def test_panstarrs_key_from_a_mast_uri_via_path_lookup(mast_paths):
    "panstarrs_stack / mast.yaml path_lookup: use_cloud_path=True is sent and the cloud path is the key."
    la = mast_paths
    (example,) = layout_examples("panstarrs_stack")
    uri = "mast:PS1/product/" + example.rsplit("/", 1)[1]
    key = example.split("/", 3)[3]
    la.mast_paths = {**la.mast_paths, uri: {"cloud": "/" + key, "portal": "/ps1/" + key.split("/public/", 1)[1]}}
    assert cloud_uri(uri) == example
    assert la.requests_to("/mast/api/path_lookup")[-1]["params"]["use_cloud_path"] == "True"
    # the documented fallback: a service that answers with the portal path only (astroquery's legacy rules)
    la.mast_paths[uri] = {"portal": "/ps1/" + key.split("/public/", 1)[1]}
    assert cloud_uri(uri) == example


def test_hst_key_and_missing_uri(mast_paths):
    "hst_product + mast.yaml path_lookup examples: '/hst/public/...' -> stpubdata key; status 404 -> NoCloudCopyError."
    from mwnb.errors import NoCloudCopyError
    la = mast_paths
    ex = load_contract("mast.yaml")["path_lookup"]["examples"][0]
    la.mast_paths = {**la.mast_paths, ex["uri"]: {"cloud": ex["path"]}}
    assert cloud_uri(ex["uri"]) == ex["s3"] == layout_examples("hst_product")[0]
    with pytest.raises(NoCloudCopyError, match="status 404"):
        cloud_uri("mast:HST/product/does_not_exist.fits")
