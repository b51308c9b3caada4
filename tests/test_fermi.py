"""LAT data server client against the local LAT server emulation, fermipy config checks, gammapy fit on real LAT maps."""
import hashlib
import pytest
import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from mwnb import fermi
from mwnb.config import data_dir
from mwnb.errors import ArchiveUnavailableError, MissingInputError

B0453 = (73.39, -68.49)
DR2 = data_dir() / "pypi-fermipy-4fgl-dr4" / "gll_psc_v27.fit"   # 4FGL-DR2, the catalog of the published config


@pytest.fixture
def lat_server(local_archive, monkeypatch):
    "The local LAT data server, reset, with fast retries."
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.01")
    server = local_archive.routes["/fermi"]
    saved = (server.not_ready_polls, server.links_before_complete, server.fail_with, server.api_enabled)
    local_archive.clear()
    yield server
    server.not_ready_polls, server.links_before_complete, server.fail_with, server.api_enabled = saved
    local_archive.clear()


def _fetch(dest, **kw):
    return fermi.fetch_lat_data(73.4, -68.49, dest, interval=0.01, timeout=5, progress=False, **kw)


def test_query_polled_through_not_ready_pages_then_downloaded(local_archive, lat_server, tmp_path):
    lat_server.not_ready_polls = 2
    files = _fetch(tmp_path)
    polls = local_archive.requests_to("/fermi/QueryResults.cgi")
    assert len(polls) == 3                                   # two pages in state 1, then state 2
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
    cfg = fermi.fermipy_config("B0453-685", *B0453)
    path = fermi.write_fermipy_config(cfg, tmp_path / "config.yaml")
    c = yaml.safe_load(path.read_text())
    assert c["binning"] == {"roiwidth": 10.0, "binsz": 0.1, "binsperdec": 10}
    sel = c["selection"]
    assert (sel["zmax"], sel["evclass"], sel["evtype"], sel["tmin"], sel["tmax"]) == (100, 128, 3, 239557417, 599544005)
    assert (sel["emin"], sel["emax"]) == (300.0, 2.0e6)
    assert c["gtlike"]["irfs"] == "P8R3_SOURCE_V3" and c["gtlike"]["edisp"] is True
    assert [fermi.Path(x).name for x in c["model"]["galdiff"] + c["model"]["isodiff"]] == ["gll_iem_v07.fits", "iso_P8R3_SOURCE_V3_v1.txt"]
    assert fermi.Path(c["model"]["catalogs"][0]).name == "gll_psc_v27.fit" and fermi.Path(c["model"]["extdir"]).name == "Extended_8years"


# defect 1: the ROI is centred on ra/dec (no catalog name lookup) and the PWN is a free power-law point source
def test_b0453_config_centres_on_position_and_adds_the_pwn():
    cfg = fermi.fermipy_config("B0453-685", *B0453)
    assert "target" not in cfg["selection"] and (cfg["selection"]["ra"], cfg["selection"]["dec"]) == B0453
    (pwn,) = cfg["model"]["sources"]
    assert (pwn["name"], pwn["ra"], pwn["dec"], pwn["SpatialModel"], pwn["SpectrumType"]) == ("B0453-685", *B0453, "PointSource", "PowerLaw")
    assert pwn["Index"]["free"] and pwn["Prefactor"]["free"]


