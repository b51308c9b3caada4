"""Swift-XRT observations and parallel XRT processing (mwnb.swift), with stand-in HEASoft tools on PATH."""
import json, os, sys
from pathlib import Path
import numpy as np
import pytest
from astropy.io import fits
from regions import Regions

from mwnb import swift
from mwnb.swift import (process_observations, worker_count, heasoft_status, query_swift_observations, days_since,
                        select_window, swift_obs_uri, download_observation, write_regions, _heasoftpy_task)
from mwnb.demo.swift import TPYX, selected_obsids

# A stand-in for each HEASoft tool: records argv, PFILES and cwd, writes a local .par file the way
# HEASoft does (first PFILES directory), creates the outputs the next step reads, and fails for the
# observation whose indir contains $FAKE_FAIL.
FAKE_TOOL = r'''#!{python}
import json, os, sys, pathlib
task = pathlib.Path(sys.argv[0]).name
args = dict(a.split("=", 1) for a in sys.argv[1:])
record = pathlib.Path(os.environ["FAKE_RECORD"]) / f"{task}_{os.getpid()}.json"
record.write_text(json.dumps(dict(task=task, argv=sys.argv[1:], PFILES=os.environ.get("PFILES"), cwd=os.getcwd())))
local_pfiles = os.environ["PFILES"].split(";")[0]
pathlib.Path(local_pfiles, task + ".par").write_text("".join(f"{k},s,h,\"{v}\",,,\"\"\n" for k, v in args.items()))
if task == "xrtpipeline" and os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in args["indir"]:
    print("xrtpipeline_0.13.7: Error: attitude file sw*pat.fits not found in " + args["indir"])
    sys.exit(1)
if task == "xrtpipeline":
    out = pathlib.Path(args["outdir"]); out.mkdir(parents=True, exist_ok=True)
    (out / (args["steminputs"] + "xpcw3po_cl.evt")).write_text("events")
if task == "xrtexpomap":
    pathlib.Path(args["outdir"], args["stemout"] + "_ex.img").write_text("expomap")
for key in ("phafile", "bkgphafile", "arffile", "imagefile", "lcfile", "outfile"):
    if key in args: pathlib.Path(args[key]).write_text(task)
print(task, "done")
'''
TOOLS = ("xrtpipeline", "xrtexpomap", "xrtproducts", "ftgrouppha")


@pytest.fixture
def fake_heasoft(tmp_path, monkeypatch):
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir(); record.mkdir()
    for t in TOOLS:
        (bin_dir / t).write_text(FAKE_TOOL.replace("{python}", sys.executable)); (bin_dir / t).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RECORD", str(record))
    monkeypatch.setenv("HEADAS", str(tmp_path / "headas"))
    return record


def calls(record):
    return [json.loads(p.read_text()) for p in sorted(record.glob("*.json"))]


def test_parallel_processing_reports_one_failure_and_finishes_the_rest(fake_heasoft, tmp_path, monkeypatch):
    obsids = ["00031968059", "00031968060", "00031968061"]
    monkeypatch.setenv("FAKE_FAIL", "00031968060")
    assert heasoft_status() == ""
    res = process_observations(obsids, tmp_path / "data", tmp_path / "work", TPYX["ra"], TPYX["dec"], n_workers=2)
    assert list(res["obsid"]) == obsids
    assert list(res["status"]) == ["ok", "failed", "ok"]
    bad = res[res["obsid"] == "00031968060"][0]
    assert bad["failed_task"] == "xrtpipeline" and "attitude file sw*pat.fits not found" in bad["log"]
    assert bad["log"].startswith("xrtpipeline indir=")         # the log starts with the command that ran
    for row in res[res["status"] == "ok"]:
        assert Path(row["grouped"]).name == f"sw{row['obsid']}xpcw3posr_grp.pha" and Path(row["grouped"]).exists()
        assert Path(row["image"]).exists() and Path(row["arf"]).exists() and Path(row["lightcurve"]).exists()

    c = calls(fake_heasoft)
    by_task = {t: [x for x in c if x["task"] == t] for t in TOOLS}
    assert len(by_task["xrtpipeline"]) == 3 and len(by_task["ftgrouppha"]) == 2   # nothing ran after the failure
    for x in c:
        args = dict(a.split("=", 1) for a in x["argv"])
        obsid = Path(x["cwd"]).name
        # each task runs in its observation's directory, with its own pfiles first, then HEASoft's
        assert x["PFILES"] == f"{tmp_path / 'work' / obsid / 'pfiles'};{tmp_path / 'headas' / 'syspfiles'}"
        assert (tmp_path / "work" / obsid / "pfiles" / f"{x['task']}.par").exists()
        assert "mode" not in args                                # xrtpipeline rejects heasoftpy's `mode`
        if x["task"] == "xrtpipeline":
            assert args["exitstage"] == "2" and args["steminputs"] == f"sw{obsid}"
            assert args["indir"] == str((tmp_path / "data" / obsid).resolve())
            assert float(args["srcra"]) == TPYX["ra"] and float(args["srcdec"]) == TPYX["dec"]
            assert args["clobber"] == "yes" and args["createexpomap"] == "no"
        if x["task"] == "xrtproducts":
            src = Regions.read(args["regionfile"], format="ds9")[0]
            bkg = Regions.read(args["bkgregionfile"], format="ds9")[0]
            assert abs(src.radius.to_value("arcsec") - 180) < 1e-3
            assert abs(bkg.inner_radius.to_value("arcsec") - 240) < 1e-3 and abs(bkg.outer_radius.to_value("arcsec") - 390) < 1e-3
            assert args["bkgextract"] == "yes" and args["expofile"].endswith("_ex.img")
        if x["task"] == "ftgrouppha":
            assert (args["grouptype"], args["groupscale"]) == ("min", "1") and args["outfile"].endswith("sr_grp.pha")


