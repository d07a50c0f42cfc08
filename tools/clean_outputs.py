"""Tidy the committed outputs of notebooks: keep the last frame of carriage-return-redrawn lines, drop terminal escape codes
and library warning lines (open_clip's "No pretrained weights loaded", Python's `...Warning:` lines with their source line),
and print whole a table whose plain-text form pandas cut with `...` (rebuilt from the same output's HTML table).

    python tools/clean_outputs.py nbs/28_tpt.ipynb ...   # rewrite these notebooks in place (default: every notebook in nbs/)

ttpt's own bars (`ttpt.core.checks.ProgressBar`) and its loading of models no longer write such output; this tidies outputs
saved before, without running a notebook again. `tests/test_notebook_outputs.py` fails on any that remain."""

import html
import json
import re
import sys
from pathlib import Path

import pandas as pd

ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]") # ANSI escape codes (cursor moves, erase line, colours)
WARNING = re.compile(r"^(WARNING:\S+:.*|ERROR:\S+:.*|\S+:\d+: \w*Warning: .*)$") # a logging warning or error, or Python's warnings.showwarning line

def last_frames(text:str) -> str:
    "Each line as its last carriage-return frame shows it, escape codes removed."
    return "\n".join(ESCAPE.sub("", line).rsplit("\r", 1)[-1] for line in text.split("\n"))

def without_warnings(text:str) -> str:
    "The text without warning lines (and the indented source line Python prints after a warning)."
    kept, lines = [], text.split("\n")
    skip_source = False
    for line in lines:
        if WARNING.match(line): skip_source = bool(re.match(r"^\S+:\d+: \w*Warning: ", line)); continue
        if skip_source and line.startswith("  "): skip_source = False; continue
        skip_source = False
        kept.append(line)
    return "\n".join(kept)

CUT = re.compile(r"\n\n\[\d+ rows x \d+ columns\]$") # pandas' note under a frame whose columns it left out

def _cells(row:str) -> list:
    "The text of each <th>/<td> of one HTML table row."
    return [html.unescape(re.sub(r"<.*?>", "", cell)).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]

def whole_table(table_html:str) -> str:
    "A pandas HTML table (one or more index columns, spans included; one or two header rows) as plain text with every column."
    head = [_cells(r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", re.search(r"<thead>(.*?)</thead>", table_html, re.S).group(1), re.S)]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", re.search(r"<tbody>(.*?)</tbody>", table_html, re.S).group(1), re.S)
    levels = len(re.findall(r"<th[^>]*>", rows[0])) # index columns: the <th> cells of a full row
    body, previous = [], None
    for row in rows:
        cells = _cells(row)
        if previous is not None and len(cells) < len(previous): cells = previous[:len(previous) - len(cells)] + cells # under a rowspan
        body.append(previous := cells)
    frame = pd.DataFrame([r[levels:] for r in body], index=[" ".join(r[:levels]) for r in body], columns=head[0][levels:])
    frame.index.name = " ".join(head[1][:levels]).strip() or None if len(head) > 1 else None
    with pd.option_context("display.max_columns", None, "display.width", 1000, "display.max_colwidth", None):
        return frame.to_string()

def clean_outputs(outputs:list) -> list:
    "Stream outputs tidied (those left empty dropped); cut tables printed whole."
    cleaned = []
    for output in outputs:
        if output.get("output_type") == "stream":
            text = without_warnings(last_frames("".join(output["text"])))
            if not text.strip(): continue
            output = {**output, "text": text.splitlines(keepends=True)}
        data = output.get("data", {})
        if CUT.search("".join(data.get("text/plain", ""))) and "text/html" in data:
            output = {**output, "data": {**data, "text/plain": whole_table("".join(data["text/html"])).splitlines(keepends=True)}}
        cleaned.append(output)
    return cleaned

def clean_notebook(path:Path) -> bool:
    "Rewrite `path` with tidied outputs; True if anything changed."
    notebook = json.loads(path.read_text())
    changed = False
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code": continue
        outputs = clean_outputs(cell.get("outputs", []))
        if outputs != cell.get("outputs", []): cell["outputs"], changed = outputs, True
    if changed: path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return changed

if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path(__file__).resolve().parents[1].joinpath("nbs").glob("*.ipynb"))
    for path in paths:
        if clean_notebook(path): print(f"tidied {path}")
