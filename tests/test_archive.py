"""TAP answers are complete or fail loudly (row caps, random subsets, paging, sync limits, refused ADQL), every call ends within
its deadline (drips, Retry-After), downloads are atomic and cutouts byte-frugal."""
import logging, time
from pathlib import Path
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.table import Table
from astropy.wcs import WCS
from astropy.coordinates import SkyCoord
import astropy.units as u

from mwnb.archive import tap_query, tap_upload_join
from mwnb.cloud import download, https_url, open_fits, cloud_uri
from mwnb.cutouts import cutout
from mwnb.errors import ArchiveUnavailableError, TruncatedResultError, DownloadError


@pytest.fixture(scope="module")
def big_table():
    rng = np.random.default_rng(3)
    return Table({"id": np.arange(5000), "ra": rng.uniform(0, 360, 5000), "dec": rng.uniform(-90, 90, 5000)})


def test_result_over_server_limit_is_complete_or_raises(archive, big_table):
    engine = archive.engines["heasarc"]
    engine.add_table("bigdemo", big_table)
    old = engine.max_rows
    engine.max_rows = 1000
    try:
        with pytest.raises(TruncatedResultError, match="cut at 1000 rows"):
            tap_query("heasarc", "SELECT id FROM bigdemo")
        t = tap_query("heasarc", "SELECT id, ra FROM bigdemo", page_by="ra")
        assert len(t) == 5000 and len(set(t["id"])) == 5000
        # MAXREC asked by the client also counts as a cut, never a silently smaller table
        with pytest.raises(TruncatedResultError):
            tap_query("heasarc", "SELECT id FROM bigdemo", maxrec=10)
    finally:
        engine.max_rows = old


def test_two_503_then_success_is_logged(archive, caplog):
    archive.add_table("tiny", Table({"x": [1, 2, 3]}))
    archive.inject_fault("/heasarc/tap/sync", status=503, times=2)
    with caplog.at_level(logging.WARNING, logger="mwnb.archive"):
        t = tap_query("heasarc", "SELECT x FROM tiny")
    assert sorted(t["x"]) == [1, 2, 3]
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and "503" in retries[0].getMessage()
    assert len(archive.requests_to("/heasarc/tap/sync")) == 3


def test_persistent_failure_raises_within_configured_time(archive, monkeypatch):
    monkeypatch.setenv("MWNB_MAX_RETRIES", "3")
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.05")
    archive.inject_fault("/irsa/tap/sync", status=503, times=100)
    t0 = time.time()
    with pytest.raises(ArchiveUnavailableError) as e:
        tap_query("irsa", "SELECT 1 FROM fp_psc")
    elapsed = time.time() - t0
    assert e.value.tries == 4 and e.value.last_status == 503
    assert elapsed < 0.05 * (1 + 2 + 4) + 5
    assert len(archive.requests_to("/irsa/tap/sync")) == 4


def test_cut_download_leaves_no_final_file_then_succeeds(archive, tmp_path, monkeypatch):
    payload = np.random.default_rng(0).bytes(3_000_000)
    uri = archive.put_object("nasa-heasarc", "demo/cut/big.bin", payload)
    url = https_url(uri)
    monkeypatch.setenv("MWNB_MAX_RETRIES", "0")
    archive.inject_fault("/heasarc/FTP/demo/cut", kind="truncate", times=1)
    with pytest.raises(ArchiveUnavailableError):
        download(url, tmp_path / "big.bin", progress=False)
    assert not (tmp_path / "big.bin").exists() and list(tmp_path.iterdir()) == []   # no final file, no temporary file
    monkeypatch.setenv("MWNB_MAX_RETRIES", "2")
    archive.inject_fault("/heasarc/FTP/demo/cut", kind="truncate", times=1)
    p = download(url, tmp_path / "big.bin", progress=False)   # cut once, complete on the retry
    assert p.read_bytes() == payload
    gets = [r for r in archive.requests_to("/heasarc/FTP/demo/cut") if r["method"] == "GET"]
    assert len(gets) == 3
    # a retry resumes only with If-Range (the first answer's ETag/Last-Modified), never with a bare Range that could splice
    assert all(r["headers"].get("If-Range") for r in gets if "Range" in r["headers"])
    n = len(archive.requests_to("/heasarc/FTP/demo/cut"))
    download(url, tmp_path / "big.bin", progress=False)   # complete: only a HEAD for the size
    assert [r["method"] for r in archive.requests_to("/heasarc/FTP/demo/cut")[n:]] == ["HEAD"]


