"Run every notebook in nbs/ the way `nbdev-test` does (IN_TEST=1, `slow`/`gpu` cells skipped), one test per notebook."
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook  # renamed: pytest would collect a `test_*` name as a test

CONFIG = get_config()
SKIP_FLAGS = CONFIG.tst_flags.split() if isinstance(CONFIG.tst_flags, str) else list(CONFIG.tst_flags)
NOTEBOOKS = sorted(Path(CONFIG.nbs_path).glob("*.ipynb"))


def test_every_notebook_is_run():
    "Every notebook in nbs/ is exactly one `test_notebook_runs` case (`test_reading_order` checks that every module has its notebook)."
    on_disk = sorted(p.name for p in Path(CONFIG.nbs_path).glob("*.ipynb"))
    cases = [p.name for p in next(m for m in test_notebook_runs.pytestmark if m.name == "parametrize").args[1]]
    assert cases == on_disk, f"notebooks not run: {sorted(set(on_disk) - set(cases))}; run but not in nbs/: {sorted(set(cases) - set(on_disk))}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(notebook):
    passed, seconds = run_notebook(notebook, skip_flags=SKIP_FLAGS, basepath=CONFIG.config_path)
    assert passed, f"{notebook.name} failed after {seconds:.1f}s (traceback above)"