def test_worker_count_follows_conf_and_cpu_count(monkeypatch):
    monkeypatch.setenv("MWNB_N_WORKERS", "1")
    assert worker_count() == 1
    monkeypatch.setenv("MWNB_N_WORKERS", "512")
    assert worker_count() == os.cpu_count()


def test_without_heasoft_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    msg = heasoft_status()
    assert "HEASoft is not available" in msg and "xrtpipeline" in msg
    res = process_observations(["00031968059"], tmp_path / "data", tmp_path / "work", TPYX["ra"], TPYX["dec"], n_workers=1)
    assert res["status"][0] == "failed" and "not found on PATH" in res["message"][0]


def test_xrtpipeline_never_goes_through_heasoftpy(monkeypatch):
    import types
    fake = types.ModuleType("heasoftpy"); fake.xrtpipeline = fake.ftgrouppha = lambda **kw: None
    monkeypatch.setitem(sys.modules, "heasoftpy", fake)
    assert _heasoftpy_task("xrtpipeline") is None and _heasoftpy_task("ftgrouppha") is fake.ftgrouppha


def test_observations_from_local_archive_and_download(archive, tmp_path):
    t = query_swift_observations(TPYX["ra"], TPYX["dec"], radius_arcmin=12)
    assert len(t) == 12 and (np.diff(np.asarray(t["start_time"])) > 0).all()
    select_window(days_since(t, TPYX["discovery_mjd"]), 123, 151)
    assert list(t["obsid"][t["selected"]]) == selected_obsids()
    row = t[t["selected"]][0]
    uri = swift_obs_uri(row["obsid"], row["start_time"])
    assert uri == "s3://nasa-heasarc/swift/data/obs/2011_08/00031968059/"
    files = download_observation(uri, tmp_path, subdirs=("xrt/products",))
    names = sorted(p.name for p in files)
    assert names == ["sw00031968059xpcw3po_sk.img.gz", "sw00031968059xpcw3po_sr.pha", "target_sr.arf"]
    pha = next(p for p in files if p.name.endswith("_sr.pha"))
    assert fits.getheader(pha, "SPECTRUM")["MWNBDEMO"] == "simulated from published T Pyx fit"
    rmf = swift.fetch_response(pha)                  # the RMF comes from the CALDB copy in the bucket
    assert rmf == pha.parent / "swxpc0to12s6_20130101v014.rmf.gz" and rmf.stat().st_size == 1995169
    mtimes = [p.stat().st_mtime_ns for p in files]
    again = download_observation(uri, tmp_path, subdirs=("xrt/products",))   # complete files are skipped
    assert [p.stat().st_mtime_ns for p in again] == mtimes


@pytest.mark.slow
def test_tutorial_runs_end_to_end_on_local_archive(tmp_path, capsys):
    "`mwnb run 'T Pyx' --archive local`: the tutorial fits the archive's spectra and writes the table and plots."
    from astropy.table import Table
    from mwnb.cli import main
    assert main(["run", "T Pyx", "--notebook", "swift_xrt_tpyx", "--archive", "local", "--out", str(tmp_path), "--no_html"]) == 0
    out = tmp_path / "tpyx"
    t = Table.read(out / "xrt_fit.ecsv")
    assert list(t["obsid"]) == selected_obsids() and t.meta["engine"] == "sherpa"
    assert t["tbabs.nH_lo"][0] < 0.1364 < t["tbabs.nH_hi"][0]
    for png in ("exposure_by_day.png", "xrt_images.png", "xrt_fit_spectra.png", "xrt_parameter_evolution.png"):
        assert (out / png).stat().st_size > 20_000, png
    text = (out / "swift_xrt_tpyx.ipynb").read_text()
    assert "engine: sherpa" in text and "HEASoft is not available" in text