def test_checksum_mismatch_is_discarded(archive, tmp_path):
    uri = archive.put_object("nasa-heasarc", "demo/sum.bin", b"abc" * 1000)
    with pytest.raises(DownloadError, match="sha256"):
        download(uri, tmp_path / "sum.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "sum.bin").exists() and not (tmp_path / "sum.bin.part").exists()


def test_cutout_reads_under_two_percent_of_64mb(archive):
    ny, nx = 4096, 4096   # float32: 64 MiB of pixels
    data = np.random.default_rng(1).normal(size=(ny, nx)).astype(np.float32)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]; w.wcs.crval = [83.63321, 22.01446]
    w.wcs.crpix = [nx / 2, ny / 2]; w.wcs.cdelt = [-1 / 3600, 1 / 3600]
    import io
    buf = io.BytesIO(); fits.PrimaryHDU(data, header=w.to_header()).writeto(buf)
    size = len(buf.getvalue())
    uri = archive.put_object("nasa-irsa-wise", "demo/big64.fits", buf.getvalue(), https=False)
    archive.s3.reset()
    pos = SkyCoord(83.63321, 22.01446, unit="deg")
    side = 128   # 128x128 of 4096x4096 = 0.098% of the pixels
    c = cutout(uri, pos, side)
    sent = archive.s3.bytes_sent
    assert size > 64 * 2**20
    assert sent <= 0.02 * size, f"read {sent} of {size} bytes"
    assert np.array_equal(c.data, Cutout2D(data, pos, side, wcs=w).data)


def test_upload_join_requests_counted(archive, big_table):
    archive.add_table("bigdemo2", big_table)
    up = big_table[:400]["id", "ra", "dec"]
    up.rename_columns(["id", "ra", "dec"], ["uid", "ra0", "dec0"])
    res = tap_upload_join("heasarc", up, "SELECT u.uid, b.id FROM bigdemo2 AS b JOIN TAP_UPLOAD.t1 AS u "
                          "ON CONTAINS(POINT('ICRS', b.ra, b.dec), CIRCLE('ICRS', u.ra0, u.dec0, 0.00001)) = 1")
    assert sorted(zip(res["uid"], res["id"])) == [(i, i) for i in range(400)]
    assert len(archive.requests_to("/heasarc/tap/sync")) == 1


def test_cloud_uri_of_rosat_z_and_open(archive):
    from mwnb.config import data_dir
    z = data_dir() / "astropy-lzw" / "lzw.fits.Z"
    uri = archive.put_object("nasa-heasarc", "rosat/demo/lzw.fits.Z", z)
    with open_fits(https_url(uri)) as h1, open_fits(uri) as h2:
        assert h1[0].data.shape == h2[0].data.shape == (101, 101)
        assert np.array_equal(h1[0].data, h2[0].data)
    assert cloud_uri(https_url(uri)) == uri


