"""`mwnb run` keeps good results, runs one at a time per result folder, survives signals, dead runs and a full
disk, takes parameters as data typed like the notebook's defaults, finds its tutorials in a wheel install, and
every CLI error is one line."""
import hashlib, http.server, json, os, re, shutil, signal, subprocess, sys, threading, time
from datetime import datetime
from pathlib import Path
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import mwnb
from mwnb.cli import main
from mwnb.errors import BadParameterError, UnknownTargetError, RunInProgressError
from mwnb.runner import (ResultExistsError, TutorialFailed, check_parameters, ensure_kernel, kernel_name,
                         notebook_parameters, parse_parameter, run_target, target_lock, tutorials_dir)
from mwnb.targets import get_target, slug

REPO = Path(__file__).resolve().parents[1]

TINY_PARAMETERS = '''target = "x"
ra = 0.0
dec = 0.0
fail = False
sleep_s = 0.0
band = [1.0, 2.0]
intrude = ""      # a folder to write a result into while running (another writer)
n_found = 1000    # write products.ecsv saying the search found this many (not for 1000)
fail_with = ""    # name of a built-in exception to raise
archive = "auto"
out_dir = "."'''

TINY_BODY = '''import json, time
from pathlib import Path
from astropy.table import Table
Path(out_dir, "where.txt").write_text(f"products in {Path(out_dir).resolve()}\\n")   # an absolute path, as tools write
time.sleep(sleep_s)
if fail: raise RuntimeError("asked to fail")
Path(out_dir, "product.txt").write_text(target)
Path(out_dir, "seen.json").write_text(json.dumps({"ra": ra, "band": band, "archive": archive}))
Table(rows=[("spectral fit", "sherpa")], names=["step", "engine"]).write(Path(out_dir, "engines.ecsv"), format="ascii.ecsv")
if intrude: Path(intrude).mkdir(parents=True, exist_ok=True); Path(intrude, "theirs.txt").write_text("theirs")
if n_found != 1000: Table(rows=[("images", n_found)], names=["survey", "n_found"]).write(Path(out_dir, "products.ecsv"))
import builtins
if fail_with: raise getattr(builtins, fail_with)(f"{fail_with} raised on purpose")'''

# quotes, a backslash, a newline, code-like text and no letter or digit: a name that is data, with an empty slug
ODD_NAME = '?" \\ ;\n) #'


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    "A one-cell tutorial `tiny` in MWNB_TUTORIALS_DIR (no kernelspec metadata, like a hand-made notebook); -> OUT."
    d = tmp_path / "tutorials"; d.mkdir()
    params = new_code_cell(TINY_PARAMETERS); params.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(cells=[params, new_code_cell(TINY_BODY)]), d / "tiny.ipynb")
    monkeypatch.setenv("MWNB_TUTORIALS_DIR", str(d))
    monkeypatch.setenv("MWNB_ARCHIVE", "local")
    return tmp_path / "out"


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and not p.relative_to(folder).parts[0].startswith("failed-")}


def one_line_error(capsys, prefix):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(prefix) and "Traceback" not in err, err
    return err


