"""End-to-end tutorial runs through the `mwnb run` command against the local demo archive."""
import base64, json, os, re, subprocess
from pathlib import Path
import pytest
from astropy.io import fits
from astropy.table import Table

REPO = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run(["mwnb", "run", *args], capture_output=True, text=True, cwd=REPO, timeout=900,
                          env={**os.environ, "MPLBACKEND": "Agg"})


def run_dir(out, tutorial) -> Path:
    "OUT/<slug>/ of a finished run: the folder holding the executed `tutorial` notebook."
    found = list(Path(out).glob(f"*/{tutorial}.ipynb"))
    assert len(found) == 1, f"expected one {tutorial}.ipynb under {out}/<slug>/, found {found}"
    return found[0].parent


def shown_pngs(ipynb) -> list:
    "Bytes of every image/png output of an executed notebook."
    nb = json.loads(Path(ipynb).read_text())
    return [base64.b64decode(o["data"]["image/png"]) for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if "image/png" in o.get("data", {})]


def check_figures_shown(d, tutorial, expected_pngs, png_dir=None):
    "The tutorial saved exactly `expected_pngs`, its executed notebook shows each of them once, its HTML embeds them with alt text."
    png_dir = png_dir or d
    pngs = sorted(png_dir.rglob("*.png"))
    assert {str(p.relative_to(png_dir)) for p in pngs} == set(expected_pngs)
    shown = shown_pngs(d / f"{tutorial}.ipynb")
    assert sorted(shown) == sorted(p.read_bytes() for p in pngs)          # the files themselves, not a re-render
    html = (d / f"{tutorial}.html").read_text()
    embedded = [base64.b64decode(b) for b in re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', html)]
    assert sorted(embedded) == sorted(shown)
    alts = re.findall(r'<img [^>]*?alt="([^"]*)"', html)                    # each says what it shows (provenance.show_figure)
    assert len(alts) == len(embedded) and all(a and "No description" not in a for a in alts), alts


def python_warnings(ipynb) -> list:
    "(cell index, text) of every stderr output of an executed notebook that carries a Python warning (or a tool's 'fatal:')."
    nb = json.loads(Path(ipynb).read_text())
    found = []
    for i, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []) if c["cell_type"] == "code" else []:
            text = "".join(o.get("text", "")) if o.get("output_type") == "stream" and o.get("name") == "stderr" else ""
            if "Warning" in text or "warn(" in text or "WARNING" in text or "fatal:" in text: found.append((i, text.strip()[:300]))
    return found


def test_python_warnings_are_found_in_stderr_outputs_only(tmp_path):
    stream = lambda name, text: {"output_type": "stream", "name": name, "text": [text]}
    cells = [{"cell_type": "code", "outputs": [stream("stderr", "LAT files: 100%|##########| 1/1\n")]},     # a progress bar
             {"cell_type": "code", "outputs": [stream("stdout", "a UserWarning printed on purpose\n")]},
             {"cell_type": "code", "outputs": [stream("stderr", "/x/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n")]},
             {"cell_type": "code", "outputs": [stream("stderr", "fatal: No names found, cannot describe anything.\n")]},
             {"cell_type": "markdown", "source": ["Warning: prose"]}]
    (tmp_path / "nb.ipynb").write_text(json.dumps({"cells": cells}))
    assert [i for i, _ in python_warnings(tmp_path / "nb.ipynb")] == [2, 3]