def test_cloud_uri_resolves_the_five_kinds_from_real_response_shapes(archive):
    import pyvo
    from mwnb.config import conf
    # 1. an SIA v2 (ObsCore) row from IRSA, with its JSON cloud_access column: the 'science' row (irsa.yaml)
    wise = pyvo.dal.SIA2Service(conf.irsa_sia).search(pos=(83.63321, 22.01446, 0.1), collection="wise_allwise").to_table()
    row = wise[wise["dataproduct_subtype"] == "science"][0]
    assert cloud_uri(row) == "s3://nasa-irsa-wise/wise/allwise/images/p3am_cdd/08/0837/0837p227_ac51/0837p227_ac51-w1-int-3.fits"
    # 2. a DataLink result reached from HEASARC's SIA record with getdatalink() (iter_datalinks() does not work there)
    sia = pyvo.dal.SIAService(conf.heasarc_sia).search(pos=(83.63321, 22.01446), size=0.2, format="image/fits")
    assert cloud_uri(sia[0].getdatalink()) == "s3://nasa-heasarc/chandra/data/byobsid/8/1838/primary/demo_image2.fits"
    # 3. an IRSA cloud_access value on its own
    assert cloud_uri(str(row["cloud_access"])) == cloud_uri(row)
    # 4. a MAST product row (astroquery product-list shape): dataURI -> path lookup -> stpubdata
    prod = Table({"obsID": ["2003520266"], "dataURI": ["mast:PS1/product/rings.v3.skycell.1784.059.stk.g.unconv.fits"],
                  "productFilename": ["rings.v3.skycell.1784.059.stk.g.unconv.fits"]})[0]
    assert cloud_uri(prod) == "s3://stpubdata/panstarrs/ps1/public/rings.v3.skycell/1784/059/rings.v3.skycell.1784.059.stk.g.unconv.fits"
    assert archive.requests_to("/mast/api/path_lookup")
    # 5. a HEASARC https archive URL
    assert cloud_uri("https://heasarc.gsfc.nasa.gov/FTP/swift/data/obs/2011_09/00031968059/") == "s3://nasa-heasarc/swift/data/obs/2011_09/00031968059/"
    from mwnb.errors import NoCloudCopyError
    with pytest.raises(NoCloudCopyError, match="no cloud copy"):
        cloud_uri("https://example.org/not/an/archive.fits")
    with pytest.raises(NoCloudCopyError, match="provider"):
        cloud_uri(row, provider="gcp")


def test_async_tap_job_returns_the_same_rows(archive):
    archive.add_table("asyncdemo", Table({"i": np.arange(50)}))
    t = tap_query("heasarc", "SELECT i FROM asyncdemo WHERE i >= 10", mode="async")
    assert sorted(t["i"]) == list(range(10, 50))
    assert any("/async/" in r["path"] for r in archive.requests_to("/heasarc/tap/async"))


def test_opt_in_cache_fetches_once(archive, tmp_path, monkeypatch):
    import io
    buf = io.BytesIO(); fits.PrimaryHDU(np.ones((20, 20))).writeto(buf)
    uri = archive.put_object("nasa-heasarc", "demo/cache/img.fits", buf.getvalue())
    url = https_url(uri)
    monkeypatch.setenv("MWNB_CACHE", "1")
    monkeypatch.setenv("MWNB_CACHE_DIR", str(tmp_path))
    for _ in range(2):
        with open_fits(url) as h: assert h[0].data.sum() == 400
    gets = [r for r in archive.requests_to("/heasarc/FTP/demo/cache") if r["method"] == "GET"]
    assert len(gets) == 1
    assert list(tmp_path.rglob("img.fits"))


# ---- the archives' documented answers (contracts) ----

