"No notebook imports from a notebook that comes later in the reading order (the notebooks' sorted file names)."
import ast
import json
import re
from pathlib import Path

from fastcore.nbio import read_nb
from nbdev.config import get_config

from test_platform import library_modules

NBS = Path(get_config().nbs_path)
NOTEBOOKS = sorted(NBS.glob("[!_]*.ipynb"))

def _code(cell):
    return "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!")))


def ttpt_imports(notebook):
    "The ttpt modules a notebook imports, anywhere in its code cells (exported functions included)."
    found = set()
    for cell in read_nb(notebook).cells:
        if cell.cell_type != "code": continue
        for node in ast.walk(ast.parse(_code(cell))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ttpt."): found.add(node.module.removeprefix("ttpt."))
            if isinstance(node, ast.Import): found |= {a.name.removeprefix("ttpt.") for a in node.names if a.name.startswith("ttpt.")}
    return found


def exporters():
    "module -> the notebook that exports it."
    out = {}
    for notebook in NOTEBOOKS:
        for cell in read_nb(notebook).cells:
            m = re.search(r"^#\|\s*default_exp\s+(\S+)", cell.source, re.M) if cell.cell_type == "code" else None
            if m: out[m.group(1)] = notebook.name
    return out


def later_imports():
    "notebook -> the modules it imports that a later notebook exports."
    exported_by, order = exporters(), [p.name for p in NOTEBOOKS]
    found = {}
    for notebook in NOTEBOOKS:
        later = {m for m in ttpt_imports(notebook) if m in exported_by and order.index(exported_by[m]) > order.index(notebook.name)}
        if later: found[notebook.name] = later
    return found


def test_no_notebook_imports_a_later_one():
    exported_by = exporters()
    found = {nb: sorted(f"ttpt.{m} ({exported_by[m]})" for m in mods) for nb, mods in later_imports().items()}
    assert not found, f"notebooks importing modules that later notebooks export: {found}"


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    "An import inside an exported function counts (a lazy import cannot hide a layer running upwards); magics are skipped."
    cell = {"cell_type": "code", "execution_count": None, "id": "a", "metadata": {}, "outputs": [],
            "source": ["#| export\n", "def f():\n", "    from ttpt.cli import main\n", "%time import ttpt.core.models\n"]}
    notebook = tmp_path / "x.ipynb"
    notebook.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert ttpt_imports(notebook) == {"cli"}, ttpt_imports(notebook)


def test_every_module_has_one_notebook():
    modules = [m.removeprefix("ttpt.") for m in library_modules()]
    assert sorted(exporters()) == modules, (sorted(exporters()), modules)
