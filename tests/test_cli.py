"""The command line's shape: the library's subcommands listed explicitly, plugins (the demo archive, its
benchmarks) added only through the `mwnb.subcommands` entry points, and library modules that import no
cycle and never reach the demo subpackage, by import or by name."""
import ast, os, subprocess, sys
from pathlib import Path
import pytest

from mwnb.cli import SUBCOMMANDS, PLUGIN_GROUP, subcommands

REPO = Path(__file__).resolve().parents[1]
LIBRARY = sorted(p for p in (REPO / "mwnb").glob("*.py") if p.name != "_modidx.py")   # nbdev's generated index aside
DEMO_SUBCOMMANDS = {"archive": ("mwnb.demo.archive", "archive_cli"),
                    "fit-benchmark": ("mwnb.demo.swift", "fit_benchmark_cli"),
                    "cutout-benchmark": ("mwnb.demo.cutout_benchmark", "cutout_benchmark_cli"),
                    "spectral-coverage": ("mwnb.demo.spectral_coverage", "spectral_coverage_cli")}


def imported_modules(path: Path) -> set:
    "Absolute names of the modules `path` (a module of package mwnb) imports, relative imports resolved."
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import): out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "mwnb" if node.level else ""   # library modules sit directly in mwnb/
            mod = ".".join(filter(None, [base, node.module]))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}   # `from mwnb import demo` imports a module too
    return out


def non_doc_strings(path: Path) -> list:
    "Every string constant of `path` except docstrings."
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def library_graph() -> dict:
    "mwnb module -> the mwnb library modules it imports."
    names = {f"mwnb.{p.stem}" for p in LIBRARY}
    return {f"mwnb.{p.stem}": sorted(m for m in imported_modules(p) if m in names and m != f"mwnb.{p.stem}") for p in LIBRARY}


def find_cycle(graph: dict):
    "One import cycle of `graph` as a list of modules, or None."
    state, stack = {}, []
    def visit(n):
        state[n] = "open"; stack.append(n)
        for m in graph.get(n, ()):
            if state.get(m) == "open": return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)): return c
        state[n] = "done"; stack.pop()
    for n in graph:
        if n not in state and (c := visit(n)): return c


def test_the_graph_reader_sees_imports_and_cycles(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("import os\nfrom .errors import MwnbError\nfrom mwnb import demo\nfrom . import config\n")
    assert imported_modules(f) >= {"os", "mwnb.errors", "mwnb.demo", "mwnb.config"}
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": [], "c": ["a"]}) is None
    f.write_text('"doc mentions mwnb.demo"\nX = ("mwnb.demo.archive", "archive_cli")\n')
    assert non_doc_strings(f) == ["mwnb.demo.archive", "archive_cli"]


def test_library_modules_import_no_cycle():
    graph = library_graph()
    assert len(graph) >= 20 and "mwnb.errors" in graph["mwnb.config"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_no_library_module_reaches_the_demo_subpackage(path):
    assert not {m for m in imported_modules(path) if m == "mwnb.demo" or m.startswith("mwnb.demo.")}
    named = [s for s in non_doc_strings(path) if "mwnb.demo" in s or "mwnb/demo" in s]
    assert named == [], f"{path.name} names the demo subpackage: {named}"


def test_library_subcommands_are_listed_and_plugins_come_from_entry_points(tmp_path):
    assert set(SUBCOMMANDS) == {"targets", "run", "xmatch", "xmatch-benchmark", "fit-spectra"}
    assert all(not mod.startswith("mwnb.demo") for mod, _ in SUBCOMMANDS.values())
    # a package that declares a subcommand in its metadata, and nothing else, adds it
    (tmp_path / "hello_mwnb.py").write_text('def hello_cli(name: str = "world"):\n    "Say hello."\n    print(f"hello {name}")\n')
    dist = tmp_path / "hello_mwnb-1.0.dist-info"; dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-mwnb\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{PLUGIN_GROUP}]\nhello = hello_mwnb:hello_cli\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run = lambda *a: subprocess.run([sys.executable, "-c", "import sys; from mwnb.cli import main; sys.exit(main())", *a],
                                    capture_output=True, text=True, env=env, timeout=60)
    r = run("hello", "--name", "plugin")
    assert (r.returncode, r.stdout) == (0, "hello plugin\n"), r.stderr
    assert "  hello              Say hello." in run("--help").stdout


def test_the_demo_archive_registers_its_subcommands_as_a_plugin():
    found = {k: v for k, v in subcommands().items() if k in DEMO_SUBCOMMANDS}
    assert found == DEMO_SUBCOMMANDS, ("the demo subcommands come from the package metadata (entry point group "
                                       f"{PLUGIN_GROUP}); reinstall the package (pip install -e .) after changing it")
