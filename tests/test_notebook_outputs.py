"""The committed outputs of every notebook are clean: no output over a size limit, no carriage-return frames of a redrawn
progress bar, no terminal escape codes, no library warning lines, no table cut with `...`, and every notebook with code has outputs
(`tools/clean_outputs.py` tidies outputs saved before these rules)."""

import json
import re
from pathlib import Path

import pytest

NBS = Path(__file__).resolve().parents[1] / "nbs"
NOTEBOOKS = sorted(NBS.glob("*.ipynb"))
TEXT_LIMIT = 20_000 # characters of text in one output (a table of a few hundred rows)
OUTPUT_LIMIT = 1_000_000 # bytes of one output as stored (a figure of dpi ≤ 100)
SILENT = {"03_zeroshot": "its cells are checks that print nothing", "07_classifiers": "its cells are checks that print nothing"} # notebooks allowed no outputs, and why
WARNING = re.compile(r"^(WARNING:\S+:|ERROR:\S+:|\S+:\d+: \w*Warning: |.*No pretrained weights loaded)", re.M) # a library's log line or a Python warning

def _texts(output):
    "The text an output shows: a stream's, or a result's plain text and HTML."
    if output.get("output_type") == "stream": return ["".join(output["text"])]
    data = output.get("data", {})
    return ["".join(data[k]) for k in ("text/plain", "text/html") if k in data]

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_clean(path):
    cells = json.loads(path.read_text())["cells"]
    problems = []
    for number, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            where = f"{path.name} cell {number} ({cell.get('id')})"
            if len(json.dumps(output)) > OUTPUT_LIMIT: problems.append(f"{where}: an output of {len(json.dumps(output))} bytes")
            for text in _texts(output):
                if len(text) > TEXT_LIMIT: problems.append(f"{where}: {len(text)} characters of text")
                if re.search(r"\r(?!\n)", text): problems.append(f"{where}: carriage-return frames ({text.count(chr(13))})")
                if "\x1b[" in text: problems.append(f"{where}: terminal escape codes")
                if re.search(r"\n\[\d+ rows x \d+ columns\]$", text): problems.append(f"{where}: a table cut with '...'")
                problems += [f"{where}: warning line {m.group(0)!r}" for m in WARNING.finditer(text)]
    assert not problems, "\n".join(problems)

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_outputs(path):
    if path.stem in SILENT: pytest.skip(SILENT[path.stem])
    cells = json.loads(path.read_text())["cells"]
    shown = [c for c in cells if c["cell_type"] == "code" and not "".join(c["source"]).lstrip().startswith(("#| export", "#| hide", "#| default_exp"))]
    if shown: assert any(c.get("outputs") for c in cells), f"{path.name} has code cells but no outputs: execute it"

def test_limits_catch_what_they_should():
    assert re.search(r"\r(?!\n)", "  0%|\r 50%|\r100%|\n") and not re.search(r"\r(?!\n)", "done\r\n")
    assert WARNING.search("WARNING:root:No pretrained weights loaded for model 'RN50'.")
    assert WARNING.search("/x/ttpt/core/prompts.py:144: UserWarning: repeated class names")
    assert WARNING.search("ERROR:root:Failed to download weights for tag 'openai': ...") # open_clip logs before ttpt's own error
    assert not WARNING.search("ttpt: warning: repeated class names ['missile']") # ttpt's own one-line message to users
