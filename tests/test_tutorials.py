"""End-to-end tutorial runs through the `mwnb run` command against the local demo archive."""
import os, subprocess
from pathlib import Path
import pytest
from astropy.table import Table

REPO = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run(["mwnb", "run", *args], capture_output=True, text=True, cwd=REPO, timeout=900,
                          env={**os.environ, "MPLBACKEND": "Agg"})


@pytest.mark.slow
def test_b0453_runs_end_to_end_and_says_which_engines_ran(tmp_path):
    r = run("B0453-685", "--archive", "local", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    d = tmp_path / "b0453685"
    for f in ["b0453_multiwavelength.ipynb", "b0453_multiwavelength.html", "lat_fit/lat_sed.ecsv", "lat_fit/lat_sed.png",
              "lat_fit/lat_tsmap.png", "chandra_rgb_sources.png", "chandra_sources.ecsv", "chandra_sources.reg",
              "counterparts_gaia_dr3.ecsv", "counterparts_2mass.ecsv", "engines.ecsv", "lat/config.yaml"]:
        assert (d / f).stat().st_size > 0, f
    engines = dict(Table.read(d / "engines.ecsv", format="ascii.ecsv").iterrows("step", "engine"))
    assert engines["LAT likelihood"] in ("fermipy", "gammapy")
    assert engines["X-ray source detection"] in ("wavdetect", "photutils")
    sed = Table.read(d / "lat_fit" / "lat_sed.ecsv", format="ascii.ecsv")
    assert sed["e_ref"].unit is not None and len(sed) >= 3
    assert len(Table.read(d / "chandra_sources.ecsv", format="ascii.ecsv")) >= 3
    assert "LOCAL TEST/DEMO ARCHIVE" in (d / "b0453_multiwavelength.html").read_text()