def test_heasarc_datalink_is_per_table_with_row_ids(archive, monkeypatch):
    "heasarc_sia.yaml datalink_url: .../datalink/{table}?sizefiles=false& with ID=ivo://nasa.heasarc/{table}?{__row}."
    from mwnb.config import Conf
    from mwnb.cloud import heasarc_links, heasarc_datalink_url
    from mwnb.demo.vo import add_heasarc_row
    assert Conf.heasarc_datalink.defaultvalue == "https://heasarc.gsfc.nasa.gov/xamin/vo/datalink/{table}?sizefiles=false&"
    monkeypatch.setenv("MWNB_HEASARC_DATALINK", f"{archive.url}/heasarc/datalink/{{table}}?sizefiles=false&")
    assert heasarc_datalink_url("swiftmastr") == f"{archive.url}/heasarc/datalink/swiftmastr?sizefiles=false&"
    # the Swift tutorial's executed locate_data row: access_url with the doubled '/' before the ObsID
    add_heasarc_row(archive, "swiftmastr", 130253, f"{archive.url}/heasarc/FTP/swift/data/obs/2011_09//00031968062/")
    links = heasarc_links("swiftmastr", 130253)
    assert cloud_uri(links) == "s3://nasa-heasarc/swift/data/obs/2011_09/00031968062/"
    sent = archive.requests_to("/heasarc/datalink")[-1]
    assert sent["path"] == "/heasarc/datalink/swiftmastr" and sent["params"]["sizefiles"] == "false"
    assert sent["params"]["ID"] == "ivo://nasa.heasarc/swiftmastr?130253"
    missing = heasarc_links("swiftmastr", 1).to_table()
    assert "NotFoundFault" in str(missing["error_message"][0])
    monkeypatch.setenv("MWNB_HEASARC_DATALINK", f"{archive.url}/heasarc/datalink")
    from mwnb.errors import ConfigError
    with pytest.raises(ConfigError, match="has no '\\{table\\}'"):
        heasarc_datalink_url("swiftmastr")


def test_heasarc_datalink_answers_with_the_contract_fields_and_cloud_access(archive):
    "The demo DataLink has exactly heasarc_sia.yaml datalink_fields; '#this' has cloud_access (aws.key) and no s3:// access_url."
    import json, pyvo
    from mwnb.config import conf
    from mwnb.contracts import load_contract
    rows = pyvo.dal.SIAService(conf.heasarc_sia).search(pos=(83.63321, 22.01446), size=0.2, format="image/fits")
    assert {"obs_title", "detector", "name"} <= set(rows.fieldnames)
    assert (rows[0]["obs_title"], rows[0]["detector"], rows[0]["name"]) == ("Center Image", "ACIS-S", "Crab Nebula")
    links = rows[0].getdatalink().to_table()
    assert links.colnames == [f["name"] for f in load_contract("heasarc_sia.yaml")["datalink_fields"]]
    this = links[links["semantics"] == "#this"]
    assert len(this) == 1 and not str(this["access_url"][0]).startswith("s3://")
    assert json.loads(this["cloud_access"][0]) == {"aws": {"key": "chandra/data/byobsid/8/1838/primary/demo_image2.fits"}}
    assert str(this["ID"][0]).startswith("ivo://nasa.heasarc/chanmaster?")


def test_panstarrs_stand_in_has_the_stack_layout_and_the_cutout_reads_hdu_1(archive):
    "mast.yaml panstarrs_stack_image image_hdu 1: empty primary, RICE CompImageHDU in HDU 1; cutout(hdu=None) finds it."
    uri = "s3://stpubdata/panstarrs/ps1/public/rings.v3.skycell/1784/059/rings.v3.skycell.1784.059.stk.g.unconv.fits"
    with open_fits(uri) as h:
        assert h[0].data is None and h[0].header["NAXIS"] == 0
        assert isinstance(h[1], fits.CompImageHDU) and h[1].compression_type == "RICE_1"
        full, wcs = np.asarray(h[1].data), WCS(h[1].header)
    pos = SkyCoord(83.63321, 22.01446, unit="deg")
    c = cutout(uri, pos, 1 * u.arcmin, progress=False)
    assert c.data.shape == (240, 240)
    assert np.array_equal(c.data, Cutout2D(full, pos, 1 * u.arcmin, wcs=wcs).data)
    from mwnb.cloud import s3_filesystem
    assert c.fetch["bytes"] < 0.5 * s3_filesystem().info(uri)["size"]   # only the tiles the cutout needs