def test_parameter_key_must_be_a_name_of_the_parameters_cell(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    key = "cutout_arcmin = 6.0; import os; os.system('touch PWNED'); _"
    names = list(notebook_parameters("crab_cloud_access"))
    assert names[:4] == ["target", "ra", "dec", "cutout_arcmin"] and "out_dir" in names
    allowed = f"its parameters are: {', '.join(names)}"
    with pytest.raises(BadParameterError, match=re.escape(f"unknown parameter {key!r}; {allowed}")):
        run_target("crab", parameters={key: 1}, out=out, archive="local")
    yaml_file = tmp_path / "targets.yaml"
    yaml_file.write_text(f'Vela X-1:\n  ra: 135.5\n  dec: -40.5\n  tutorials:\n    crab_cloud_access: {{"{key}": 1}}\n')
    with pytest.raises(BadParameterError, match=re.escape(allowed)):
        run_target("Vela X-1", targets_file=yaml_file, out=out, archive="local")
    assert main(["run", "crab", "-p", "x;import os;os.system('touch PWNED');y=1", "--out", str(out)]) == 1
    one_line_error(capsys, "mwnb run: error: crab_cloud_access: unknown parameter \"x;import os;")
    assert main(["run", "crab", "-p", "out_dir=/tmp", "--out", str(out)]) == 1
    assert "out_dir is set by mwnb run: use --out" in one_line_error(capsys, "mwnb run: error:")
    assert not out.exists() and not (tmp_path / "PWNED").exists()


def test_values_are_read_as_the_type_of_the_notebooks_default():
    assert parse_parameter("k=2") == ("k", "2") and parse_parameter("name=Vela X-1") == ("name", "Vela X-1")
    # a list parameter of the notebook reads its text as YAML data, never as code
    assert check_parameters("swift_xrt_tpyx", {"band": "[0.5, 7]", "contour": "[tbabs.nH, bremss.kT]"}) == \
        {"band": [0.5, 7.0], "contour": ["tbabs.nH", "bremss.kT"]}
    with pytest.raises(BadParameterError, match=re.escape("lc_pi_range[1] is a whole number (default 1000), got 99.5")):
        check_parameters("swift_xrt_tpyx", {"lc_pi_range": "[30, 99.5]"})
    assert check_parameters("crab_cloud_access", {"cutout_arcmin": "4", "ra": 10, "target": "0"}) == \
        {"cutout_arcmin": 4.0, "ra": 10.0, "target": "0"}
    assert check_parameters("csc_fermi_crossmatch", {"b_max": "None", "n_nearest": "3"}) == {"b_max": None, "n_nearest": 3}
    refused = [("crab_cloud_access", {"ra": "__import__('os')"}, "ra is a number"),
               ("crab_cloud_access", {"ra": [1, 2]}, "ra is a number"),
               ("crab_cloud_access", {"ra": {"a": 1}}, "ra is a number"),
               ("crab_cloud_access", {"ra": None}, "ra cannot be None"),       # its comment does not offer None
               ("crab_cloud_access", {"ra": "nan"}, "ra must be finite"),
               ("crab_cloud_access", {"target": 3}, "target is text"),
               ("crab_cloud_access", {"target": object()}, "target is text"),
               ("crab_cloud_access", {"surveys": "wise"}, "surveys is a list"),
               ("crab_cloud_access", {"surveys": "[1]"}, "surveys[0] is text"),
               ("csc_fermi_crossmatch", {"n_nearest": "2.5"}, "n_nearest is a whole number"),
               ("csc_fermi_crossmatch", {"n_nearest": True}, "n_nearest is a whole number"),
               ("swift_xrt_tpyx", {"check_pileup": "maybe"}, "check_pileup is True or False")]
    for notebook, given, message in refused:
        with pytest.raises(BadParameterError, match=re.escape(message)):
            check_parameters(notebook, given)


def test_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    bomb = "surveys=[" + ", ".join(["&a0 [x, x, x, x, x, x, x, x, x, x]"] +
                                   [f"&a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 12)]) + "]"
    t0 = time.time()
    assert main(["run", "crab", "--archive", "local", "-p", bomb, "--out", str(tmp_path / "out")]) == 1
    assert time.time() - t0 < 5
    assert "anchors and aliases (&name, *name) are not accepted" in one_line_error(capsys, "mwnb run: error: crab_cloud_access: surveys")
    assert main(["run", "crab", "--archive", "local", "-p", "surveys=&a [*a]", "--out", str(tmp_path / "out")]) == 1
    one_line_error(capsys, "mwnb run: error: crab_cloud_access: surveys")
    (tmp_path / "t.yaml").write_text("Vela X-1: &v {ra: 135.5, dec: -40.5, tutorials: {crab_cloud_access: {surveys: [*v]}}}\n")
    assert main(["run", "Vela X-1", "--targets", str(tmp_path / "t.yaml"), "--archive", "local", "--out", str(tmp_path / "out")]) == 1
    assert "anchors and aliases" in one_line_error(capsys, "mwnb run: error: ")
    assert not (tmp_path / "out").exists()


def test_a_parameter_without_a_literal_default_is_not_a_name_error(tmp_path, monkeypatch):
    d = tmp_path / "tutorials"; d.mkdir()
    cell = new_code_cell('name = "x"\nlabel = name.upper()   # an expression: no literal default\nout_dir = "."')
    cell.metadata["tags"] = ["parameters"]
    nbformat.write(new_notebook(cells=[cell]), d / "expr.ipynb")
    monkeypatch.setenv("MWNB_TUTORIALS_DIR", str(d))
    assert notebook_parameters("expr") == {"name": "x", "label": None, "out_dir": "."}
    assert check_parameters("expr", {"label": "7"}) == {"label": 7}        # papermill's own reading of the text


@pytest.mark.timeout(240)
def test_failed_run_keeps_the_good_result_and_force_replaces_it(tiny):
    res = run_target(ODD_NAME, ["tiny"], {"band": "[3, 4]"}, out=tiny, ra=10, dec=20)
    d = tiny / f"target-{hashlib.sha1(ODD_NAME.encode()).hexdigest()[:8]}"
    assert res[0]["notebook"] == d / "tiny.ipynb" and res[0]["html"] == d / "tiny.html" and res[0]["run"] == d / "run.json"
    assert (d / "product.txt").read_text() == ODD_NAME                       # the name reached the notebook as text
    assert json.loads((d / "seen.json").read_text()) == {"ra": 10.0, "band": [3, 4], "archive": "local"}
    run = json.loads((d / "run.json").read_text())
    assert run["target"] == {"name": ODD_NAME, "ra": 10.0, "dec": 20.0, "slug": d.name}
    assert run["parameters"] == {"tiny": {"target": ODD_NAME, "ra": 10.0, "dec": 20.0, "band": [3, 4],
                                          "archive": "local", "out_dir": "."}}
    assert (run["archive"], run["status"], run["error"], run["kernel"]) == ("local", "succeeded", None, kernel_name())
    assert run["products"] == ["engines.ecsv", "product.txt", "seen.json", "tiny.html", "tiny.ipynb", "where.txt"]
    assert (d / "where.txt").read_text() == f"products in {d.resolve()}\n"   # the path the run used, moved with it
    assert run["engines"] == {"spectral fit": "sherpa"}
    import papermill, astropy
    assert (run["versions"]["mwnb"], run["versions"]["papermill"], run["versions"]["astropy"]) == \
        (mwnb.__version__, papermill.__version__, astropy.__version__)
    started, ended = datetime.fromisoformat(run["started"]), datetime.fromisoformat(run["ended"])
    assert 0 < (ended - started).total_seconds() < 200 and started.utcoffset().total_seconds() == 0
    good = snapshot(d)
    assert set(good) == {"engines.ecsv", "product.txt", "seen.json", "tiny.html", "tiny.ipynb", "run.json", "where.txt"}

    with pytest.raises(ResultExistsError, match="use --force to replace it"):
        run_target(ODD_NAME, ["tiny"], {"fail": True}, out=tiny, ra=10, dec=20)
    with pytest.raises(TutorialFailed, match="RuntimeError: asked to fail.*nothing in .* was replaced"):
        run_target(ODD_NAME, ["tiny"], {"fail": True}, out=tiny, ra=10, dec=20, force=True)
    assert snapshot(d) == good                                                # byte for byte
    [failed] = d.glob("failed-*")
    assert re.fullmatch(r"failed-\d{8}T\d{6}Z", failed.name)
    assert "asked to fail" in (failed / "tiny.ipynb").read_text() and (failed / "tiny.html").stat().st_size > 0
    failed_run = json.loads((failed / "run.json").read_text())
    assert failed_run["status"] == "failed" and "RuntimeError: asked to fail" in failed_run["error"]
    assert (failed / "where.txt").read_text() == f"products in {failed.resolve()}\n"
    assert "Traceback" not in (failed / "kernel.log").read_text()   # the kernel's own stderr, kept with the failure

    run_target(ODD_NAME, ["tiny"], {"band": "[5, 6]"}, out=tiny, ra=10, dec=20, force=True)
    assert json.loads((d / "seen.json").read_text())["band"] == [5, 6]
    assert [p.name for p in d.glob("failed-*")] == [failed.name]               # the failure record is kept
    assert [p.name for p in tiny.iterdir()] == [d.name]                       # no temporary folder left


@pytest.mark.timeout(120)
def test_a_cell_over_the_cell_timeout_is_stopped(tiny, monkeypatch):
    monkeypatch.setenv("MWNB_CELL_TIMEOUT", "2")
    t0 = time.time()
    with pytest.raises(TutorialFailed, match=r"a cell ran longer than 2 s \(MWNB_CELL_TIMEOUT\)"):
        run_target("slow", ["tiny"], {"sleep_s": 60}, out=tiny, ra=10, dec=20)
    assert time.time() - t0 < 40
    [failed] = (tiny / "slow").glob("failed-*")
    assert (failed / "tiny.ipynb").exists() and [p.name for p in (tiny / "slow").iterdir()] == [failed.name]


def test_slug_falls_back_to_a_stable_hash():
    assert slug("???") == "target-2d86c2a6" == "target-" + hashlib.sha1(b"???").hexdigest()[:8]
    assert slug("!!!") != slug("???") and slug("") == "target-da39a3ee"
    assert slug("T Pyx") == "tpyx" and slug("../..//x") == "x" and len(slug("a" * 300)) == 64


class _CountingSesame(http.server.BaseHTTPRequestHandler):
    paths = []
    def do_GET(self):
        _CountingSesame.paths.append(self.path)
        self.send_response(404); self.end_headers()
    def log_message(self, *args): pass


def test_local_mode_never_asks_sesame(tmp_path, monkeypatch, capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingSesame)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _CountingSesame.paths = []
    monkeypatch.setenv("MWNB_SESAME", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setenv("MWNB_MAX_RETRIES", "0")
    try:
        t0 = time.time()
        with pytest.raises(UnknownTargetError, match="in local archive mode names are not sent to Sesame.*--ra DEG --dec DEG"):
            get_target("Cyg X-1", archive="local")
        assert main(["run", "Cyg X-1", "--archive", "local", "--out", str(tmp_path / "out")]) == 1
        elapsed = time.time() - t0
        one_line_error(capsys, "mwnb run: error: Unknown target 'Cyg X-1'")
        assert _CountingSesame.paths == [] and elapsed < 2 and not (tmp_path / "out").exists()
        with pytest.raises(UnknownTargetError, match="could not be resolved by Sesame"):   # the counter counts
            get_target("Cyg X-1", archive="live")
        assert _CountingSesame.paths == ["/-ox/A?Cyg%20X-1"]
    finally:
        server.shutdown()


def test_ensure_kernel_uses_only_a_spec_of_this_python(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    for name in ("mwnb", kernel_name()):          # same names, another environment's Python
        (kernels / name).mkdir(parents=True)
        (kernels / name / "kernel.json").write_text(json.dumps({"argv": ["/other/venv/bin/python", "-m", "ipykernel_launcher",
                                                                         "-f", "{connection_file}"],
                                                                "display_name": "other venv", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))   # searched first
    name = ensure_kernel(prefix=tmp_path)
    assert name == kernel_name() == "mwnb-" + hashlib.sha1(sys.executable.encode()).hexdigest()[:8]
    assert KernelSpecManager().get_kernel_spec(name).argv[0] == sys.executable
    stamp = (kernels / name / "kernel.json").stat().st_mtime_ns
    assert ensure_kernel(prefix=tmp_path) == name and (kernels / name / "kernel.json").stat().st_mtime_ns == stamp
    assert KernelSpecManager().get_kernel_spec("mwnb").argv[0] == "/other/venv/bin/python"   # left alone, not used


def test_cli_bad_input_is_one_line(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "missing.fits"
    text = tmp_path / "notes.txt"; text.write_text("this is not a table\nat all\n")
    assert main(["xmatch", "--xray", str(missing), "--fermi", str(missing), "--out", str(tmp_path / "x")]) == 1
    assert "missing.fits" in one_line_error(capsys, "mwnb xmatch: error: ")
    assert main(["xmatch", "--xray", str(text), "--fermi", str(text), "--out", str(tmp_path / "x")]) == 1
    assert "notes.txt" in one_line_error(capsys, "mwnb xmatch: error: ")
    import mwnb.targets
    monkeypatch.setattr(mwnb.targets, "targets_table", lambda *a: 1 / 0)   # an unforeseen failure
    assert main(["targets"]) == 1
    assert "ZeroDivisionError: division by zero" in one_line_error(capsys, "mwnb targets: error: ")
    monkeypatch.setenv("MWNB_DEBUG", "1")
    assert main(["targets"]) == 1 and "Traceback" in capsys.readouterr().err


def test_bad_config_stops_mwnb_run_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MWNB_TIMEOUT", "-1")
    assert main(["run", "crab", "--archive", "local", "--out", str(tmp_path / "out")]) == 1
    err = one_line_error(capsys, "mwnb run: error: timeout = -1.0 is outside [0.1, 3600.0]")
    assert "MWNB_TIMEOUT" in err and not (tmp_path / "out").exists()


def test_help_shows_every_subcommand_doc_without_importing_them():
    code = ("import json, sys; from mwnb.cli import _usage; u = _usage(); "
            "print(json.dumps([u, sorted(m for m in sys.modules if m.startswith('mwnb.'))]))")
    usage, loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True, timeout=60).stdout)
    from mwnb.cli import subcommands
    import importlib
    for sub, (mod, fn) in subcommands().items():
        doc = getattr(importlib.import_module(mod), fn).__doc__.strip().splitlines()[0]
        assert f"  {sub:<18} {doc}" in usage.splitlines(), sub
    assert not {"mwnb.crossmatch", "mwnb.spectra", "mwnb.demo.archive", "mwnb.demo.swift", "mwnb.runner"} & set(loaded)


@pytest.mark.timeout(120)
def test_built_package_carries_the_tutorials_and_finds_them(tmp_path):
    lib = tmp_path / "lib"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(lib)], cwd=REPO, check=True,
                   capture_output=True, timeout=120)
    source = {p.name: p.read_bytes() for p in (REPO / "nbs" / "tutorials").glob("*.ipynb")}
    assert len(source) >= 4 and {p.name: p.read_bytes() for p in (lib / "mwnb" / "tutorials").glob("*.ipynb")} == source
    assert (lib / "mwnb" / "_checkout.txt").read_text().strip() == str(REPO)
    env = {k: v for k, v in os.environ.items() if k != "MWNB_TUTORIALS_DIR"}
    found = subprocess.run([sys.executable, "-c", "import mwnb.runner as r; print(r.tutorials_dir())"], cwd=tmp_path,
                           env={**env, "PYTHONPATH": str(lib)}, capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == str(lib / "mwnb" / "tutorials")
    assert tutorials_dir() == REPO / "nbs" / "tutorials"          # this editable checkout: the source notebooks


def mwnb_lines(err) -> list:
    "The lines of stderr written by mwnb (not the progress bar's)."
    return re.findall(r"mwnb [a-z-]+: .*", err)


def tiny_cli(out, *args, env_extra=None, **popen):
    "`mwnb run` of the tiny tutorial as a separate process (its own session, as a terminal job)."
    env = {**os.environ, "MWNB_TUTORIALS_DIR": os.environ["MWNB_TUTORIALS_DIR"], "MWNB_ARCHIVE": "local", **(env_extra or {})}
    cmd = [sys.executable, "-c", "import sys; from mwnb.cli import main; sys.exit(main())", "run", "Tiny", "--ra", "10",
           "--dec", "20", "--notebook", "tiny", "--out", str(out), "--no_html", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **popen)


def wait_for_running(out, timeout=60):
    "Wait until a run folder exists and its notebook is executing (the kernel wrote where.txt)."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if list(Path(out).glob(".tiny.running-*/where.txt")): return
        time.sleep(0.2)
    raise AssertionError(f"no run started in {out}")


@pytest.mark.timeout(240)
def test_two_runs_of_one_target_never_delete_a_finished_result(tiny):
    first = tiny_cli(tiny, "-p", "sleep_s=8")
    wait_for_running(tiny)
    second = tiny_cli(tiny, "-p", "sleep_s=0", "--force")     # even --force waits for no one: it is refused
    out2, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1[-2000:]
    assert second.returncode == 1 and re.search(r"mwnb run: error: another mwnb run \(pid \d+\) is writing .*tiny: "
                                                r"wait for it to end, or choose another --out", err2), err2[-2000:]
    d = tiny / "tiny"
    run = json.loads((d / "run.json").read_text())
    assert run["status"] == "succeeded" and run["parameters"]["tiny"]["sleep_s"] == 8.0
    assert sorted(p.name for p in tiny.iterdir()) == ["tiny"]           # no lock, no run folder left
    third = tiny_cli(tiny); _, err3 = third.communicate(timeout=120)   # afterwards: the usual refusal
    assert third.returncode == 1 and "already holds a result for 'Tiny': use --force" in err3
    with target_lock(d), pytest.raises(RunInProgressError, match="another mwnb run"):   # the lock, in-process
        run_target("Tiny", ["tiny"], out=tiny, ra=10, dec=20, force=True)


@pytest.mark.timeout(240)
def test_a_result_written_during_the_run_is_never_replaced(tiny):
    d = tiny / "tiny"
    with pytest.raises(ResultExistsError, match="already holds a result.*the failed run is in .*failed-"):
        run_target("Tiny", ["tiny"], {"intrude": str(d)}, out=tiny, ra=10, dec=20)
    assert (d / "theirs.txt").read_text() == "theirs"                  # the other writer's result stands
    [failed] = d.glob("failed-*")
    record = json.loads((failed / "run.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("ResultExistsError:")
    assert (failed / "product.txt").read_text() == "Tiny"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_signal_ends_the_run_as_interrupted_with_its_record(tiny, signame):
    run = tiny_cli(tiny, "-p", "sleep_s=60")
    wait_for_running(tiny)
    time.sleep(1)
    os.killpg(run.pid, getattr(signal, signame))                     # as a terminal or a batch system does
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130
    [last] = mwnb_lines(err)
    assert re.fullmatch(rf"mwnb run: interrupted \({signame}\); the failed run is in .*failed-\d{{8}}T\d{{6}}Z; "
                        r"nothing in .* was replaced", last), err[-2000:]
    assert "Traceback" not in err and "zmq" not in err                  # the kernel's complaints go to kernel.log
    d = tiny / "tiny"
    [failed] = d.glob("failed-*")
    record = json.loads((failed / "run.json").read_text())
    assert record["status"] == "interrupted" and record["error"] == f"RunInterrupted: {signame}"
    assert (failed / "where.txt").read_text() == f"products in {failed.resolve()}\n"
    assert sorted(p.name for p in tiny.iterdir()) == ["tiny"] and sorted(p.name for p in d.iterdir()) == [failed.name]


@pytest.mark.timeout(240)
def test_a_dead_runs_folder_is_named_by_the_next_run(tiny, capsys):
    tiny.mkdir()
    dead = tiny / ".tiny.running-0badc0de"; dead.mkdir()
    (dead / "tiny.ipynb").write_text("{}")                             # kill -9 left this, without run.json
    run_target("Tiny", ["tiny"], out=tiny, ra=10, dec=20)
    err = capsys.readouterr().err
    d = tiny / "tiny"
    [failed] = d.glob("failed-*")
    assert f"an earlier run that died left .tiny.running-0badc0de: kept as {failed}" in err
    record = json.loads((failed / "run.json").read_text())
    assert record["status"] == "interrupted" and record["products"] == ["tiny.ipynb"] and "killed" in record["error"]
    assert json.loads((d / "run.json").read_text())["status"] == "succeeded"
    assert sorted(p.name for p in tiny.iterdir()) == ["tiny"]


@pytest.mark.timeout(240)
def test_a_symlinked_result_folder_is_followed_and_a_file_out_refused(tiny, tmp_path):
    real = tmp_path / "elsewhere" / "tiny"; real.mkdir(parents=True)
    (real / "old.txt").write_text("old result")
    tiny.mkdir(); (tiny / "tiny").symlink_to(real, target_is_directory=True)
    with pytest.raises(ResultExistsError, match="elsewhere/tiny already holds a result"):
        run_target("Tiny", ["tiny"], out=tiny, ra=10, dec=20)
    res = run_target("Tiny", ["tiny"], out=tiny, ra=10, dec=20, force=True)
    assert (tiny / "tiny").is_symlink() and (tiny / "tiny").resolve() == real.resolve()
    assert (real / "product.txt").read_text() == "Tiny" and not (real / "old.txt").exists()
    assert res[0]["run"] == real.resolve() / "run.json"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadParameterError, match="is a file: give a folder"):
        run_target("Tiny", ["tiny"], out=tmp_path / "afile", ra=10, dec=20)


@pytest.mark.timeout(240)
def test_a_full_disk_is_a_typed_error_and_never_a_cut_run_json(tiny, tmp_path):
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("no user namespaces here to mount a small tmpfs")
    disk = tmp_path / "small"; disk.mkdir()
    check = ("import json, pathlib, sys; d = pathlib.Path(sys.argv[1]); "
             "print(json.dumps({str(p.relative_to(d)): p.stat().st_size for p in d.rglob('run.json')}))")
    script = (f"mount -t tmpfs -o size=96k tmpfs {disk} && "
              f"{sys.executable} -c 'import sys; from mwnb.cli import main; sys.exit(main())' run Tiny --ra 10 --dec 20 "
              f"--notebook tiny --out {disk} --no_html -p 'band=[{', '.join(['1.5'] * 20000)}]'; "
              f"echo rc=$?; {sys.executable} -c \"{check}\" {disk}")
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=200,
                       env={**os.environ, "MWNB_ARCHIVE": "local"})
    assert "rc=1" in r.stdout, r.stdout + r.stderr[-3000:]
    [line] = mwnb_lines(r.stderr)
    assert line.startswith("mwnb run: error: no space left on the device of") and "free some space" in line, r.stderr[-3000:]
    sizes = json.loads(r.stdout.strip().splitlines()[-1])
    assert all(n > 0 for n in sizes.values()), sizes                  # whole or absent, never 0 bytes


@pytest.mark.timeout(240)
def test_a_run_that_found_nothing_says_so(tiny, capsys):
    assert main(["run", "Tiny", "--ra", "10", "--dec", "20", "--notebook", "tiny", "-p", "n_found=0",
                 "--out", str(tiny), "--archive", "local"]) == 0
    out = capsys.readouterr().out
    assert "mwnb run: Tiny: the tutorials found nothing (products.ecsv:images all 0)" in out
    assert "  found:             NOTHING (images 0)" in out
    run = json.loads((tiny / "tiny" / "run.json").read_text())
    assert run["found"] == {"products.ecsv:images": 0} and run["found_nothing"] is True
    run_target("Tiny", ["tiny"], {"n_found": 3}, out=tiny, ra=10, dec=20, force=True)
    run = json.loads((tiny / "tiny" / "run.json").read_text())
    assert run["found"] == {"products.ecsv:images": 3} and run["found_nothing"] is False


@pytest.mark.timeout(240)
def test_offline_auto_archive_suggests_the_local_archive(tiny, monkeypatch, capsys):
    monkeypatch.delenv("MWNB_ARCHIVE")                                 # auto means live
    assert main(["run", "Tiny", "--ra", "10", "--dec", "20", "--notebook", "tiny", "-p", "fail_with=ConnectionError",
                 "--out", str(tiny), "--no_html"]) == 1
    [err] = mwnb_lines(capsys.readouterr().err)                        # besides the progress bar
    assert err.startswith("mwnb run: error: tiny.ipynb failed in cell") and "ConnectionError: ConnectionError raised on purpose" in err and \
        err.rstrip().endswith("offline? run with --archive local (the local demo archive)")


def test_a_registered_target_at_another_position_needs_a_new_name(tmp_path, capsys):
    assert main(["run", "crab", "--ra", "10", "--dec", "10", "--archive", "local", "--out", str(tmp_path / "out")]) == 1
    assert "give that position a name of its own" in one_line_error(capsys, "mwnb run: error: Crab is registered at")
    assert not (tmp_path / "out").exists()


def test_papermill_reads_every_name_of_every_tutorials_parameters_cell():
    import ast
    from papermill import inspect_notebook
    names = {}
    for path in sorted(tutorials_dir().glob("*.ipynb")):
        cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        assigned = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign) for t in node.targets]
        names[path.stem] = (list(inspect_notebook(str(path))), assigned)
    assert len(names) == 4
    for stem, (read, assigned) in names.items():
        assert read == assigned, f"{stem}: papermill misses {sorted(set(assigned) - set(read))}"
    assert check_parameters("swift_xrt_tpyx", {"grade": "0"}) == {"grade": "0"}   # the T Pyx -p grade=0 of the README


def test_version_and_help_spell_p_with_one_dash(capsys):
    assert main(["--version"]) == 0 and capsys.readouterr().out == f"mwnb {mwnb.__version__}\n"
    with pytest.raises(SystemExit): main(["run", "-h"])
    help_text = capsys.readouterr().out
    assert re.search(r"^\s+-p \[P \.\.\.\]\s+Parameter key=value", help_text, re.M) and "--p " not in help_text


def test_stdout_is_written_as_it_is_printed(tmp_path):
    code = "import sys, time; from mwnb.cli import main; sys.argv = ['mwnb', 'targets']; main(); time.sleep(30)"
    with open(tmp_path / "out.txt", "w") as f:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=f)
        try:
            t0 = time.time()
            while "Crab" not in (tmp_path / "out.txt").read_text() and time.time() - t0 < 20: time.sleep(0.2)
            assert "Crab" in (tmp_path / "out.txt").read_text()           # before the process ends
        finally: proc.kill(); proc.wait()