# defect 3: fermipy's own pure-Python classes validate the written config and build the B0453-685 ROI from it
def test_fermipy_builds_the_b0453_roi_with_the_pwn_and_the_lmc(tmp_path):
    import yaml
    pytest.importorskip("fermipy")
    from fermipy.roi_model import ROIModel
    for name in ("events.txt", "spacecraft.fits", "gll_iem_v07.fits", "iso_P8R3_SOURCE_V3_v1.txt"): (tmp_path / name).touch()
    cfg = fermi.fermipy_config("B0453-685", *B0453, catalog=DR2)
    written = yaml.safe_load(fermi.write_fermipy_config(cfg, tmp_path / "config.yaml").read_text())
    full = fermi.fermipy_schema().create_config(written, validate=True)     # fermipy's ConfigSchema, unknown keys raise
    assert full["selection"]["target"] is None
    roi = ROIModel.create(full["selection"], full["model"])
    pwn = roi["B0453-685"]
    assert (round(pwn.skydir.ra.deg, 2), round(pwn.skydir.dec.deg, 2)) == B0453
    assert pwn["SpectrumType"] == "PowerLaw" and pwn["SpatialModel"] == "PointSource" and not pwn.extended
    assert pwn.spectral_pars["Index"]["free"] and pwn.spectral_pars["Prefactor"]["free"]
    lmc = {s.name: s for s in roi.point_sources if s.extended}   # point_sources: the catalog and model sources, not diffuse
    assert {"4FGL J0500.9-6945e", "4FGL J0519.9-6845e", "4FGL J0530.0-6900e", "4FGL J0531.8-6639e"} <= set(lmc)
    far_west = lmc["4FGL J0500.9-6945e"]
    assert far_west["SpatialModel"] == "SpatialMap" and abs(far_west["offset"] - 1.424) < 0.005
    import os
    template = fermi.Path(os.path.expandvars(far_west["Spatial_Filename"]))
    assert template.name == "LMC-FarWest.fits" and template.is_file()
    assert len(roi.point_sources) == 37                                   # 36 catalog sources in the 15 deg model box + the PWN
    assert {s.name for s in roi.diffuse_sources} == {"galdiff", "isodiff"}
    # the old config (selection.target = the PWN's name) makes fermipy look the name up in 4FGL, where it is absent
    with pytest.raises(Exception):
        ROIModel.create({**full["selection"], "target": "B0453-685"}, {**full["model"], "sources": []})


# defect 2: the written paths are the ones fermipy resolves, from any working directory
def test_written_paths_are_the_files_fermipy_resolves(tmp_path, monkeypatch):
    import os, yaml
    pytest.importorskip("fermipy")
    from fermipy.utils import resolve_file_path
    lat = tmp_path / "lat"; lat.mkdir()
    for name in ("spacecraft.fits", "gll_iem_v07.fits", "iso_P8R3_SOURCE_V3_v1.txt", "ph.fits"): (lat / name).touch()
    (lat / "events.txt").write_text(str(lat / "ph.fits") + "\n")
    cfg = fermi.fermipy_config("B0453-685", *B0453, catalog=DR2, outdir=str(tmp_path / "out"))
    written = yaml.safe_load(fermi.write_fermipy_config(cfg, lat / "config.yaml").read_text())
    elsewhere = tmp_path / "elsewhere"; elsewhere.mkdir(); monkeypatch.chdir(elsewhere)
    # fermipy (gtanalysis.py): evfile/scfile as given, else in fileio.outdir; diffuse: resolve_file_path over outdir, ...
    assert os.path.isfile(written["data"]["evfile"]) and os.path.isfile(written["data"]["scfile"])
    search = [written["fileio"]["outdir"], "$FERMI_DIFFUSE_DIR", "$FERMIPY_DATA_DIR"]
    assert resolve_file_path(written["model"]["galdiff"][0], search_dirs=search) == str(lat / "gll_iem_v07.fits")
    assert resolve_file_path(written["model"]["isodiff"][0], search_dirs=search) == str(lat / "iso_P8R3_SOURCE_V3_v1.txt")
    paths = fermi.check_fermipy_inputs(written)
    assert lat / "events.txt" in paths and lat / "ph.fits" in paths
    # missing diffuse model: named, with where fermipy looked and the FSSC address
    (lat / "iso_P8R3_SOURCE_V3_v1.txt").unlink()
    with pytest.raises(MissingInputError, match=r"iso_P8R3_SOURCE_V3_v1.txt is missing .*https://fermi.gsfc.nasa.gov/ssc/data/analysis/software/aux/iso_P8R3_SOURCE_V3_v1.txt"):
        fermi.check_fermipy_inputs(written)


def test_diffuse_models_fetched_from_their_published_address(local_archive, monkeypatch, tmp_path):
    monkeypatch.setenv("MWNB_RETRY_BACKOFF", "0.01")
    url = local_archive.add_file("/heasarc/FTP/fssc-aux/iso_P8R3_SOURCE_V3_v1.txt", b"100 1e-7 1e-9\n")
    monkeypatch.setitem(fermi.FERMI_DIFFUSE_URLS, "iso_P8R3_SOURCE_V3_v1.txt", url)
    (path,) = fermi.fetch_fermi_diffuse(tmp_path, ["iso_P8R3_SOURCE_V3_v1.txt"], progress=False)
    assert path == tmp_path / "iso_P8R3_SOURCE_V3_v1.txt" and path.read_bytes() == b"100 1e-7 1e-9\n"
    with pytest.raises(MissingInputError, match="no FSSC address known"):
        fermi.fetch_fermi_diffuse(tmp_path, ["gll_iem_v99.fits"])


