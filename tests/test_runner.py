"""Issue 9: `mwnb run` keeps good results, takes parameters as data, waits for nothing forever, finds its
tutorials in a wheel install, and every CLI error is one line."""
import hashlib, http.server, json, os, re, subprocess, sys, threading, time
from datetime import datetime
from pathlib import Path
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import mwnb
from mwnb.cli import main
from mwnb.errors import BadParameterError, UnknownTargetError
from mwnb.runner import (ResultExistsError, TutorialFailed, check_parameters, ensure_kernel, kernel_name,
                         notebook_parameters, parse_parameter, run_target, tutorials_dir)
from mwnb.targets import get_target, slug

REPO = Path(__file__).resolve().parents[1]

TINY_PARAMETERS = '''target = "x"
ra = 0.0
dec = 0.0
fail = False
sleep_s = 0.0
band = [1.0, 2.0]
archive = "auto"
out_dir = "."'''

TINY_BODY = '''import json, time
from pathlib import Path
from astropy.table import Table
time.sleep(sleep_s)
if fail: raise RuntimeError("asked to fail")
Path(out_dir, "product.txt").write_text(target)
Path(out_dir, "seen.json").write_text(json.dumps({"ra": ra, "band": band, "archive": archive}))
Table(rows=[("spectral fit", "sherpa")], names=["step", "engine"]).write(Path(out_dir, "engines.ecsv"), format="ascii.ecsv")'''

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


def test_values_are_typed_as_papermill_types_p():
    from papermill.cli import _resolve_type
    for text in ["2", "-2.5", "1e3", "True", "False", "None", "Vela X-1", "[1, 2]", " 3"]:
        assert parse_parameter(f"k={text}") == ("k", _resolve_type(text))
    assert [parse_parameter(f"k={t}")[1] for t in ["2", "2.5", "True", "None", "Vela X-1"]] == [2, 2.5, True, None, "Vela X-1"]
    # a list parameter of the notebook reads its text as YAML data, never as code
    assert check_parameters("swift_xrt_tpyx", {"band": "[0.5, 7]", "tie": "[nH, bbody.kT]"}) == \
        {"band": [0.5, 7], "tie": ["nH", "bbody.kT"]}
    with pytest.raises(BadParameterError, match="ra is a number"):
        check_parameters("crab_cloud_access", {"ra": "__import__('os')"})
    with pytest.raises(BadParameterError, match="target must be text, a number"):
        check_parameters("crab_cloud_access", {"target": object()})


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
    assert run["products"] == ["engines.ecsv", "product.txt", "seen.json", "tiny.html", "tiny.ipynb"]
    assert run["engines"] == {"spectral fit": "sherpa"}
    import papermill, astropy
    assert (run["versions"]["mwnb"], run["versions"]["papermill"], run["versions"]["astropy"]) == \
        (mwnb.__version__, papermill.__version__, astropy.__version__)
    started, ended = datetime.fromisoformat(run["started"]), datetime.fromisoformat(run["ended"])
    assert 0 < (ended - started).total_seconds() < 200 and started.utcoffset().total_seconds() == 0
    good = snapshot(d)
    assert set(good) == {"engines.ecsv", "product.txt", "seen.json", "tiny.html", "tiny.ipynb", "run.json"}

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
    code = ("import json, sys; from mwnb.cli import _usage, SUBCOMMANDS; u = _usage(); "
            "print(json.dumps([u, sorted(m for m in sys.modules if m.startswith('mwnb.'))]))")
    usage, loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True, timeout=60).stdout)
    from mwnb.cli import SUBCOMMANDS
    import importlib
    for sub, (mod, fn) in SUBCOMMANDS.items():
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