def test_allwise_sia2_rows_are_chosen_by_dataproduct_subtype(archive):
    "irsa.yaml: the first SIA v2 row of a coadd is not guaranteed to be the intensity image; select 'science'."
    import pyvo
    from mwnb.config import conf
    wise = pyvo.dal.SIA2Service(conf.irsa_sia).search(pos=(83.63321, 22.01446, 0.1), collection="wise_allwise").to_table()
    assert list(wise["dataproduct_subtype"]) == ["ancillary", "science"]   # row 0 is the uncertainty map
    assert cloud_uri(wise[0]).endswith("-w1-unc-3.fits")
    science = wise[wise["dataproduct_subtype"] == "science"]
    assert cloud_uri(science[0]).endswith("0837p227_ac51-w1-int-3.fits") and science[0]["energy_bandpassname"] == "W1"
    src = (Path(__file__).parents[1] / "nbs" / "tutorials" / "crab_cloud_access.py").read_text()
    assert 'found[found["dataproduct_subtype"] == "science"]' in src and "cloud_uri(wise[0])" in src


def test_crab_obstap_query_uses_only_verified_contract_columns(archive):
    "mast.yaml obstap: the tutorial's ObsTAP query and the demo obscore name only verified columns; no `filters`."
    from mwnb.catalogs import mast_observations_adql
    from mwnb.contracts import check_adql, adql_references, contract_columns
    from mwnb.demo.crab import _obscore
    q = mast_observations_adql(83.63321, 22.01446, 0.1, ["PS1"], dataproduct_type="image")
    assert check_adql("mast", q) == []
    verified = {c["name"].lower() for c in contract_columns("mast", "ivoa.obscore") if c["verified"]}
    assert {col for _, col in adql_references(q)} <= verified
    assert set(_obscore("mast:x").colnames) <= verified and "filters" not in _obscore("mast:x").colnames
    src = (Path(__file__).parents[1] / "nbs" / "tutorials" / "crab_cloud_access.py").read_text()
    assert 'mast_observations_adql(ra, dec, search_radius_deg, ["PS1"], dataproduct_type="image")' in src and "FROM ivoa.obscore" not in src
    ps1 = tap_query("mast", q)
    assert list(ps1["obs_id"]) == ["rings.v3.skycell.1784.059.stk.g"]


# ---- whole answers against servers that cut silently ----

@pytest.fixture()
def paging_table(archive):
    "5000 rows: ra, a non-angular mjd with 300 NULLs, and an id; served by HEASARC's engine (its behaviours on)."
    rng = np.random.default_rng(17)
    mjd = np.ma.MaskedArray(rng.uniform(50000, 60000, 5000), mask=np.zeros(5000, bool))
    mjd.mask[rng.choice(5000, 300, replace=False)] = True
    t = Table({"id": np.arange(5000), "ra": rng.uniform(0, 360, 5000), "mjd": mjd})
    archive.engines["heasarc"].add_table("pagedemo", t)
    return t


@pytest.fixture()
def small_limits(archive):
    "The HEASARC engine's hard limit lowered to 1000 rows for one test."
    engine = archive.engines["heasarc"]
    old = engine.max_rows, engine.default_rows, dict(engine.behaviours)
    engine.max_rows = 1000
    yield engine
    engine.max_rows, engine.default_rows, engine.behaviours = old


def test_query_without_top_gets_every_row_from_a_random_subset_server(archive, paging_table):
    import pyvo
    from mwnb.config import conf
    from mwnb.demo.tap import NO_TOP_CAP
    plain = pyvo.dal.TAPService(conf.heasarc_tap).run_sync("SELECT id FROM pagedemo")   # what a client without TOP gets
    assert len(plain) == NO_TOP_CAP and plain.query_status == "OK"
    t = tap_query("heasarc", "SELECT id FROM pagedemo")
    assert sorted(t["id"]) == list(range(5000))
    sent = [r["params"]["QUERY"] for r in archive.requests_to("/heasarc/tap/sync")]
    assert all(q.upper().startswith("SELECT TOP ") for q in sent[1:])   # mwnb never sends a query without TOP


def test_paging_by_a_column_with_nulls_and_no_angular_range(archive, paging_table, small_limits):
    t = tap_query("heasarc", "SELECT id, mjd FROM pagedemo", page_by="mjd")
    assert len(t) == 5000 and len(set(t["id"])) == 5000
    assert int(np.ma.getmaskarray(t["mjd"]).sum()) == 300   # the NULL page came too
    both = tap_query("heasarc", "SELECT id FROM pagedemo WHERE id < 2600", page_by=("ra", 10, 20))   # range widened by the data
    assert sorted(both["id"]) == list(range(2600))


