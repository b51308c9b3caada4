"""The foundation: command line, targets, configuration, the local archive servers driven by the real clients, the runner."""
import io, json, os, re, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import pyvo
from astropy.io import fits
from astropy.table import Table

from mwnb.config import conf, settings
from mwnb.targets import get_target
from mwnb.errors import UnknownTargetError, BadCoordinatesError

REPO = Path(__file__).resolve().parents[1]


def mwnb(*args, env=None, timeout=600):
    return subprocess.run(["mwnb", *args], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout)


def test_targets_cli_lists_the_targets_with_coordinates():
    r = mwnb("targets")
    assert r.returncode == 0, r.stderr
    assert "T Pyx" in r.stdout and "Crab" in r.stdout and "ra= 83.63321 dec=+22.01446" in r.stdout
    from astropy.coordinates import SkyCoord
    [line] = [l for l in r.stdout.splitlines() if l.startswith("B0453-685")]
    ra, dec = (float(x) for x in re.search(r"ra=\s*([-+\d.]+) dec=\s*([-+\d.]+)", line).groups())
    # the pulsar wind nebula where HEASARC's published B0453-685 notebook puts its LAT point source
    # (github.com/HEASARC/heasarc-tutorials, branch cxc-fermi-irsa-mass_source_analysis, commit afba669c:
    # gta.add_source('ps', {'ra': 73.408, 'dec': -68.489, ...}))
    pwn = SkyCoord(73.408, -68.489, unit="deg")
    assert SkyCoord(ra, dec, unit="deg").separation(pwn).arcsec < 10
    assert "73.39" in get_target("B0453-685").notes                      # the earlier position, kept as a note


def test_every_endpoint_is_overridable(monkeypatch):
    names = list(settings()["name"])
    assert {"heasarc_tap", "heasarc_sia", "heasarc_datalink", "irsa_tap", "irsa_sia", "mast_tap", "gaia_tap",
            "registry_tap", "fermi_lat_server", "sesame", "s3_endpoint", "heasarc_bucket", "timeout",
            "max_retries", "cache_dir", "tutorials_dir", "debug", "hats_gaia", "hats_2mass"} <= set(names)
    for n in names:
        if n == "archive": continue   # a choice, tested below
        number = isinstance(getattr(conf, n), (int, float)) and not isinstance(getattr(conf, n), bool)
        value = ("4096" if n == "s3_block_size" else "20000" if n.endswith("bandwidth") else "7") if number else "x"   # in range
        monkeypatch.setenv(f"MWNB_{n.upper()}", value)
        assert str(getattr(conf, n)) in (value, value + ".0", "False")
    monkeypatch.setenv("MWNB_ARCHIVE", "local")
    assert conf.archive == "local"


def test_config_values_are_range_checked(monkeypatch):
    from mwnb.errors import ConfigError
    for name, bad in [("TIMEOUT", "0"), ("TIMEOUT", "abc"), ("MAX_RETRIES", "-1"), ("ARCHIVE", "x"), ("N_WORKERS", "0")]:
        monkeypatch.setenv(f"MWNB_{name}", bad)
        with pytest.raises(ConfigError, match=f"MWNB_{name}"):
            getattr(conf, name.lower())
        monkeypatch.delenv(f"MWNB_{name}")


def test_unknown_target_offline_says_how_to_give_coordinates(monkeypatch):
    monkeypatch.setenv("MWNB_SESAME", "http://127.0.0.1:9/")
    monkeypatch.setenv("MWNB_MAX_RETRIES", "0")
    with pytest.raises(UnknownTargetError, match="--ra DEG --dec DEG"):
        get_target("Not A Real Source")
    r = mwnb("run", "Not A Real Source", "--archive", "local", env={"MWNB_SESAME": "http://127.0.0.1:9/", "MWNB_MAX_RETRIES": "0"})
    assert r.returncode == 1 and "--ra DEG --dec DEG" in r.stderr
    with pytest.raises(BadCoordinatesError):
        get_target("x", ra=10, dec=-91)