def test_missing_inputs_reported_before_any_long_step(tmp_path):
    import time
    cfg = fermi.fermipy_config("B0453-685", *B0453, catalog=tmp_path / "gll_psc_v99.fit")
    for name in ("events.txt", "spacecraft.fits", "gll_iem_v07.fits", "iso_P8R3_SOURCE_V3_v1.txt"):
        (tmp_path / name).touch()
    path = fermi.write_fermipy_config(cfg, tmp_path / "config.yaml")
    t0 = time.monotonic()
    with pytest.raises(MissingInputError, match="gll_psc_v99.fit is missing"):
        fermi.run_fermipy(path, "B0453-685", tmp_path / "out")
    (tmp_path / "gll_iem_v07.fits").unlink()
    path = fermi.write_fermipy_config(fermi.fermipy_config("B0453-685", *B0453, catalog=DR2), tmp_path / "config.yaml")
    with pytest.raises(MissingInputError, match="gll_iem_v07.fits is missing .*https://fermi.gsfc.nasa.gov/ssc/data/analysis/software/aux/4fgl/gll_iem_v07.fits"):
        fermi.run_lat_likelihood(tmp_path / "out", config_path=path, engine="fermipy")
    assert time.monotonic() - t0 < 5
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.fixture(scope="module")
def stand_in_products(tmp_path_factory):
    "ScienceTools-format stand-in files (counts/exposure cubes, gtpsf PSF, diffuse background, yearly time bins) of a 5 deg ROI."
    from mwnb.demo.fermi import lat_stand_in_position, LAT_IRF_FILE
    gc = data_dir() / "gammapy-data-fermi"
    return fermi.lat_products_from_images(gc / "fermi-3fhl-gc-events.fits.gz", gc / "fermi-3fhl-gc-counts.fits.gz",
                                          gc / "fermi-3fhl-gc-exposure.fits.gz", gc / "fermi-3fhl-gc-background.fits.gz",
                                          gc / "fermi-3fhl-gc-psf.fits.gz", tmp_path_factory.mktemp("maps"), catalog=DR2,
                                          irf_dataset=gc / LAT_IRF_FILE, center=lat_stand_in_position(), width=5.0,
                                          time_bin_days=365.25)


# issue 13: the background of the demo conversion holds no source counts, and it says what it approximates
def test_demo_background_has_no_source_counts_and_approximations_are_stated(stand_in_products):
    from astropy.io import fits
    from astropy.coordinates import SkyCoord
    from mwnb.demo.fermi import lat_stand_in_position
    ds = fermi.read_lat_dataset(stand_in_products)
    taz = lat_stand_in_position()
    near = ds.counts.geom.to_image().separation(taz) < 0.2 * u.deg
    counts, bkg = ds.counts.data[:, near].sum(), ds.background.data[:, near].sum()
    assert counts > 5 * bkg                                    # the pulsar's photons are not in the background
    assert abs(ds.background.data.sum() - fermi._read_map(data_dir() / "gammapy-data-fermi" / "fermi-3fhl-gc-background.fits.gz")
               .cutout(taz, width=5 * u.deg).data.sum()) < 1e-3 * ds.background.data.sum()   # the diffuse image, only spread in energy
    approx = stand_in_products["approximations"]
    assert approx["counts"].startswith("exact") and approx["edisp"].startswith("none")
    assert "events more than 0.3 deg from every catalog source" in approx["background"]
    assert "energy-dependent PSF" in approx["psf"] and "share of the good time" in approx["time_bins"]
    assert "events more than 0.3 deg" in " ".join(fits.getheader(stand_in_products["background"])["HISTORY"])
    r68 = ds.psf.containment_radius(0.68, energy_true=[10, 1000] * u.GeV, position=taz).to_value("deg")
    assert r68[0] > 1.5 * r68[1]                               # not one PSF for all energies


