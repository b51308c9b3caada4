#!/usr/bin/env python
"""Put the executed tutorials (from `mwnb run ... --out DIR`) in place of nbs/tutorials/*.ipynb for rendering, and
put a note at the top of every page whose live run failed and was run on the local demo archive instead."""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
out = Path(sys.argv[1] if len(sys.argv) > 1 else "_executed")
NOTE = ("> **This page was executed on the local demo archive**, because its live run failed when the site was built: "
        "the figures and tables show labelled stand-ins, not data of the target. Run it yourself with "
        "`mwnb run TARGET --archive live`.")
for run_json in sorted(out.glob("*/run.json")):
    record = json.loads(run_json.read_text())
    for nb_path in sorted(run_json.parent.glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        if record.get("archive") == "local":
            nb["cells"].insert(1, {"cell_type": "markdown", "id": "localnote", "metadata": {}, "source": [NOTE]})
        (ROOT / "nbs" / "tutorials" / nb_path.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        print(f"{nb_path.name}: from the {record.get('archive', '?')} run of {record.get('target', {}).get('name', '?')}")
