"""LAT data server client against the local LAT server emulation, fermipy config checks, gammapy fit on real LAT maps."""
import hashlib
import pytest
import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from mwnb import fermi
from mwnb.config import data_dir
from mwnb.errors import ArchiveUnavailableError, MissingInputError, LatQueryError

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
    assert query[0]["params"]["energyfield"] == "300,2000000"   # whole MeV, as the seed and the published successor send
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


# the ROI is centred on ra/dec (no catalog name lookup) and the PWN is a free power-law point source
def test_b0453_config_centres_on_position_and_adds_the_pwn():
    cfg = fermi.fermipy_config("B0453-685", *B0453)
    assert "target" not in cfg["selection"] and (cfg["selection"]["ra"], cfg["selection"]["dec"]) == B0453
    (pwn,) = cfg["model"]["sources"]
    assert (pwn["name"], pwn["ra"], pwn["dec"], pwn["SpatialModel"], pwn["SpectrumType"]) == ("B0453-685", *B0453, "PointSource", "PowerLaw")
    assert pwn["Index"]["free"] and pwn["Prefactor"]["free"]


# fermipy's own pure-Python classes validate the written config and build the B0453-685 ROI from it
def test_fermipy_builds_the_b0453_roi_with_the_pwn_and_the_lmc(tmp_path):
    import yaml
    pytest.importorskip("fermipy")
    from fermipy.roi_model import ROIModel
    for name in ("events.txt", "spacecraft.fits", "gll_iem_v07.fits", "iso_P8R3_SOURCE_V3_v1.txt"): (tmp_path / name).touch()
    cfg = fermi.fermipy_config("B0453-685", *B0453, catalog=DR2)
    # absolute paths: ROIModel alone (without GTAnalysis) has no fileio.outdir to search relative diffuse names in
    written = yaml.safe_load(fermi.write_fermipy_config(cfg, tmp_path / "config.yaml", relative=False).read_text())
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


def test_written_paths_are_relative_and_resolve_from_the_config_folder_after_a_move(tmp_path, monkeypatch):
    import os, shutil, yaml
    pytest.importorskip("fermipy")
    from fermipy.utils import resolve_file_path
    run = tmp_path / ".b0453685.running-x" / "lat"; run.mkdir(parents=True)
    for name in ("spacecraft.fits", "gll_iem_v07.fits", "iso_P8R3_SOURCE_V3_v1.txt", "ph.fits"): (run / name).touch()
    (run / "events.txt").write_text("ph.fits\n")
    cfg = fermi.fermipy_config("B0453-685", *B0453, catalog=DR2, outdir="fermipy")
    fermi.write_fermipy_config(cfg, run / "config.yaml")
    assert ".running-" not in (run / "config.yaml").read_text()            # nothing points into the temporary run folder
    lat = tmp_path / "result" / "lat"; lat.parent.mkdir(); shutil.move(run, lat)   # the run moves into place
    written = yaml.safe_load((lat / "config.yaml").read_text())
    monkeypatch.chdir(lat)                                                  # run_fermipy works there
    # fermipy (gtanalysis.py): evfile/scfile as given from the working directory; diffuse: resolve_file_path over diffuse_dir, outdir, ...
    assert os.path.isfile(written["data"]["evfile"]) and os.path.isfile(written["data"]["scfile"])
    search = written["model"]["diffuse_dir"] + [written["fileio"]["outdir"], "$FERMI_DIFFUSE_DIR", "$FERMIPY_DATA_DIR"]
    assert os.path.samefile(resolve_file_path(written["model"]["galdiff"][0], search_dirs=search), lat / "gll_iem_v07.fits")
    paths = fermi.check_fermipy_inputs(written, lat, cwd=lat)
    assert {p.resolve() for p in paths} >= {(lat / "events.txt").resolve(), (lat / "ph.fits").resolve()}
    # missing diffuse model: named, with where fermipy looked and the FSSC address
    (lat / "iso_P8R3_SOURCE_V3_v1.txt").unlink()
    with pytest.raises(MissingInputError, match=r"iso_P8R3_SOURCE_V3_v1.txt is missing .*https://fermi.gsfc.nasa.gov/ssc/data/analysis/software/aux/iso_P8R3_SOURCE_V3_v1.txt"):
        fermi.check_fermipy_inputs(written, lat, cwd=lat)


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
    from mwnb.demo.fermi import lat_stand_in_position, LAT_IRF_FILE, lat_products_from_images
    gc = data_dir() / "gammapy-data-fermi"
    return lat_products_from_images(gc / "fermi-3fhl-gc-events.fits.gz", gc / "fermi-3fhl-gc-counts.fits.gz",
                                          gc / "fermi-3fhl-gc-exposure.fits.gz", gc / "fermi-3fhl-gc-background.fits.gz",
                                          gc / "fermi-3fhl-gc-psf.fits.gz", tmp_path_factory.mktemp("maps"), catalog=DR2,
                                          irf_dataset=gc / LAT_IRF_FILE, center=lat_stand_in_position(), width=5.0,
                                          time_bin_days=365.25)


