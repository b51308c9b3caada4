"""LAT data server client against the local LAT server emulation, fermipy config checks, gammapy fit on real LAT maps."""
import hashlib
import pytest
import astropy.units as u
import numpy as np
from astropy.table import QTable

from mwnb import fermi
from mwnb.errors import ArchiveUnavailableError, MissingInputError


@pytest.fixture
def lat_server(local_archive, monkeypatch):
    "The local LAT data server, reset, with fast retries."
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.01")
    server = local_archive.routes["/fermi"]
    saved = server.not_ready_polls
    local_archive.clear()
    yield server
    server.not_ready_polls = saved
    local_archive.clear()


def _fetch(dest, **kw):
    return fermi.fetch_lat_data(73.4, -68.49, dest, interval=0.01, timeout=5, progress=False, **kw)


def test_query_polled_through_not_ready_pages_then_downloaded(local_archive, lat_server, tmp_path):
    lat_server.not_ready_polls = 2
    files = _fetch(tmp_path)
    polls = local_archive.requests_to("/fermi/LATQueryResults.cgi")
    assert len(polls) == 3                                   # two "in progress" pages, then the list
    query = local_archive.requests_to("/fermi/LATDataQuery.cgi")
    assert len(query) == 1 and query[0]["method"] == "POST"
    assert query[0]["params"]["timefield"] == "239557417,599544005"
    assert query[0]["params"]["energyfield"] == "300,2e+06"
    assert query[0]["params"]["shapefield"] == "10"
    (ph,) = files["photon"]
    assert ph.read_bytes() == lat_server.photon_file          # whole and identical
    assert files["spacecraft"] == []


def test_poll_timeout_raises(local_archive, lat_server, tmp_path):
    lat_server.not_ready_polls = 10_000
    with pytest.raises(ArchiveUnavailableError, match="not ready"):
        fermi.fetch_lat_data(73.4, -68.49, tmp_path, interval=0.01, timeout=0.1, progress=False)


def test_cut_download_restarts_and_file_is_whole(local_archive, lat_server, tmp_path):
    lat_server.not_ready_polls = 0
    # the first GET of the file is cut after half of the body
    local_archive.inject_fault("/fermi/queries/", kind="truncate", times=1, fraction=0.5)
    files = _fetch(tmp_path)
    gets = [r for r in local_archive.requests_to("/fermi/queries/") if r["method"] == "GET"]
    ranges = [r["headers"].get("Range") for r in gets]
    assert len(gets) == 2 and ranges[0] is None
    start = int(ranges[1].split("=")[1].rstrip("-"))
    assert 0 < start < len(lat_server.photon_file)            # continued where the cut left it
    data = files["photon"][0].read_bytes()
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(lat_server.photon_file).hexdigest()
    assert not list(tmp_path.glob("*.part"))


def test_second_run_downloads_nothing(local_archive, lat_server, tmp_path):
    lat_server.not_ready_polls = 1
    first = _fetch(tmp_path)
    assert len(local_archive.requests_to("/fermi")) > 0
    local_archive.clear()
    second = _fetch(tmp_path)
    assert local_archive.requests_to("/fermi") == []          # no query, no poll, no byte
    assert second == first


def test_b0453_config_has_every_value(tmp_path):
    import yaml
    cfg = fermi.fermipy_config("B0453-685", 73.36, -68.49)
    path = fermi.write_fermipy_config(cfg, tmp_path / "config.yaml")
    c = yaml.safe_load(path.read_text())
    assert c["binning"] == {"roiwidth": 10.0, "binsz": 0.1, "binsperdec": 10}
    sel = c["selection"]
    assert (sel["zmax"], sel["evclass"], sel["evtype"], sel["tmin"], sel["tmax"]) == (100, 128, 3, 239557417, 599544005)
    assert (sel["emin"], sel["emax"]) == (300.0, 2.0e6)
    assert c["gtlike"]["irfs"] == "P8R3_SOURCE_V3" and c["gtlike"]["edisp"] is True
    assert c["model"]["galdiff"] == "gll_iem_v07.fits" and c["model"]["isodiff"] == "iso_P8R3_SOURCE_V3_v1.txt"
    assert c["model"]["catalogs"] == ["gll_psc_v27.fit"] and c["model"]["extdir"] == "Extended_14years"


def test_missing_inputs_reported_before_any_long_step(tmp_path, monkeypatch):
    import time
    cfg = fermi.fermipy_config("B0453-685", 73.36, -68.49)
    path = fermi.write_fermipy_config(cfg, tmp_path / "config.yaml")
    for name in ("events.txt", "spacecraft.fits", "gll_iem_v07.fits", "iso_P8R3_SOURCE_V3_v1.txt"):
        (tmp_path / name).touch()
    (tmp_path / "Extended_14years").mkdir()
    t0 = time.monotonic()
    with pytest.raises(MissingInputError, match="gll_psc_v27.fit is missing; get it from https://fermi.gsfc.nasa.gov"):
        fermi.run_fermipy(path, "B0453-685", tmp_path / "out")
    (tmp_path / "gll_psc_v27.fit").touch(); (tmp_path / "gll_iem_v07.fits").unlink()
    with pytest.raises(MissingInputError, match="gll_iem_v07.fits is missing"):
        fermi.run_lat_likelihood(tmp_path / "out", config_path=path, engine="fermipy")
    assert time.monotonic() - t0 < 2
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_gammapy_fit_on_real_lat_maps_from_local_s3(local_archive, tmp_path):
    from mwnb.demo.fermi import lat_demo_uris
    uris = lat_demo_uris()
    products = fermi.lat_products_from_images(**uris, out_dir=tmp_path / "maps")
    res = fermi.run_lat_likelihood(tmp_path / "out", maps=products, target="brightest", engine="gammapy")
    assert res["engine"] == "gammapy"
    assert res["ts"] > 25
    assert 1.5 < res["index"] < 4 and 0 < res["index_err"] < 0.3
    sed = QTable.read(res["files"]["sed"])
    assert sed["e_min"].unit == u.MeV and sed["dnde"].unit == u.Unit("cm-2 s-1 MeV-1")
    assert sed["e2dnde_ul"].unit == u.erg / u.cm**2 / u.s
    assert np.all(sed["e_max"] > sed["e_min"]) and sed["ts"][0] > 25
    assert {"engine", "index", "ts"} <= set(sed.meta)