def test_pyvo_tap_search_against_local_tap(archive):
    t = Table({"name": ["a", "b", "c"], "ra": [10.0, 10.01, 50.0], "dec": [-5.0, -5.0, 5.0]})
    t["ra"].unit = t["dec"].unit = "deg"
    archive.add_table("demo_cone", t)
    res = pyvo.dal.TAPService(conf.heasarc_tap).search(
        "SELECT name, ra FROM demo_cone WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10.0, -5.0, 0.05)) = 1 ORDER BY name")
    tab = res.to_table()
    assert list(tab["name"]) == ["a", "b"] and str(tab["ra"].unit) == "deg"
    assert archive.requests_to("/heasarc/tap/sync")[-1]["params"]["REQUEST"] == "doQuery"


def test_fits_section_from_local_s3_with_astropy_fsspec(archive):
    data = np.arange(512 * 512, dtype=np.int32).reshape(512, 512)
    buf = io.BytesIO(); fits.PrimaryHDU(data).writeto(buf)
    uri = archive.put_object("nasa-heasarc", "demo/section.fits", buf.getvalue())
    archive.s3.reset()
    with fits.open(uri, use_fsspec=True, fsspec_kwargs={"anon": True, "default_block_size": 8192,
                                                        "client_kwargs": {"endpoint_url": conf.s3_endpoint}}) as h:
        part = h[0].section[100:110, 200:205]
    assert np.array_equal(part, data[100:110, 200:205])
    assert 0 < archive.s3.bytes_sent < len(buf.getvalue()) / 4


def test_local_archive_loaded_every_demo_module(local_archive):
    assert local_archive.populate_errors == {}


def test_mwnb_run_crab_local_writes_notebook_html_and_products(tmp_path):
    temp = tmp_path / "temp"; temp.mkdir()       # the run's own temporary directory: it must be left as it was found
    r = mwnb("run", "crab", "--archive", "local", "--out", str(tmp_path), env={"TMPDIR": str(temp)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert sorted(p.name for p in temp.iterdir()) == []
    d = tmp_path / "crab"
    for f in ["crab_cloud_access.ipynb", "crab_cloud_access.html", "wise_cutout.fits", "wise_cutout.png",
              "panstarrs_cutout.fits", "chandra_image.png", "rosat_image.png", "products.ecsv"]:
        assert (d / f).stat().st_size > 0, f
    assert "LOCAL TEST/DEMO ARCHIVE" in (d / "crab_cloud_access.html").read_text()
    run = json.loads((d / "run.json").read_text())
    assert run["status"] == "succeeded" and "wise_cutout.fits" in run["products"]
    assert "LOCAL TEST/DEMO ARCHIVE" in Table.read(d / "products.ecsv").meta["archive"]
    with fits.open(d / "wise_cutout.fits") as h:
        assert h[0].data.shape == (360, 360)      # 6 arcmin at 1 arcsec/pixel
    # relocatable: no text file of the finished result names the temporary run folder
    naming = []
    for f in d.rglob("*"):
        if f.is_file():
            try: text = f.read_text(encoding="utf-8")
            except UnicodeDecodeError: continue
            if ".running-" in text: naming.append(f.name)
    assert naming == [] and len(run["products"]) >= 8


def test_failing_tutorial_exits_nonzero_with_the_cell_error(tmp_path):
    r = mwnb("run", "crab", "--archive", "local", "--out", str(tmp_path), "-p", "ra=400")
    assert r.returncode == 1
    assert "BadCoordinatesError" in r.stderr and "ra=400" in r.stderr
    [failed] = (tmp_path / "crab").glob("failed-*")                 # the failed run is kept apart, readable
    assert (failed / "crab_cloud_access.html").exists() and not (tmp_path / "crab" / "crab_cloud_access.html").exists()