# the background of the demo conversion holds no source counts, and it says what it approximates
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


# the gammapy path consumes ScienceTools-format inputs, the target a new source on fixed/free catalog sources
def test_gammapy_path_on_sciencetools_inputs_target_is_a_new_source_and_resumes_by_stage(stand_in_products, tmp_path, monkeypatch):
    from astropy.io import fits
    from astropy.table import Table
    from mwnb.demo.fermi import lat_stand_in_position, LAT_STAND_IN
    with fits.open(stand_in_products["counts"]) as h: assert h[1].name == "EBOUNDS"            # gtbin CCUBE
    with fits.open(stand_in_products["exposure"]) as h: assert h[1].name == "ENERGIES"        # gtexpcube2
    with fits.open(stand_in_products["psf"]) as h: assert [x.name for x in h[1:]] == ["THETA", "PSF"]   # gtpsf
    taz = lat_stand_in_position()
    kw = dict(maps=stand_in_products, target="stand-in", position=taz, engine="gammapy", catalog=DR2,
              exclude=LAT_STAND_IN["exclude"], free_radius=0.5)
    # a job stopped after its second stage (as a killed or timed-out run would be) ...
    stopped = fermi.run_lat_likelihood(tmp_path / "out", stop_after="roi_fit", **kw)
    job = tmp_path / "out" / "job"
    state = fermi.lat_job_state(job)
    assert stopped["stopped_after"] == "roi_fit" and state["stages_done"] == ["roi_model", "roi_fit"] and state["status"] == "stopped"
    assert not (tmp_path / "out" / "lat_sed.ecsv").exists()
    # ... resumes from there: the finished stages are not run again
    def must_not_run(ctx): raise AssertionError("a finished stage ran again")
    resumed = tuple((n, must_not_run if n in ("roi_model", "roi_fit") else fn) for n, fn in fermi.GAMMAPY_STAGES)
    monkeypatch.setattr(fermi, "GAMMAPY_STAGES", resumed)
    res = fermi.run_lat_likelihood(tmp_path / "out", **kw)
    assert fermi.lat_job_state(job)["status"] == "complete" and len(fermi.lat_job_state(job)["stages_done"]) == 6
    assert fermi.lat_job_result(job)["ts"] == res["ts"]
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
    # every product made from the stand-in products carries their label (MWNBPROD in the demo's ccube header)
    for k in ("target", "spectral_models", "parameters", "roi_sources", "sed", "lightcurve"):
        assert "made from stand-in inputs" in Table.read(res["files"][k]).meta["MWNBDEMO"], k
    for k in ("tsmap", "maps"): assert "made from stand-in inputs" in fits.getheader(res["files"][k])["MWNBDEMO"], k


DR4 = data_dir() / "pypi-fermipy-4fgl-dr4" / "gll_psc_v35.fit"
PWN = SkyCoord(73.408, -68.489, unit="deg")                      # HEASARC's published successor places its LAT source here