def test_paged_top_keeps_its_meaning_and_order(archive, paging_table, small_limits):
    import warnings
    from pyvo.dal.exceptions import DALOverflowWarning
    small_limits.max_rows = 100
    with warnings.catch_warnings():   # the pages overflow, and mwnb pages on: pyvo's "consider setting maxrec" is not for the user
        warnings.simplefilter("error", DALOverflowWarning)
        t = tap_query("heasarc", "SELECT TOP 120 id, ra FROM pagedemo ORDER BY ra", page_by="ra")
    want = np.sort(np.asarray(paging_table["ra"]))[:120]
    assert len(t) == 120 and np.allclose(np.asarray(t["ra"]), want)
    desc = tap_query("heasarc", "SELECT TOP 50 id, ra FROM pagedemo ORDER BY ra DESC", page_by="ra")
    assert np.allclose(np.asarray(desc["ra"]), np.sort(np.asarray(paging_table["ra"]))[::-1][:50])


def test_paging_a_text_column_is_refused(archive, paging_table, small_limits):
    from mwnb.errors import BadParameterError
    archive.engines["heasarc"].add_table("textdemo", Table({"name": [f"s{i:05d}" for i in range(2500)]}))
    with pytest.raises(BadParameterError, match="not a numeric column"):
        tap_query("heasarc", "SELECT name FROM textdemo", page_by="name")


def test_server_that_stops_at_its_default_limit_silently(archive, paging_table, small_limits):
    small_limits.max_rows, small_limits.default_rows = 100000, 300
    small_limits.behaviours["silent_limits"] = True   # status OK at any limit: the most hostile server
    t = tap_query("heasarc", "SELECT id FROM pagedemo")   # MAXREC = the hard limit lifts the default one
    assert len(t) == 5000
    small_limits.max_rows, small_limits.default_rows = 500, None    # a hard limit below 1000, status OK
    with pytest.raises(TruncatedResultError):
        tap_query("heasarc", "SELECT id FROM pagedemo")
    t = tap_query("heasarc", "SELECT id, ra FROM pagedemo", page_by="ra")
    assert sorted(t["id"]) == list(range(5000))


def test_giant_top_is_a_broken_answer_and_tap_all_avoids_it(archive, paging_table):
    import pyvo
    from mwnb.archive import tap_all
    from mwnb.config import conf
    with pytest.raises(Exception):   # HEASARC csc with TOP 9999999 (astroquery #3423): pyvo cannot parse the answer
        pyvo.dal.TAPService(conf.heasarc_tap).run_sync("SELECT TOP 9999999 id FROM pagedemo")
    t = tap_all("heasarc", "SELECT id FROM pagedemo")
    assert len(t) == 5000 and t.meta["n_counted"] == 5000
    asked = [r["params"]["QUERY"] for r in archive.requests_to("/heasarc/tap/sync")]
    assert "SELECT TOP 5001 id FROM pagedemo" in asked


def test_gaia_sync_limit_is_lifted_by_an_async_job(archive):
    import pyvo
    from mwnb.config import conf
    archive.engines["gaia"].add_table("gaiadr3.dense_field", Table({"source_id": np.arange(2500)}))
    sync = pyvo.dal.TAPService(conf.gaia_tap).run_sync("SELECT source_id FROM gaiadr3.dense_field")
    assert len(sync) == 2000 and sync.query_status == "OK"   # Gaia's silent sync limit, as a plain client sees it
    t = tap_query("gaia", "SELECT source_id FROM gaiadr3.dense_field")
    assert sorted(t["source_id"]) == list(range(2500))
    assert archive.requests_to("/gaia/tap/async")