def test_html_figures_carry_their_alt_text(tmp_path, caplog):
    """A figure shown with provenance.show_figure keeps its title and stand-in note as alt text on the HTML page (the
    template nbconvert uses drops output metadata); a figure without one is counted in one mwnb warning, and
    nbconvert's own 'Alternative text is missing' warning no longer reaches the user."""
    import base64, logging
    from matplotlib.figure import Figure
    from mwnb.provenance import figure_alt, save_figure
    from mwnb.runner import render_html
    fig = Figure(figsize=(2, 2)); fig.add_subplot().plot([1, 2]); fig.axes[0].set_title("SED of B0453-685")
    png = save_figure(fig, tmp_path / "sed_fit.png", note="MWNBDEMO stand-in inputs", dpi=40)
    data = base64.b64encode(png.read_bytes()).decode()
    with_alt, without = new_code_cell("show_figure(png)"), new_code_cell("fig")
    with_alt.outputs = [nbformat.v4.new_output("display_data", data={"image/png": data},
                                               metadata={"image/png": {"alt": figure_alt(png)}})]
    without.outputs = [nbformat.v4.new_output("display_data", data={"image/png": data, "text/plain": "<Figure>"})]
    nb = new_notebook(cells=[with_alt, without])
    nbformat.write(nb, tmp_path / "t.ipynb")
    with caplog.at_level(logging.WARNING):
        page = render_html(tmp_path / "t.ipynb").read_text()
    alts = re.findall(r'<img alt="([^"]*)"', page)
    assert alts == ["SED of B0453-685 - MWNBDEMO stand-in inputs", "No description has been provided for this image"]
    assert [r.getMessage() for r in caplog.records] == [
        "t.html: 1 of 2 figures have no alt text (show them with mwnb.provenance.show_figure)"]
