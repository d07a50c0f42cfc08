"Run every notebook in nbs/ the way `nbdev-test` does (IN_TEST=1, `slow`/`gpu` cells skipped), one test per notebook."
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook  # renamed: pytest would collect a `test_*` name as a test

CONFIG = get_config()
SKIP_FLAGS = CONFIG.tst_flags.split() if isinstance(CONFIG.tst_flags, str) else list(CONFIG.tst_flags)
NOTEBOOKS = sorted(p for p in Path(CONFIG.nbs_path).glob("*.ipynb") if not p.name.startswith("_"))


def test_notebooks_found():
    assert len(NOTEBOOKS) >= 3, NOTEBOOKS


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(notebook):
    passed, seconds = run_notebook(notebook, skip_flags=SKIP_FLAGS, basepath=CONFIG.config_path)
    assert passed, f"{notebook.name} failed after {seconds:.1f}s (traceback above)"
