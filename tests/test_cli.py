"The installed `ttpt` command (the README's main job) runs end to end on a tiny configuration."
import subprocess
import sys
from pathlib import Path

from ttpt.evaluate import read_results

TTPT = Path(sys.executable).parent / "ttpt" # the console script `pip install` puts beside the interpreter


def run_ttpt(*args):
    return subprocess.run([str(TTPT), *args], capture_output=True, text=True, timeout=600)


def test_help_lists_commands():
    result = run_ttpt("--help")
    assert result.returncode == 0, result.stderr
    for command in ("zeroshot", "eval", "compare"):
        assert command in result.stdout


def test_compare_prints_tables_and_resumes(tmp_path):
    args = ("compare", "--datasets", "photo", "--methods", "zeroshot", "zero", "--n", "4", "--views", "16", "--out", str(tmp_path))
    first = run_ttpt(*args)
    assert first.returncode == 0, first.stderr
    assert "Top-1 accuracy" in first.stdout and "zero" in first.stdout
    files = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert files == ["zero__photo.csv", "zeroshot__photo.csv"]
    assert len(read_results(tmp_path / "zero__photo.csv")) == 4
    again = run_ttpt(*args)
    assert again.returncode == 0, again.stderr
    assert len(read_results(tmp_path / "zero__photo.csv")) == 4, "a finished run is not recomputed or duplicated"


def test_bad_input_is_a_clear_error():
    result = run_ttpt("eval", "--method", "tpt", "--dataset", "imagenet-z", "--n", "2")
    assert result.returncode != 0
    assert "Unknown dataset" in result.stderr
