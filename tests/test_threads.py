"ttpt's thread policy reaches torch: the wait policy before torch loads, the count in `evaluate` and the CLI, the overrides."
import os
import subprocess
import sys

import pytest
import torch

from ttpt.data.benchmark import get_dataset
from ttpt.cli import main
from ttpt.harness.evaluate import evaluate
from ttpt.core.threads import THREADS_ENV
from ttpt.methods.classifiers import ZeroShot


def python(code, **env):
    "Run `code` in a fresh interpreter with `env` added (None removes a variable); its stdout, stripped."
    environment = {k: v for k, v in os.environ.items() if k not in env}
    environment.update({k: v for k, v in env.items() if v is not None})
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_import_sets_the_passive_wait_policy_unless_one_is_set():
    code = "import os, ttpt; print(os.environ['OMP_WAIT_POLICY'])"
    assert (got := python(code, OMP_WAIT_POLICY=None)) == "PASSIVE", got
    assert (got := python(code, OMP_WAIT_POLICY="ACTIVE")) == "ACTIVE", got


def test_evaluate_runs_the_small_model_on_one_thread_unless_overridden(clip, monkeypatch):
    data = get_dataset("photo", n=2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.delenv(THREADS_ENV, raising=False)
        evaluate(ZeroShot(), data, clip, progress=False)
        assert torch.get_num_threads() == 1, torch.get_num_threads()
        monkeypatch.setenv(THREADS_ENV, "2")
        evaluate(ZeroShot(), data, clip, progress=False)
        assert torch.get_num_threads() == 2, torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_cli_threads_option_sets_the_count_and_a_bad_one_is_one_line(tmp_path, monkeypatch, capsys):
    before = torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "") # empty is unset; monkeypatch restores the variable the CLI sets
    try:
        main(["eval", "--method", "zeroshot", "--dataset", "photo", "--n", "2", "--out", str(tmp_path), "--threads", "2"])
        assert torch.get_num_threads() == 2, torch.get_num_threads()
        assert os.environ[THREADS_ENV] == "2", os.environ[THREADS_ENV]
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            main(["eval", "--method", "zeroshot", "--dataset", "photo", "--n", "2", "--out", str(tmp_path), "--threads", "0"])
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and err.count("\n") == 0 and "--threads" in err, (stop.value.code, err)
    finally:
        torch.set_num_threads(before)
