"Unit tests for ttpt.evaluate: the resumable evaluation harness."
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ttpt.evaluate import (MEASURED_COLUMNS, comparison_table, evaluate, expected_calibration_error, read_results,
                           reliability_table, results_path, summarise)

CLASSES = ["red", "green", "blue", "grey"]


class Solids:
    "Tiny in-memory dataset: solid-colour images, label = index mod 4 (overridable)."
    name = "solids"
    classes = CLASSES

    def __init__(self, n=20, labels=None, classes=None):
        self.n, self.labels = n, labels
        if classes is not None: self.classes = classes

    def __len__(self): return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n: raise IndexError(i)
        label = i % 4 if self.labels is None else self.labels[i]
        return Image.new("RGB", (8, 8), (40 * (i % 6), 100, 200)), label


class Guess:
    "Random probabilities seeded by (seed, index); optionally slow, optionally dying at one index."
    name = "guess"

    def __init__(self, seed=0, sleep=0.0, die_at=None, temperature=2.0):
        self.seed, self.sleep, self.die_at = seed, sleep, die_at
        self.config = {"seed": seed, "temperature": temperature}

    def prepare(self, clip, classnames): self.n_classes = len(classnames)

    def predict(self, image, index):
        if index == self.die_at: raise RuntimeError(f"killed at {index}")
        if self.sleep: time.sleep(self.sleep)
        logits = np.random.default_rng([self.seed, index]).normal(0, self.config["temperature"], self.n_classes)
        return torch.softmax(torch.from_numpy(logits), 0).float()


def _comparable(path):
    return read_results(path).drop(columns=list(MEASURED_COLUMNS))


def test_ece_matches_hand_computed_value():
    # bins of 1/15: {0.95, 0.95} acc 1/2 -> 2/4·0.45; {0.75} acc 1 -> 1/4·0.25; {0.30} acc 0 -> 1/4·0.30
    assert expected_calibration_error([0.95, 0.95, 0.75, 0.30], [1, 0, 1, 0]) == pytest.approx(0.3625, abs=1e-12)
    assert expected_calibration_error([1.0, 1.0], [1, 1]) == 0.0
    table = reliability_table([0.95, 0.95, 0.75, 0.30], [1, 0, 1, 0])
    assert table["count"].sum() == 4 and table.loc[14, "accuracy"] == 0.5


def test_results_match_in_memory_and_on_disk(tmp_path):
    on_disk = evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)
    in_memory = evaluate(Guess(), Solids(), None, progress=False)
    columns = ["index", "label", "prediction", "confidence", "correct"]
    pd.testing.assert_frame_equal(on_disk[columns], in_memory[columns])
    pd.testing.assert_frame_equal(read_results(results_path(tmp_path, "guess", "solids"))[columns[:-1]], on_disk[columns[:-1]])
    assert (on_disk["method"] == "guess").all() and (on_disk["dataset"] == "solids").all() and len(on_disk) == 20


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    evaluate(Guess(), Solids(), None, out=tmp_path / "whole", progress=False)
    with pytest.raises(RuntimeError, match="killed at 7"):
        evaluate(Guess(die_at=7), Solids(), None, out=tmp_path / "resumed", progress=False)
    resumed_file = results_path(tmp_path / "resumed", "guess", "solids")
    assert len(read_results(resumed_file)) == 7
    calls = []

    class Counting(Guess):
        def predict(self, image, index):
            calls.append(index)
            return super().predict(image, index)

    evaluate(Counting(), Solids(), None, out=tmp_path / "resumed", progress=False)
    assert calls == list(range(7, 20))  # nothing done twice
    pd.testing.assert_frame_equal(_comparable(resumed_file), _comparable(results_path(tmp_path / "whole", "guess", "solids")))


def test_torn_last_line_is_dropped_and_redone(tmp_path):
    whole = evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)
    path = results_path(tmp_path, "guess", "solids")
    reference = _comparable(path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:11]) + lines[11][:5])  # header, 10 rows, then part of row 10
    assert len(read_results(path)) == 10
    again = evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)
    pd.testing.assert_frame_equal(_comparable(path), reference)
    assert again["prediction"].tolist() == whole["prediction"].tolist()
    assert path.read_text().count("\n") == 21


def test_torn_header_is_rewritten(tmp_path):
    evaluate(Guess(), Solids(), None, out=tmp_path, limit=0, progress=False)
    path = results_path(tmp_path, "guess", "solids")
    path.write_text("index,lab")
    assert len(evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)) == 20


