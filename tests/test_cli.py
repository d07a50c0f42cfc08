"The installed `ttpt` command (the README's main job) runs end to end on a tiny configuration."
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert "95% CI" in first.stdout and "diff" in first.stdout and "fixed/broken" in first.stdout
    files = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert files == ["zero__photo.csv", "zeroshot__photo.csv"]
    assert len(read_results(tmp_path / "zero__photo.csv")) == 4
    again = run_ttpt(*args)
    assert again.returncode == 0, again.stderr
    assert len(read_results(tmp_path / "zero__photo.csv")) == 4, "a finished run is not recomputed or duplicated"


@pytest.mark.parametrize("args, message", [
    (("eval", "--method", "tpt", "--dataset", "imagenet-z", "--n", "2"), "unknown dataset 'imagenet-z'"),
    (("eval", "--method", "tpt", "--dataset", "/no/such/folder"), "unknown dataset '/no/such/folder'"),
    (("eval", "--method", "tpt", "--dataset", "photo", "--checkpoint", "/no/such/weights.safetensors"), "Checkpoint file not found"),
    (("compare", "--datasets", "photo", "--methods", "zero", "--views", "3"), "keeps none"),
])
def test_expected_errors_are_one_line(args, message):
    result = run_ttpt(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("ttpt: error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_debug_shows_the_traceback():
    result = run_ttpt("eval", "--method", "tpt", "--dataset", "/no/such/folder", "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_help_shows_defaults():
    result = run_ttpt("eval", "--help")
    assert "(default: 2000)" in result.stdout and "(default: results)" in result.stdout, result.stdout
    assert "(default: 1000)" in run_ttpt("compare", "--help").stdout


def test_shipped_model_runs_quietly(tmp_path):
    "No 'initialized randomly' notice when the shipped weights are loaded."
    result = run_ttpt("eval", "--method", "zeroshot", "--dataset", "colours", "--n", "4", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "initialized randomly" not in result.stderr


def test_eval_reuses_the_context_compare_trained(tmp_path):
    "`ttpt eval --method coop` finds the CoOp context `ttpt compare` cached for the same model and settings."
    common = ("--coop-epochs", "1", "--shots", "1", "--source-dir", str(tmp_path / "source"), "--images", "2")
    first = run_ttpt("compare", "--datasets", "colours", "--methods", "zeroshot", "coop", "--out", str(tmp_path / "compare"), *common)
    assert first.returncode == 0, first.stderr
    assert "CoOp" in first.stderr  # trained here (its progress bar)
    cached = sorted((tmp_path / "source").glob("coop-*.safetensors"))
    assert len(cached) == 1
    again = run_ttpt("eval", "--method", "coop", "--dataset", "shapes", "--out", str(tmp_path / "eval"), *common)
    assert again.returncode == 0, again.stderr
    assert "CoOp" not in again.stderr and sorted((tmp_path / "source").glob("coop-*.safetensors")) == cached
    other = run_ttpt("eval", "--method", "coop", "--dataset", "shapes", "--out", str(tmp_path / "random"), "--pretrained", "none", *common)
    assert other.returncode == 0, other.stderr
    assert len(list((tmp_path / "source").glob("coop-*.safetensors"))) == 2  # another model: trained afresh
