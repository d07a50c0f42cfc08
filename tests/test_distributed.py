"Several processes through torch.distributed (gloo on CPU): the merged results equal a single-process run, and a killed run resumes exactly."
import os
import signal
import subprocess
import sys
import time

from ttpt.harness.results import MEASURED_COLUMNS, read_results, results_path

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(out, method="zero", images=16, **popen):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ttpt.cli", "eval",
               "--method", method, "--dataset", "hard", "--images", str(images), "--views", "16", "--out", str(out)]
    return subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **popen)


def single(out, method="zero", images=16):
    command = [sys.executable, "-m", "ttpt.cli", "eval", "--method", method, "--dataset", "hard", "--images", str(images), "--views", "16", "--out", str(out)]
    subprocess.run(command, env=ENV, check=True, capture_output=True, timeout=600)
    return read_results(results_path(out, method, "hard")).drop(columns=list(MEASURED_COLUMNS))


def test_two_processes_merge_to_the_single_process_results(tmp_path):
    process = torchrun(tmp_path / "two")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    merged = read_results(results_path(tmp_path / "two", "zero", "hard")).drop(columns=list(MEASURED_COLUMNS))
    assert merged.equals(single(tmp_path / "one")), merged
    assert "zero" in out and "hard" in out  # process 0 printed the summary


def test_a_killed_distributed_run_resumes_exactly(tmp_path):
    out = tmp_path / "killed"
    process = torchrun(out, method="tpt", images=24)
    shard = results_path(out, "tpt", "hard", (0, 2))
    deadline = time.time() + 300
    while time.time() < deadline and not (shard.exists() and shard.read_text().count("\n") > 3): time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # the whole run, mid-way
    process.wait()
    assert 2 <= len(read_results(shard)) < 12
    resumed = torchrun(out, method="tpt", images=24)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    merged = read_results(results_path(out, "tpt", "hard")).drop(columns=list(MEASURED_COLUMNS))
    assert merged.equals(single(tmp_path / "one", method="tpt", images=24))