@pytest.mark.parametrize("catalog,target,position,width,free_radius", [
    (DR2, "B0453-685", PWN, 10.0, 5.0), (DR4, "B0453-685", PWN, 10.0, 5.0),
    (DR4, "W44 region", SkyCoord(34.6, -0.4, unit="deg", frame="galactic").icrs, 4.0, 2.0)])
def test_catalog_sources_have_only_their_normalisation_free_for_every_spectrum_type(catalog, target, position, width, free_radius):
    models, table = fermi.lat_roi_models(catalog, target, position, width=width, free_radius=free_radius,
                                         extdirs=[data_dir() / "fermipy-4fgl"])
    by_name = {m.name: m for m in models}
    free = table[1:][table["free_norm"][1:]]
    # every 4FGL spectrum type of the ROI has free sources, and gammapy orders their parameters differently
    assert set(free["spectrum"]) == set(table["spectrum"][1:]) == {"PowerLaw", "LogParabola", "PLSuperExpCutoff"}
    assert {by_name[n].spectral_model.parameters[0].name for n in free["name"]} == {"index", "amplitude"}
    for row in table[1:]:
        names = [p.name for p in by_name[row["name"]].parameters if not p.frozen]
        assert names == (["amplitude"] if row["free_norm"] else []), (row["name"], row["spectrum"], names)
        assert row["free_parameters"] == ",".join(names)
        assert row["free_norm"] == (row["sep_target"] <= free_radius)
    tgt = by_name[target]
    assert {p.name for p in tgt.parameters if not p.frozen} == {"lon_0", "lat_0", "index", "amplitude"}
    assert table["free_parameters"][0] == "index,amplitude,lon_0,lat_0"


def test_power_law_normalisation_found_by_name_not_position():
    from gammapy.modeling.models import PowerLawSpectralModel, ExpCutoffPowerLawSpectralModel, PowerLawNormSpectralModel
    assert PowerLawSpectralModel().parameters[0].name == "index"        # what made position 0 the wrong choice
    assert fermi.normalisation_parameter(PowerLawSpectralModel()).name == "amplitude"
    assert fermi.normalisation_parameter(ExpCutoffPowerLawSpectralModel()).name == "amplitude"
    assert fermi.normalisation_parameter(PowerLawNormSpectralModel()).name == "norm"


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


# the LAT data server client follows the contract
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
    files = _fetch(tmp_path, api="auto")                                 # only when asked
    api = local_archive.requests_to(fermi.LAT_API_PATH)
    assert [r["method"] for r in api] == ["POST", "GET", "GET", "GET"]     # submit, then state 1, 1, 2
    assert local_archive.requests_to("/fermi/LATDataQuery.cgi") == []      # the form was not used
    assert files["photon"][0].read_bytes() == lat_server.photon_file
    assert json.loads((tmp_path / "lat_query.json").read_text())["via"] == "json-api"


def test_form_used_when_the_json_api_is_absent(local_archive, lat_server, tmp_path):
    import json
    lat_server.api_enabled, lat_server.not_ready_polls = False, 1
    files = _fetch(tmp_path, api="auto")
    api = local_archive.requests_to(fermi.LAT_API_PATH)
    assert len(api) == 1 and api[0]["method"] == "POST"                   # tried once, answered 404
    assert len(local_archive.requests_to("/fermi/LATDataQuery.cgi")) == 1
    assert files["photon"][0].read_bytes() == lat_server.photon_file
    assert json.loads((tmp_path / "lat_query.json").read_text())["via"] == "form"


def test_html_form_is_the_default_even_when_the_json_api_answers(local_archive, lat_server, tmp_path):
    lat_server.api_enabled, lat_server.not_ready_polls = True, 0
    _fetch(tmp_path)
    assert local_archive.requests_to(fermi.LAT_API_PATH) == []              # the undocumented API is never tried unasked
    query = local_archive.requests_to("/fermi/LATDataQuery.cgi")
    assert len(query) == 1 and query[0]["params"]["energyfield"] == "300,2000000"   # whole MeV, as the form takes them