@pytest.mark.slow
def test_b0453_runs_end_to_end_shows_its_figures_and_says_which_engines_ran(tmp_path):
    r = run("B0453-685", "--archive", "local", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    d = run_dir(tmp_path, "b0453_multiwavelength")
    for f in ["b0453_multiwavelength.ipynb", "b0453_multiwavelength.html", "lat_fit/lat_sed.ecsv", "lat_fit/lat_sed.png",
              "lat_fit/lat_tsmap.png", "lat_fit/lat_tsmap.fits", "lat_fit/lat_maps.fits", "lat_fit/lat_target.ecsv",
              "lat_fit/lat_spectral_models.ecsv", "lat_fit/lat_parameters.ecsv", "lat_fit/lat_lightcurve.ecsv",
              "lat/roi_sources.ecsv", "chandra_rgb_sources.png", "chandra_sources.ecsv", "chandra_sources.reg",
              "counterparts_gaia_dr3.ecsv", "counterparts_2mass.ecsv", "engines.ecsv", "lat/config.yaml"]:
        assert (d / f).stat().st_size > 0, f
    check_figures_shown(d, "b0453_multiwavelength", ["lat_fit/lat_sed.png", "lat_fit/lat_tsmap.png", "lat_fit/lat_maps.png",
                                                     "lat_fit/lat_lightcurve.png", "chandra_brightest_spectrum.png",
                                                     "chandra_rgb_sources.png", "chandra_image.png", "wmap_W_I_mollview.png",
                                                     "wmap_W_Q_mollview.png", "wmap_W_I_cutout.png", "sed_fit.png"])
    lat_target = Table.read(d / "lat_fit" / "lat_target.ecsv", format="ascii.ecsv")
    assert lat_target["ts"][0] > 100 and lat_target["ra"].unit == "deg" and 0 < lat_target["pos_r95"][0] < 0.1
    assert "stand-in" in lat_target["name"][0]
    models = Table.read(d / "lat_fit" / "lat_spectral_models.ecsv", format="ascii.ecsv")
    assert list(models["model"]) == ["PowerLaw", "LogParabola", "ExpCutoffPowerLaw"] and models["chosen"].sum() == 1
    lc = Table.read(d / "lat_fit" / "lat_lightcurve.ecsv", format="ascii.ecsv")
    assert len(lc) == 7 and lc.meta["ul"].startswith("95% CL upper limit (one-sided")
    mw = Table.read(d / "sed.ecsv", format="ascii.ecsv")                    # radio, X-ray and gamma-ray points, labelled stand-ins
    assert {"radio", "X-ray", "gamma-ray"} <= set(mw["band"]) and all(mw["stand_in"]) and mw["flux"].unit is not None
    assert mw["ul"][mw["band"] == "radio"].all()                            # WMAP's aperture holds LMC emission: an upper limit
    assert "STAND-IN" in mw.meta["label"]
    naima = Table.read(d / "sed_fit_parameters.ecsv", format="ascii.ecsv")
    assert {"alpha", "e_cutoff", "B", "W_e"} <= set(naima["parameter"])
    merged = Table.read(d / "chandra_sources_counterparts.ecsv", format="ascii.ecsv")
    assert len(merged) >= 3 and "Src 2" in set(str(r) for r in merged["role"])
    assert (d / "xray_spectral_fit.ecsv").stat().st_size > 0
    roi = Table.read(d / "lat" / "roi_sources.ecsv", format="ascii.ecsv")   # the real B0453-685 ROI model, LMC templates
    assert roi["name"][0] == "B0453-685" and "LMC-FarWest.fits" in list(roi["template"])
    engines = dict(Table.read(d / "engines.ecsv", format="ascii.ecsv").iterrows("step", "engine"))
    assert engines["LAT likelihood"] in ("fermipy", "gammapy")
    assert engines["X-ray source detection"] in ("wavdetect", "photutils")
    sed = Table.read(d / "lat_fit" / "lat_sed.ecsv", format="ascii.ecsv")
    assert sed["e_ref"].unit is not None and len(sed) >= 3
    assert len(Table.read(d / "chandra_sources.ecsv", format="ascii.ecsv")) >= 3
    html = (d / "b0453_multiwavelength.html").read_text()
    assert "LOCAL TEST/DEMO ARCHIVE" in html and "stand-in: M82 ObsID 10027" in html
    assert python_warnings(d / "b0453_multiwavelength.ipynb") == []


@pytest.mark.slow
def test_galactic_plane_crossmatch_shows_its_figures(tmp_path):
    r = run("Galactic plane", "--archive", "local", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    d = run_dir(tmp_path, "csc_fermi_crossmatch")
    assert len(Table.read(d / "csc_fermi_crossmatch" / "pairs.ecsv", format="ascii.ecsv")) > 0   # so the flux-ratio figures exist
    check_figures_shown(d, "csc_fermi_crossmatch",
                        ["chandra_observations_aitoff.png", "csc_aitoff.png", "csc_lon_lat_hist.png", "csc_plane_strip.png",
                         "matched_csc_fermi_aitoff.png", "flux_ratio_plane_map.png", "gaia_variable_fraction_by_class.png",
                         "matches_per_fermi_lon_lat.png", "flux_ratio_vs_l_b.png", "flux_ratio_by_class.png",
                         "counterparts_by_class.png", "gaia_variability_by_class.png"], png_dir=d / "csc_fermi_crossmatch")
    assert python_warnings(d / "csc_fermi_crossmatch.ipynb") == []


@pytest.mark.slow
def test_crab_on_the_demo_archive_titles_stand_ins_from_their_headers(tmp_path):
    r = run("Crab", "--archive", "local", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    d = run_dir(tmp_path, "crab_cloud_access")
    check_figures_shown(d, "crab_cloud_access", ["wise_cutout.png", "panstarrs_cutout.png", "chandra_image.png", "rosat_image.png"])
    summary = {row["survey"]: row for row in Table.read(d / "products.ecsv", format="ascii.ecsv")}
    assert set(summary) == {"wise", "panstarrs", "chandra", "rosat"}
    for survey, row in summary.items():
        assert row["n_found"] >= 1 and row["description"].startswith("stand-in, not Crab data: "), (survey, row["description"])
    # the notes are the files' own labels: the demo's MWNBDEMO text, and for ROSAT what the file's header says it is
    assert "2MASS K Galactic-centre pixels re-pointed to the Crab" in summary["wise"]["description"]
    assert "Chandra ObsID 1838 (G21.5-0.9) image re-pointed" in summary["chandra"]["description"]
    assert "not a ROSAT file (TELESCOP=ESONTTB" in summary["rosat"]["description"]
    for name in ("wise_cutout", "panstarrs_cutout", "chandra_image"):          # the saved cutouts keep the label
        assert "re-pointed" in fits.getheader(d / f"{name}.fits")["MWNBDEMO"]
    text = (d / "crab_cloud_access.ipynb").read_text()
    assert text.count("stand-in, not Crab data") >= 4
    assert python_warnings(d / "crab_cloud_access.ipynb") == []


@pytest.mark.slow
def test_target_with_nothing_in_the_archive_finishes_with_a_summary(tmp_path):
    r = run("Vela X-1", "--ra", "135.5286", "--dec", "-40.5547", "--archive", "local", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    d = run_dir(tmp_path, "crab_cloud_access")
    summary = Table.read(d / "products.ecsv", format="ascii.ecsv")
    assert list(summary["survey"]) == ["wise", "panstarrs", "chandra", "rosat"] and list(summary["n_found"]) == [0, 0, 0, 0]
    for survey, radius, desc in zip(["allWISE", "PanSTARRS", "Chandra", "ROSAT"], [0.1, 0.1, 0.2, 1.0], summary["description"]):
        assert desc.startswith(f"no {survey} images within {radius} deg of Vela X-1 (135.5286, -40.5547) in ")
        assert desc.endswith("(local demo archive)")
    text = (d / "crab_cloud_access.ipynb").read_text()
    assert "0 of 4 surveys gave an image; nothing from: wise, panstarrs, chandra, rosat" in text
    assert "IndexError" not in text and not list(d.glob("*.png"))
