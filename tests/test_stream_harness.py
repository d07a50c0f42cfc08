"""The harness's stream protocol for online methods: a seeded order per run, results per order, resume by replay
after kill -9 (nothing doubled or lost), no sharding, and a stream order refused for methods that keep no state."""
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from test_evaluate import Guess, Solids
from ttpt.harness.evaluate import evaluate, stream_order
from ttpt.harness.protocol import Capabilities, Kind, Method
from ttpt.harness.results import MEASURED_COLUMNS, read_results, results_path


@dataclass
class Drifting(Method):
    "An online method: Guess's probabilities averaged with the mean of every prediction before (its state)."
    capabilities = Capabilities(Kind.STREAM)
    seed: int = 0
    name: str = "drifting"
    sleep = 0.0 # seconds per image (not a setting: a slowed run is the same run)

    def prepare(self, clip, classnames): self.guess, self.seen, self.total = Guess(self.seed), 0, torch.zeros(len(classnames))
    def predict(self, image, index):
        if self.sleep: time.sleep(self.sleep)
        if self.seen == 0: self.guess.prepare(None, range(len(self.total)))
        p = self.guess.predict(image, index)
        out = p if self.seen == 0 else (p + self.total / self.seen) / 2
        self.total, self.seen = self.total + out, self.seen + 1
        return out


def _rows(results): return results.drop(columns=[c for c in MEASURED_COLUMNS if c in results])[["index", "prediction", "confidence"]]


def test_each_order_is_a_seeded_stream():
    assert stream_order(Solids(10), 1) == stream_order(Solids(10), 1) and sorted(stream_order(Solids(10), 1)) == list(range(10))
    assert stream_order(Solids(10), 0) != stream_order(Solids(10), 1)
    assert sorted(stream_order(Solids(10), 0, n=4)) == list(range(4)) # the first n images only


def test_a_stream_is_deterministic_per_order_and_depends_on_it():
    runs = {order: evaluate(Drifting(), Solids(12), None, order=order, progress=False) for order in (0, 0, 1)}
    again = evaluate(Drifting(), Solids(12), None, order=0, progress=False)
    pd.testing.assert_frame_equal(_rows(runs[0]), _rows(again))
    assert runs[0]["method"].iloc[0] == "drifting@0" and runs[1]["method"].iloc[0] == "drifting@1"
    assert runs[0]["index"].tolist() == stream_order(Solids(12), 0) # rows in the order the method saw them
    by_index = [r.set_index("index").sort_index()["confidence"] for r in (runs[0], runs[1])]
    assert not by_index[0].equals(by_index[1]) # what came before changes the prediction


def test_streams_refuse_shards_and_others_refuse_orders():
    with pytest.raises(ValueError, match="its stream cannot be sharded"):
        evaluate(Drifting(), Solids(4), None, shard=(0, 2), progress=False)
    with pytest.raises(ValueError, match="is not online: it takes no stream order"):
        evaluate(Guess(), Solids(4), None, order=1, progress=False)


def test_another_stream_length_is_another_run(tmp_path):
    evaluate(Drifting(), Solids(8), None, out=tmp_path, limit=5, progress=False)
    with pytest.raises(ValueError, match="stream.images: file has 5, this run 8"):
        evaluate(Drifting(), Solids(8), None, out=tmp_path, progress=False)


_KILLED_STREAM = """
import sys
sys.path.insert(0, {tests!r})
from test_stream_harness import Drifting
from test_evaluate import Solids
from ttpt.harness.evaluate import evaluate
Drifting.sleep = 0.05
evaluate(Drifting(), Solids(40), None, out={out!r}, order=2, progress=False)
"""


def test_a_sigkilled_stream_resumes_by_replay_exactly(tmp_path):
    "kill -9 mid-stream, then resume: the images seen are replayed (not rewritten), the rest follow, as if never killed."
    out = tmp_path / "killed"
    path = results_path(out, "drifting@2", "solids")
    process = subprocess.Popen([sys.executable, "-c", _KILLED_STREAM.format(tests=str(Path(__file__).parent), out=str(out))])
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (path.exists() and path.read_text().count("\n") > 6): time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert 5 <= len(read_results(path)) < 40
    resumed = evaluate(Drifting(), Solids(40), None, out=out, order=2, progress=False)
    whole = evaluate(Drifting(), Solids(40), None, out=tmp_path / "whole", order=2, progress=False)
    pd.testing.assert_frame_equal(_rows(resumed), _rows(whole))
    assert len(read_results(path)) == 40 and read_results(path)["index"].is_unique # nothing doubled or lost


def test_a_stream_that_does_not_replay_is_refused(tmp_path):
    evaluate(Drifting(), Solids(10), None, out=tmp_path, limit=10, progress=False)
    path = results_path(tmp_path, "drifting@0", "solids")
    lines = path.read_text().splitlines(keepends=True)
    first = lines[1].split(",")
    lines[1] = ",".join(first[:3] + ["0.5"] + first[4:]) # another confidence than the method gives
    path.write_text("".join(lines[:5]))
    with pytest.raises(ValueError, match="cannot resume"):
        evaluate(Drifting(), Solids(10), None, out=tmp_path, progress=False)