def test_limit_then_continue(tmp_path):
    assert len(evaluate(Guess(), Solids(), None, out=tmp_path, limit=5, progress=False)) == 5
    full = evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)
    assert full["index"].tolist() == list(range(20))
    assert len(evaluate(Guess(), Solids(), None, out=tmp_path, limit=3, progress=False)) == 3


def test_other_configuration_is_refused(tmp_path):
    evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different run configuration.*n_images: file has 20, this run 21"):
        evaluate(Guess(), Solids(21), None, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different run configuration.*classes_sha256"):
        evaluate(Guess(), Solids(classes=["a", "b", "c", "d"]), None, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="method_config"):
        evaluate(Guess(temperature=1.0), Solids(), None, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="seed: file has 0, this run 1"):
        evaluate(Guess(), Solids(), None, out=tmp_path, seed=1, progress=False)
    results_path(tmp_path, "guess", "solids").with_suffix(".json").unlink()
    with pytest.raises(ValueError, match="fingerprint guess__solids.json does not"):
        evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)


def test_corrupted_file_is_refused(tmp_path):
    evaluate(Guess(), Solids(), None, out=tmp_path, limit=4, progress=False)
    path = results_path(tmp_path, "guess", "solids")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + lines[2])  # image 1 twice
    with pytest.raises(ValueError, match="holds image 1 twice"):
        evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)


def test_clear_errors():
    with pytest.raises(ValueError, match="Dataset 'solids' has no images"):
        evaluate(Guess(), Solids(0), None, progress=False)
    with pytest.raises(ValueError, match="Image 2 of dataset 'solids' has label 4, outside its 4 classes"):
        evaluate(Guess(), Solids(3, labels=[0, 1, 4]), None, progress=False)
    with pytest.raises(ValueError, match="Image 0 of dataset 'solids' has label -1"):
        evaluate(Guess(), Solids(1, labels=[-1]), None, progress=False)

    class WrongShape(Guess):
        def predict(self, image, index): return super().predict(image, index)[:3]

    with pytest.raises(ValueError, match=r"shape \(3,\) for image 0; expected \(4,\)"):
        evaluate(WrongShape(), Solids(), None, progress=False)

    class NotProbabilities(Guess):
        def predict(self, image, index): return torch.ones(4)

    with pytest.raises(ValueError, match="must return a probability vector"):
        evaluate(NotProbabilities(), Solids(), None, progress=False)


def test_summary_and_table():
    results = pd.concat([evaluate(Guess(seed=s), Solids(12), None, progress=False).assign(method=f"guess{s}")
                         for s in (0, 1)])
    summary = summarise(results)
    assert summary[["method", "dataset", "n"]].values.tolist() == [["guess0", "solids", 12], ["guess1", "solids", 12]]
    row = results[results["method"] == "guess0"]
    assert summary.loc[0, "accuracy"] == pytest.approx(100 * row["correct"].mean())
    assert summary.loc[0, "ece"] == pytest.approx(100 * expected_calibration_error(row["confidence"], row["correct"]))
    assert summary.loc[0, "images_per_s"] == pytest.approx(12 / row["seconds"].sum())
    assert summary.loc[0, "peak_memory_mb"] > 0 and summary.loc[0, "memory_kind"] in ("rss_peak", "rss_peak_since_start")
    table = comparison_table(summary)
    assert table.index.tolist() == ["guess0", "guess1"] and table.columns.tolist() == ["solids"]
    with pytest.raises(ValueError, match="Several summaries"):
        comparison_table([summary, summary])


_KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from test_evaluate import Guess, Solids
from ttpt.evaluate import evaluate
evaluate(Guess(sleep=0.05), Solids(40), None, out={out!r}, progress=False)
"""


def test_sigkilled_run_resumes_exactly(tmp_path):
    "A real kill -9 in the middle of a run, then a resume, gives the uninterrupted run's file."
    out = tmp_path / "killed"
    path = results_path(out, "guess", "solids")
    script = _KILLED_RUN.format(tests=str(Path(__file__).parent), out=str(out))
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (path.exists() and path.read_text().count("\n") > 6):
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    done = len(read_results(path))
    assert 5 <= done < 40, done  # killed mid-run
    resumed = evaluate(Guess(), Solids(40), None, out=out, progress=False)
    assert len(resumed) == 40
    evaluate(Guess(), Solids(40), None, out=tmp_path / "whole", progress=False)
    pd.testing.assert_frame_equal(_comparable(path), _comparable(results_path(tmp_path / "whole", "guess", "solids")))
    assert json.loads(path.with_suffix(".json").read_text())["n_images"] == 40
