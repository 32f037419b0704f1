"""The benchmarks' last results as Markdown tables, for the docs: `docs/performance.md` names a result with a
`<!-- results NAME -->` line and the site shows `benchmarks/results/NAME.json` there as a table, with the machine it
was measured on (an MkDocs hook: `hooks:` in `mkdocs.yml`). So the page shows what the last run of a benchmark
wrote, never a copy typed by hand. Reads JSON only: no torch, no transformers."""

import json
import os
import re

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MARKER = re.compile(r"^<!-- results (\w+) -->$", re.M)


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def table(name: str, results_dir: str = RESULTS) -> str:
    """benchmarks/results/NAME.json as a Markdown table, its settings and its machine below it."""
    path = os.path.join(results_dir, f"{name}.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: run `python benchmarks/{name}.py` to write it")
    with open(path) as f:
        result = json.load(f)
    rows = result.pop("rows")
    machine = result.pop("machine")
    command = result.pop("command", f"python benchmarks/{name}.py")  # a run kept under a name of its own
    columns = list(dict.fromkeys(c for r in rows for c in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    settings = "; ".join(f"{k}: {cell(v)}" for k, v in result.items() if not isinstance(v, dict))
    lines += ["", f"*`{command}` on {machine['device']}, torch {machine['torch']}"
                  + (f"; {settings}" if settings else "") + f" (`benchmarks/results/{name}.json`)*"]
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs) -> str:
    """MkDocs hook: each `<!-- results NAME -->` line becomes that benchmark's table."""
    return MARKER.sub(lambda m: table(m.group(1)), markdown)