# issue 13: the gammapy path consumes ScienceTools-format inputs, the target a new source on fixed/free catalog sources
def test_gammapy_path_on_sciencetools_inputs_target_is_a_new_source(stand_in_products, tmp_path):
    from astropy.io import fits
    from astropy.table import Table
    from mwnb.demo.fermi import lat_stand_in_position, LAT_STAND_IN
    with fits.open(stand_in_products["counts"]) as h: assert h[1].name == "EBOUNDS"            # gtbin CCUBE
    with fits.open(stand_in_products["exposure"]) as h: assert h[1].name == "ENERGIES"        # gtexpcube2
    with fits.open(stand_in_products["psf"]) as h: assert [x.name for x in h[1:]] == ["THETA", "PSF"]   # gtpsf
    taz = lat_stand_in_position()
    res = fermi.run_lat_likelihood(tmp_path / "out", maps=stand_in_products, target="stand-in", position=taz, engine="gammapy",
                                   catalog=DR2, exclude=LAT_STAND_IN["exclude"], free_radius=0.5)
    roi = res["roi_sources"]
    assert roi["name"][0] == "stand-in" and "4FGL J1809.8-2332" not in list(roi["name"]) and roi.meta["excluded"] == ["4FGL J1809.8-2332"]
    assert roi["free_norm"].sum() == 2 and (~roi["free_norm"]).sum() > 20   # the target + 1 free catalog source, the rest fixed
    names = [m.name for m in res["dataset"].models]
    assert "catalog sources (fixed)" in names and "4FGL J1811.9-2336" in names
    assert res["ts"] > 300
    loc = res["localisation"]
    assert SkyCoord(loc["ra"], loc["dec"], unit="deg").separation(taz) < 0.05 * u.deg   # the pulsar, found again
    assert 0 < loc["pos_err_semiminor"] <= loc["pos_err_semimajor"] < 0.05 and loc["pos_r95"] > loc["pos_r68"]
    target = Table.read(res["files"]["target"])
    assert target["ra"].unit == u.deg and target["flux"].unit == u.Unit("cm-2 s-1") and target["flux_err"][0] > 0
    models = Table.read(res["files"]["spectral_models"])
    assert list(models["model"]) == ["PowerLaw", "LogParabola", "ExpCutoffPowerLaw"] and models["chosen"].sum() == 1
    pl = models[models["model"] == "PowerLaw"][0]
    assert pl["ts_curv"] == 0 and all(models["minus2_loglike"] <= pl["minus2_loglike"] + 0.1)
    sed = QTable.read(res["files"]["sed"])
    assert sed.meta["reoptimize"] is True and sed.meta["ul"] == fermi.UL_LABEL and sed["ts"][0] > 100
    assert np.all(sed["is_ul"] == (sed["ts"] < 4)) and np.all(sed["dnde_ul"] > 0)
    params = Table.read(res["files"]["parameters"])
    assert {"stand-in", "4FGL J1811.9-2336"} <= set(params["component"]) and np.all(params["error"] > 0)
    lc = QTable.read(res["files"]["lightcurve"])
    assert len(lc) == 7 and lc["flux"].unit == u.Unit("cm-2 s-1") and lc.meta["ul"] == fermi.UL_LABEL
    assert np.isclose(lc["gti_fraction"].sum(), 1.0)
    assert res["tsmap"].geom.width[0][0] > 4.5 * u.deg                          # the whole 5 deg ROI
    with fits.open(res["files"]["maps"]) as h: assert [x.name for x in h[1:]] == ["COUNTS", "MODEL", "RESIDUAL"]


def test_without_sciencetools_or_maps_the_message_says_what_is_needed(tmp_path):
    from mwnb.errors import EngineUnavailableError
    with pytest.raises(EngineUnavailableError, match="gtbin.*gtexpcube2.*gtpsf.*lat_maps_dir"):
        fermi.run_lat_likelihood(tmp_path, engine="gammapy", target="B0453-685")


def test_energy_dispersion_applied_when_the_inputs_have_one(stand_in_products, tmp_path):
    from gammapy.irf import EDispKernelMap
    from gammapy.maps import Map
    counts = Map.read(stand_in_products["counts"])
    eax = counts.geom.axes["energy"]
    edisp = EDispKernelMap.from_gauss(energy_axis=eax, energy_axis_true=eax.copy(name="energy_true"), sigma=0.1, bias=0)
    edisp.write(tmp_path / "edisp.fits")
    ds = fermi.read_lat_dataset({**stand_in_products, "edisp": tmp_path / "edisp.fits"})
    assert ds.edisp is not None and ds.exposure.geom.axes["energy_true"].nbin == eax.nbin
    assert fermi.read_lat_dataset(stand_in_products).edisp is None


