"Every benchmark script still runs on this checkout: `--help` exits 0 (a renamed module or moved function breaks it at import)."
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_runs(script):
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stderr[-2000:]
