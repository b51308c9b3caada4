#!/usr/bin/env python
"""The documentation site without Quarto: run nbdev's processing (what `nbdev_docs` runs before `quarto render`), write
`_proc/_quarto.yml` from the top-level `_quarto.yml` (whose paths name `nbs/...`), and check what Quarto would need:
every path and glob resolves, every notebook is in the sidebar, every exported name has its `show_doc` output, and no
prose is lost: nbdev turns a notebook's first markdown cell into front matter (title, description, `- key: value` lines)
and drops the cell, so that cell may hold only the `# title` and `> summary` lines, and every line of every other
markdown cell must reach the processed page.
Usage: python .ci/docs_check.py [--no-proc]   (the docs workflow then runs `quarto render _proc`)."""
import ast, glob, json, re, sys
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROC = ROOT / "_proc"
problems = []

def strip_nbs(node):
    "The config with every 'nbs/...' path made relative to _proc (which mirrors nbs/)."
    if isinstance(node, dict): return {k: strip_nbs(v) for k, v in node.items()}
    if isinstance(node, list): return [strip_nbs(v) for v in node]
    if isinstance(node, str) and node.startswith("nbs/"): return node[len("nbs/"):]
    return node

def sidebar_entries(node):
    "Every path or glob listed in the sidebar contents."
    if isinstance(node, str): yield node
    elif isinstance(node, list):
        for v in node: yield from sidebar_entries(v)
    elif isinstance(node, dict):
        if "contents" in node: yield from sidebar_entries(node["contents"])
        elif "href" in node: yield node["href"]

def main():
    if "--no-proc" not in sys.argv:
        from nbdev.serve import proc_nbs
        proc_nbs()
    cfg = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    proc_cfg = strip_nbs(cfg)
    proc_cfg["project"]["output-dir"] = "../" + cfg["project"].get("output-dir", "_docs")
    (PROC / "_quarto.yml").write_text(yaml.safe_dump(proc_cfg, sort_keys=False))
    # every render path/glob and sidebar/navbar entry resolves in _proc
    entries = list(proc_cfg["project"].get("render", [])) + list(sidebar_entries(proc_cfg["website"]["sidebar"]["contents"]))
    entries += [x["href"] for x in proc_cfg["website"].get("navbar", {}).get("left", []) if "href" in x]
    listed = set()
    for e in entries:
        found = sorted(glob.glob(str(PROC / e)))
        if not found: problems.append(f"_quarto.yml lists {e!r}, which matches nothing in _proc/")
    for e in sidebar_entries(proc_cfg["website"]["sidebar"]["contents"]):
        listed |= {Path(p).resolve() for p in glob.glob(str(PROC / e))}
    notebooks = sorted(ROOT.glob("nbs/*.ipynb")) + sorted(ROOT.glob("nbs/tutorials/*.ipynb"))
    for nb in notebooks:
        if (PROC / nb.relative_to(ROOT / "nbs")).resolve() not in listed:
            problems.append(f"{nb.relative_to(ROOT)} is not in the _quarto.yml sidebar")
    # no prose lost: the first markdown cell becomes front matter and is dropped, the rest must be on the page
    for nb in notebooks:
        cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "markdown"]
        extra = [l for l in "".join(cells[0]["source"]).splitlines() if l.strip() and not l.startswith(("# ", "> "))] if cells else []
        if extra:
            problems.append(f"{nb.relative_to(ROOT)}: its first markdown cell has {len(extra)} line(s) besides the '# title' "
                            f"and '> summary' ({extra[0][:60]!r}...): nbdev drops that cell from the page; move them to "
                            "a cell of their own")
        proc = PROC / nb.relative_to(ROOT / "nbs")
        if not proc.exists(): continue
        page = "\n".join("".join(c["source"]) for c in json.loads(proc.read_text())["cells"])
        page = re.sub(r"\[(`[^`]+`)\]\([^)]*\)", r"\1", page)   # nbdev links backticked names: [`name`](url) -> `name`
        lost = [l for c in cells[1:] for l in "".join(c["source"]).splitlines() if l.strip() and l.strip() not in page]
        if lost: problems.append(f"{nb.relative_to(ROOT)}: {len(lost)} markdown line(s) missing from the processed page, "
                                 f"first {lost[0][:60]!r}")
    # every exported name of every library notebook has its rendered show_doc in the processed page
    for nb in sorted(ROOT.glob("nbs/[0-9]*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        names = set()
        for c in cells:
            src = "".join(c["source"])
            if c["cell_type"] != "code" or not src.lstrip().startswith("#| export"): continue
            for n in ast.parse(src).body:
                if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and not n.name.startswith("_"): names.add(n.name)
        proc = PROC / nb.name
        if not proc.exists(): problems.append(f"{nb.name}: not processed"); continue
        text = proc.read_text()
        for name in sorted(names):
            if f"### {name}" not in text and f"#### {name}" not in text:
                problems.append(f"{nb.name}: no show_doc output for {name}")
    for p in problems: print("FAIL:", p)
    print(f"docs check: {len(notebooks)} notebooks, {len(problems)} problems")
    return 1 if problems else 0

if __name__ == "__main__": sys.exit(main())