def test_rerun_after_a_poll_timeout_resumes_the_same_query(local_archive, lat_server, tmp_path):
    import json
    lat_server.not_ready_polls = 50
    with pytest.raises(ArchiveUnavailableError):
        fermi.fetch_lat_data(*B0453, tmp_path, interval=0.01, timeout=0.05, backoff=1.0, progress=False)
    saved = json.loads((tmp_path / "lat_query.json").read_text())
    assert "QueryResults" in saved["query"] and "files" not in saved
    lat_server.not_ready_polls = 0
    files = fermi.fetch_lat_data(*B0453, tmp_path, interval=0.01, timeout=5, progress=False)
    assert len(local_archive.requests_to("/fermi/LATDataQuery.cgi")) == 1   # submitted once, across both runs
    assert files["photon"] and json.loads((tmp_path / "lat_query.json").read_text())["query"] == saved["query"]


def test_lat_job_runs_in_its_own_process_is_polled_and_reports_a_stop(stand_in_products, tmp_path):
    from mwnb.demo.fermi import lat_stand_in_position, LAT_STAND_IN
    job = tmp_path / "job"
    kw = dict(out_dir=tmp_path / "out", maps=stand_in_products, target="stand-in", position=lat_stand_in_position(),
              engine="gammapy", catalog=DR2, exclude=LAT_STAND_IN["exclude"], free_radius=0.5, stop_after="roi_model")
    started = fermi.start_lat_job(job, **kw)
    assert started["status"] == "running" and started["pid"] != __import__("os").getpid()   # another process
    state = fermi.poll_lat_job(job, timeout=120, interval=0.2, progress=False)
    assert state["status"] == "stopped" and state["stages_done"] == ["roi_model"], state
    with pytest.raises(fermi.MwnbError, match="stopped after stages \\['roi_model'\\].*resumes"):
        fermi.lat_job_result(job)
    assert (job / "roi_model.pkl").exists()
    cleaned = fermi.clean_lat_job(job)
    assert cleaned["status"] == "cleaned" and not list(job.glob("*.pkl"))


class _StubGTA:
    "Records what fermipy's GTAnalysis is asked; stands in only where the ScienceTools are needed (setup, fit, write_roi...)."
    log, fit_quality = [], 3
    def __init__(self, config, logging=None): self.log.append(("init", config))
    @classmethod
    def create(cls, path): cls.log.append(("create", path)); return cls.__new__(cls)
    def __getattr__(self, name): return lambda *a, **k: self.log.append((name, a, k)) or self._answer(name, a, k)
    def _answer(self, name, a, k):
        if name == "fit": return {"fit_quality": self.fit_quality, "loglike": -10.0, "fit_status": 0}
        if name == "write_roi": (self.outdir / f"{a[0]}.npy").touch()
        if name == "localize": return dict.fromkeys(("ra", "dec", "pos_err_semimajor", "pos_err_semiminor", "pos_angle", "pos_r68", "pos_r95"), 1.0)
        if name == "curvature": return {"loglike_pl": -10.0, "loglike_lp": -9.0, "loglike_ple": -9.5}
    @property
    def roi(self):
        class Roi:
            def __contains__(s, name): return True
            def get_source_by_name(s, name): return type("S", (), {"name": name})()
        return Roi()