def test_irsa_refuses_join_and_takes_the_forms_that_worked(archive):
    import pyvo
    from mwnb.config import conf
    from mwnb.errors import ServiceQueryError
    join = ("SELECT u.uid, m.designation FROM TAP_UPLOAD.t1 AS u JOIN fp_psc AS m "
            "ON CONTAINS(POINT('ICRS', m.ra, m.dec), CIRCLE('ICRS', u.ra, u.dec, 0.01)) = 1")
    with pytest.raises(pyvo.dal.DALQueryError, match="JOIN"):
        pyvo.dal.TAPService(conf.irsa_tap).run_sync("SELECT a.ra FROM fp_psc AS a JOIN fp_psc AS b ON a.ra = b.ra")
    fp = tap_query("irsa", "SELECT TOP 3 designation, ra, dec FROM fp_psc")
    up = Table({"uid": [1, 2, 3], "ra": np.asarray(fp["ra"]), "dec": np.asarray(fp["dec"])})
    with pytest.raises(ServiceQueryError, match="JOIN is not supported"):
        tap_query("irsa", join, uploads={"t1": up})
    comma = ("SELECT u.uid, m.designation FROM TAP_UPLOAD.t1 AS u, fp_psc AS m "
             "WHERE CONTAINS(POINT('ICRS', m.ra, m.dec), CIRCLE('ICRS', u.ra, u.dec, 0.0001)) = 1")
    res = tap_upload_join("irsa", up, comma, mode="async")
    assert sorted(res["uid"]) == [1, 2, 3] and set(res["designation"]) == set(fp["designation"])
    ra, dec = float(fp["ra"][0]), float(fp["dec"][0])
    nearest = tap_query("irsa", f"SELECT TOP 1 designation, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra}, {dec})) AS dist "
                                f"FROM fp_psc WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra}, {dec}, 0.01)) = 1 ORDER BY dist")
    assert nearest["designation"][0] == fp["designation"][0] and nearest["dist"][0] < 1e-9


# ---- every call ends within its deadline ----

def test_dripping_server_ends_a_sync_query_within_the_deadline(archive, monkeypatch):
    monkeypatch.setenv("MWNB_DEADLINE", "3")
    archive.add_table("tiny", Table({"x": np.arange(50)}))
    archive.inject_fault("/heasarc/tap/sync", kind="drip", delay=0.5, times=10)
    t0 = time.monotonic()
    with pytest.raises(ArchiveUnavailableError, match="deadline"):
        tap_query("heasarc", "SELECT x FROM tiny")
    elapsed = time.monotonic() - t0
    print(f"dripping sync tap_query ended after {elapsed:.2f} s (deadline 3 s)")
    assert elapsed < 3 + 1.5


def test_dripping_server_ends_an_http_get_within_the_deadline(archive, monkeypatch):
    from mwnb.archive import http_get
    monkeypatch.setenv("MWNB_DEADLINE", "2")
    url = archive.add_file("/heasarc/FTP/demo/drip.txt", b"x" * 200)
    archive.inject_fault("/heasarc/FTP/demo/drip", kind="drip", delay=0.5, times=10)
    t0 = time.monotonic()
    with pytest.raises(ArchiveUnavailableError, match="deadline"):
        http_get(url)
    assert time.monotonic() - t0 < 2 + 1.5


def test_retry_after_is_waited_and_one_beyond_the_deadline_fails_at_once(archive, monkeypatch):
    archive.add_table("tiny2", Table({"x": [1, 2, 3]}))
    archive.inject_fault("/heasarc/tap/sync", status=503, retry_after=2, times=1)
    t0 = time.monotonic()
    t = tap_query("heasarc", "SELECT x FROM tiny2")
    waited = time.monotonic() - t0
    assert sorted(t["x"]) == [1, 2, 3] and 2.0 <= waited < 6
    monkeypatch.setenv("MWNB_DEADLINE", "5")
    archive.inject_fault("/heasarc/tap/sync", status=503, retry_after=20, times=1)
    t0 = time.monotonic()
    with pytest.raises(ArchiveUnavailableError, match="asked to wait 20 s"):
        tap_query("heasarc", "SELECT x FROM tiny2")
    assert time.monotonic() - t0 < 2