# defect 4: the LAT data server client follows the contract
def test_not_complete_until_state_2_even_when_a_fits_link_appears(local_archive, lat_server, tmp_path):
    lat_server.not_ready_polls, lat_server.links_before_complete = 3, True
    files = _fetch(tmp_path)
    polls = local_archive.requests_to("/fermi/QueryResults.cgi")
    assert len(polls) == 4                                    # the PH file is listed from poll 2 on; state 2 only at poll 4
    assert [p.name.split("_")[-1] for p in files["photon"]] == ["PH00.fits"]
    running = ("The state of your query is 1 (Query in progress) wget http://h/fermi/queries/X_PH00.fits")
    assert fermi.lat_file_urls(running, "http://h/") is None


@pytest.mark.parametrize("kind, quote", [("error", "Error: query"), ("expired", "has expired"), ("maintenance", "down due to maintenance")])
def test_error_expired_and_maintenance_pages_fail_fast_quoting_the_page(local_archive, lat_server, tmp_path, kind, quote):
    import time
    lat_server.not_ready_polls, lat_server.fail_with = 1, kind
    t0 = time.monotonic()
    with pytest.raises(fermi.LatQueryError, match=quote) as e:
        fermi.fetch_lat_data(*B0453, tmp_path, interval=0.01, timeout=900, progress=False)
    assert time.monotonic() - t0 < 3                          # not 900 s of polling
    assert e.value.kind == kind and quote in e.value.message
    assert len(local_archive.requests_to("/fermi/QueryResults.cgi")) <= 1
    assert not (tmp_path / "lat_query.json").exists()


def test_manifest_written_atomically_no_partial_json_after_a_crash(local_archive, lat_server, tmp_path, monkeypatch):
    import io, json
    lat_server.not_ready_polls = 0
    _fetch(tmp_path)
    manifest = tmp_path / "lat_query.json"
    before = manifest.read_text()
    real_open = io.open

    class CrashingWriter:
        "A text file that writes half of what it is given, then fails (a crash or a full disk mid-write)."
        def __init__(self, f): self.f = f
        def write(self, data):
            self.f.write(data[: len(data) // 2]); self.f.flush()
            raise OSError("simulated crash in the middle of writing the manifest")
        def __getattr__(self, name): return getattr(self.f, name)
        def __enter__(self): return self
        def __exit__(self, *exc): self.f.close()

    def crashing_open(file, mode="r", *a, **kw):
        f = real_open(file, mode, *a, **kw)
        return CrashingWriter(f) if mode == "w" else f

    monkeypatch.setattr(io, "open", crashing_open)
    with pytest.raises(OSError, match="simulated crash"):
        fermi.fetch_lat_data(*B0453, tmp_path, radius=12.0, interval=0.01, timeout=5, progress=False)   # a new query
    monkeypatch.setattr(io, "open", real_open)
    assert manifest.read_text() == before and json.loads(before)["form"]["shapefield"] == "10"   # the old manifest, whole
    assert sorted(p.name for p in tmp_path.iterdir() if "lat_query" in p.name) == ["lat_query.json"]   # no temporary left


def test_json_api_used_when_available(local_archive, lat_server, tmp_path):
    import json
    lat_server.api_enabled, lat_server.not_ready_polls = True, 2
    files = _fetch(tmp_path)
    api = local_archive.requests_to(fermi.LAT_API_PATH)
    assert [r["method"] for r in api] == ["POST", "GET", "GET", "GET"]     # submit, then state 1, 1, 2
    assert local_archive.requests_to("/fermi/LATDataQuery.cgi") == []      # the form was not used
    assert files["photon"][0].read_bytes() == lat_server.photon_file
    assert json.loads((tmp_path / "lat_query.json").read_text())["via"] == "json-api"


def test_form_used_when_the_json_api_is_absent(local_archive, lat_server, tmp_path):
    import json
    lat_server.api_enabled, lat_server.not_ready_polls = False, 1
    files = _fetch(tmp_path)
    api = local_archive.requests_to(fermi.LAT_API_PATH)
    assert len(api) == 1 and api[0]["method"] == "POST"                   # tried once, answered 404
    assert len(local_archive.requests_to("/fermi/LATDataQuery.cgi")) == 1
    assert files["photon"][0].read_bytes() == lat_server.photon_file
    assert json.loads((tmp_path / "lat_query.json").read_text())["via"] == "form"