def test_fermipy_stages_apply_the_successor_gates_and_resume_from_write_roi(tmp_path, monkeypatch):
    from mwnb.errors import ConfigError
    _StubGTA.log.clear(); _StubGTA.outdir = tmp_path
    args = dict(config="config.yaml", target="B0453-685", free_radius=3.0, lc_bin_days=365.25, ts_curv_min=9.0, outdir=str(tmp_path))
    ctx = {"args": args, "args_key": "k", "_GTAnalysis": _StubGTA}
    fermi.run_stages(tmp_path / "job", fermi.FERMIPY_STAGES, dict(ctx), stop_after="roi_fit", progress=False)
    calls = [c[0] for c in _StubGTA.log]
    assert calls[:4] == ["init", "setup", "optimize", "delete_sources"]
    deletes = [c[2] for c in _StubGTA.log if c[0] == "delete_sources"]
    assert deletes[0]["minmax_ts"] == [-1, 24.0] and deletes[1]["minmax_npred"] == [-1, 5.0]   # TS < 25, npred < 5
    assert ("fit", (), {"min_fit_quality": 3}) in _StubGTA.log and ("write_roi", ("roi_fit",), {"make_plots": True}) in _StubGTA.log
    # the next run restores fermipy's state from the checkpoint instead of running setup again
    _StubGTA.log.clear()
    fermi.run_stages(tmp_path / "job", fermi.FERMIPY_STAGES, dict(ctx), stop_after="target", progress=False)
    assert _StubGTA.log[0] == ("create", str(tmp_path / "roi_fit.npy")) and "setup" not in [c[0] for c in _StubGTA.log]
    assert fermi.lat_job_state(tmp_path / "job")["stages_done"] == ["roi_fit", "target"]
    # a fit that does not reach quality 3 stops the job with a ConfigError
    _StubGTA.fit_quality = 2
    try:
        with pytest.raises(ConfigError, match="fit_quality 2"):
            fermi.run_stages(tmp_path / "job2", fermi.FERMIPY_STAGES, dict(ctx), progress=False)
    finally: _StubGTA.fit_quality = 3
    assert fermi.lat_job_state(tmp_path / "job2")["status"] == "failed"


def test_the_lat_form_refuses_fractional_energies_as_the_client_would_send_them_unformatted(local_archive, lat_server):
    "The demo LAT form takes whole MeV only (fermi_lat_server.yaml `energy_integers`); Python's '2e+06' is an error page."
    form = fermi.lat_query_form(73.4, -68.49)
    form["energyfield"] = f"{300.0},{2e6}"                     # what str() of the floats would send: '300.0,2000000.0'
    with pytest.raises(LatQueryError, match="two whole numbers of MeV"):
        fermi.submit_lat_query(form)
    form["energyfield"] = "300,2000000"
    assert "QueryResults.cgi?id=" in fermi.submit_lat_query(form)


def test_lat_inputs_label_comes_from_the_inputs_headers_not_the_archive_mode(stand_in_products, tmp_path):
    import shutil
    from astropy.io import fits
    from astropy.table import Table
    assert "made from stand-in inputs" in fermi.lat_inputs_label(stand_in_products)   # MWNBPROD of the demo conversion
    clean = {}
    for k in ("counts", "exposure", "psf", "background"):                  # the same products without the MWNB* keywords
        clean[k] = shutil.copyfile(stand_in_products[k], tmp_path / f"{k}.fits")
        with fits.open(clean[k], mode="update") as h:
            for x in h:
                for key in [c for c in x.header if c.startswith("MWNB")]: del x.header[key]
                x.header.remove("HISTORY", ignore_missing=True, remove_all=True)
    assert fermi.lat_inputs_label(clean) == ""
    t = Table({"a": [1]}); fermi.label_lat_products({"x": clean["counts"]}, [t], "")
    assert "MWNBDEMO" not in t.meta and "MWNBDEMO" not in fits.getheader(clean["counts"])
    fermi.label_lat_products({"x": clean["counts"]}, [t], "stand-in maps")
    assert t.meta["MWNBDEMO"] == "MWNBDEMO: stand-in maps" and fits.getheader(clean["counts"])["MWNBDEMO"] == "stand-in maps"
    # a fermipy configuration: the photon files its list names
    photons = tmp_path / "ph.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header([("MWNBDEMO", True), ("MWNBFOR", "LAT photons of B0453-685")]))]).writeto(photons)
    (tmp_path / "events.txt").write_text("ph.fits\n")
    (tmp_path / "config.yaml").write_text("data:\n  evfile: events.txt\n")
    assert "LAT photons of B0453-685" in fermi.fermipy_inputs_label(tmp_path / "config.yaml")
    (tmp_path / "events.txt").write_text("")
    assert fermi.fermipy_inputs_label(tmp_path / "config.yaml") == ""
