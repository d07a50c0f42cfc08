"Unit tests for ttpt.harness.evaluate: the resumable evaluation harness."
import importlib
import json
import os
import textwrap
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ttpt.data.datasets import load_dataset
from ttpt.data.images import UnreadableImage
from ttpt.harness.results import MEASURED_COLUMNS, read_results, results_path
from ttpt.harness.evaluate import evaluate
from ttpt.harness.reports import comparison_table, expected_calibration_error, reliability_table, summarise
from ttpt.harness.features import DiskStore
from ttpt.methods.classifiers import ZeroShot
from ttpt.harness.protocol import Capabilities, Kind, Method

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


@dataclass
class Guess(Method):
    "Random probabilities seeded by (seed, index); optionally slow, optionally dying at one index."
    capabilities = Capabilities(Kind.IMAGE)
    seed: int = 0
    temperature: float = 2.0
    name = "guess"

    def __init__(self, seed=0, sleep=0.0, die_at=None, temperature=2.0):
        self.seed, self.temperature, self.sleep, self.die_at = seed, temperature, sleep, die_at

    def prepare(self, clip, classnames): self.n_classes = len(classnames)

    def predict(self, image, index):
        if index == self.die_at: raise RuntimeError(f"killed at {index}")
        if self.sleep: time.sleep(self.sleep)
        logits = np.random.default_rng([self.seed, index]).normal(0, self.temperature, self.n_classes)
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
    with pytest.raises(ValueError, match="different run .*dataset.n_images: file has 20, this run 21"):
        evaluate(Guess(), Solids(21), None, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different run .*dataset.classes_sha256"):
        evaluate(Guess(), Solids(classes=["a", "b", "c", "d"]), None, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="method_config.temperature: file has 2.0, this run 1.0"):
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
    assert summary.loc[0, "images_per_s"] > 0 and summary.loc[0, "confidence"] == pytest.approx(100 * row["confidence"].mean())
    assert summary.loc[0, "peak_memory_mb"] > 0 and summary.loc[0, "memory_kind"] in ("rss_peak", "rss_peak_since_start")
    table = comparison_table(summary)
    assert table.index.tolist() == ["guess0", "guess1"] and table.columns.tolist() == ["solids"]
    with pytest.raises(ValueError, match="Several summaries"):
        comparison_table([summary, summary])


_KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from test_evaluate import Guess, Solids
from ttpt.harness.evaluate import evaluate
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
    assert json.loads(path.with_suffix(".json").read_text())["dataset"]["n_images"] == 40


def test_other_data_or_weights_are_refused(tmp_path):
    "Same names, other identity: another folder of the same name, or other weights under the same model name."
    class Located(Solids):
        def __init__(self, root): super().__init__(); self.identity = {"root": root}

    class Model:
        device = "cpu"
        def __init__(self, digest): self.identity = {"model": "m", "weights_sha256": digest}

    evaluate(Guess(), Located("/data/A/val"), Model("aaa"), out=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"another dataset of the same name \(/data/A/val, test split; this run's is /data/B/val\): write this run to another output folder"):
        evaluate(Guess(), Located("/data/B/val"), Model("aaa"), out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="model.weights_sha256: file has 'aaa', this run 'bbb'"):
        evaluate(Guess(), Located("/data/A/val"), Model("bbb"), out=tmp_path, progress=False)
    assert len(evaluate(Guess(), Located("/data/A/val"), Model("aaa"), out=tmp_path, progress=False)) == 20


_CONTENDER = """
import sys
sys.path.insert(0, {tests!r})
from test_evaluate import Guess, Solids
from ttpt.harness.results import ResultsLocked
from ttpt.harness.evaluate import evaluate
try: evaluate(Guess(sleep=0.1), Solids(30), None, out={out!r}, progress=False)
except ResultsLocked as e:
    print("LOCKED", e)
    sys.exit(3)
"""


def test_two_runs_into_one_file(tmp_path):
    "Two processes start on one results file: exactly one proceeds, the other stops at once, and each image is there once."
    script = _CONTENDER.format(tests=str(Path(__file__).parent), out=str(tmp_path))
    processes = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    codes = sorted(p.returncode for p in processes)
    assert codes == [0, 3], (codes, outputs)
    assert "guess__solids.csv is being written by another run" in "".join(outputs)
    results = read_results(results_path(tmp_path, "guess", "solids"))
    assert sorted(results["index"]) == list(range(30))


@dataclass
class Brightness(Method):
    "Probabilities from the mean of each colour channel; has `predict_batch`."
    capabilities = Capabilities(Kind.BATCH)
    name = "brightness"
    temperature: float = 0.5

    def prepare(self, clip, classnames): self.n_classes = len(classnames)

    def _probabilities(self, x): return torch.softmax(torch.cat([x.mean((-1, -2)), x.std((-1, -2, -3))[..., None]], -1) / self.temperature, -1)

    def predict(self, image, index): return self._probabilities(_Clip.preprocess(image))

    def predict_batch(self, images, indices): return self._probabilities(images)


class _Clip:
    device = "cpu"
    identity = {"model": "none"}
    preprocess = staticmethod(lambda image: torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 255)


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_equals_one_by_one(tmp_path, workers):
    one = evaluate(Brightness(), Solids(30), _Clip(), batch_size=1, progress=False)
    batched = evaluate(Brightness(), Solids(30), _Clip(), out=tmp_path, batch_size=8, workers=workers, progress=False)
    pd.testing.assert_frame_equal(one[["index", "label", "prediction", "confidence"]], batched[["index", "label", "prediction", "confidence"]])
    assert len(read_results(results_path(tmp_path, "brightness", "solids"))) == 30  # one row per image
    resumed = evaluate(Brightness(), Solids(30), _Clip(), out=tmp_path, batch_size=8, progress=False)
    assert resumed["prediction"].tolist() == batched["prediction"].tolist()


def test_images_per_s_comes_from_one_run(tmp_path):
    "A resumed run logs its own timing; the summary's images/s is that of the run that did most images, not a mix."
    evaluate(Guess(sleep=0.02), Solids(), None, out=tmp_path, limit=15, progress=False)
    second = evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)  # 5 more, fast
    log = [json.loads(l) for l in results_path(tmp_path, "guess", "solids").with_suffix(".runs.jsonl").read_text().splitlines()]
    assert [r["images"] for r in log] == [15, 5]
    assert second["images_per_s"].iloc[0] == pytest.approx(5 / log[1]["seconds"])
    again = evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)  # nothing to do: the largest logged run
    assert again["images_per_s"].iloc[0] == pytest.approx(15 / log[0]["seconds"]) and again["images_per_s"].iloc[0] < 60


def test_repainted_images_of_the_same_size_are_not_reused(tmp_path):
    "Results on a folder are keyed by its images' contents: repainting one at the same byte size refuses the old file."
    for k, colour in enumerate(["red", "blue"]):
        (tmp_path/"data"/colour).mkdir(parents=True)
        for i in range(2): Image.new("RGB", (8, 8), (200 * (1 - k), 0, 200 * k)).save(tmp_path/"data"/colour/f"{i}.bmp")
    evaluate(Guess(), load_dataset("folder", tmp_path/"data"), None, out=tmp_path/"out", progress=False)
    Image.new("RGB", (8, 8), (0, 200, 0)).save(tmp_path/"data"/"red"/"0.bmp") # same byte size, other pixels
    with pytest.raises(ValueError, match="dataset.files_sha256: file has"):
        evaluate(Guess(), load_dataset("folder", tmp_path/"data"), None, out=tmp_path/"out", progress=False)


_METHOD = """
from dataclasses import dataclass
import torch
from ttpt.harness.protocol import Capabilities, Kind, Method

@dataclass
class Edited(Method):
    capabilities = Capabilities(Kind.IMAGE)
    name = "edited"
    def prepare(self, clip, classnames): self.n_classes = len(classnames)
    def predict(self, image, index): return torch.full((self.n_classes,), 1 / self.n_classes)
"""


def test_changed_method_code_is_refused_naming_it(tmp_path, monkeypatch):
    "Same name, same settings, other code: the old results are refused, naming the module that changed."
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path/"edited_method.py").write_text(_METHOD)
    evaluate(importlib.import_module("edited_method").Edited(), Solids(4), None, out=tmp_path/"out", progress=False)
    (tmp_path/"edited_method.py").write_text(_METHOD.replace("torch.full((self.n_classes,), 1 / self.n_classes)", "torch.eye(self.n_classes)[0]"))
    del sys.modules["edited_method"]
    edited = importlib.import_module("edited_method").Edited()
    with pytest.raises(ValueError, match="the code of edited_method changed since it was written"):
        evaluate(edited, Solids(4), None, out=tmp_path/"out", progress=False)
    assert evaluate(edited, Solids(4), None, out=tmp_path/"fresh", progress=False)["prediction"].tolist() == [0] * 4


def test_corrupt_side_files_are_named_and_rows_kept(tmp_path):
    evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)
    path = results_path(tmp_path, "guess", "solids")
    log = path.with_suffix(".runs.jsonl")
    log.write_text(log.read_text() + "{bad\n")
    with pytest.warns(UserWarning, match=r"guess__solids.runs.jsonl line 2 is not a logged run"):
        again = evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)
    assert len(again) == 20 and again["images_per_s"].notna().all()
    path.with_suffix(".json").write_text("{'not': json")
    with pytest.raises(ValueError, match=r"guess__solids.json \(the fingerprint of guess__solids.csv\) is corrupt"):
        evaluate(Guess(), Solids(), None, out=tmp_path, progress=False)
    assert len(read_results(path)) == 20 # nothing lost


class BadAt3(Solids):
    "Solids whose image 3 cannot be read (picklable, for worker processes)."
    def __getitem__(self, i):
        if i == 3: raise UnreadableImage(f"/data/solids/{i}.png", "OSError: truncated")
        return super().__getitem__(i)


@pytest.mark.parametrize("batched", [False, True])
def test_unreadable_image_in_a_worker_is_one_line(batched):
    "Out of a DataLoader worker, an unreadable image is the same one-line error naming the file as without workers."
    method, clip = (Brightness(), _Clip()) if batched else (Guess(), None)
    with pytest.raises(UnreadableImage) as error:
        evaluate(method, BadAt3(8), clip, workers=2, batch_size=4, progress=False)
    assert str(error.value) == "cannot read image /data/solids/3.png: OSError: truncated", str(error.value)
    skipped = evaluate(method, BadAt3(8), clip, workers=2, batch_size=4, progress=False, skip_bad_images=True)
    assert skipped["skipped"].tolist() == [i == 3 for i in range(8)]


def test_a_long_image_shows_life(capsys, monkeypatch):
    "In a terminal, the progress bar moves while one image takes seconds (e.g. --steps 1000000000)."
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False) # as a terminal is (off one, the bar draws only its final line)
    evaluate(Guess(sleep=2.5), Solids(1), None, progress=True)
    shown = capsys.readouterr().err.replace("\r", "\n")
    assert "0/1 [00:02" in shown, shown


def test_no_model_is_a_clear_error():
    with pytest.raises(ValueError, match="method 'zeroshot' needs a model, but clip is None"):
        evaluate(ZeroShot(), Solids(2), None, progress=False)


def test_damaged_view_feature_cache_is_computed_again(tmp_path):
    "A features.npy cut in half, or a row changed on disk, is never read (as zeros or otherwise): it is computed again."
    store = DiskStore(tmp_path, 4, {"what": "test"})
    rows = [torch.full((64, 32), float(i + 1)) for i in range(4)]
    for i, row in enumerate(rows): store.put(i, row)
    features = tmp_path/"features.npy"
    features.write_bytes(features.read_bytes()[:features.stat().st_size // 2])
    reopened = DiskStore(tmp_path, 4, {"what": "test"})
    with pytest.warns(UserWarning, match=r"is damaged \(features.npy holds .* bytes\)"): assert reopened.get(3) is None
    reopened.put(3, rows[3])
    assert torch.equal(DiskStore(tmp_path, 4, {"what": "test"}).get(3), rows[3])
    reopened.features[3, 0, 0] = 0.0 # changed behind the store's back
    with pytest.warns(UserWarning, match="row 3 does not match its checksum"): assert reopened.get(3) is None
    with pytest.raises(ValueError, match=r"features of shape \(5, 2\)"): reopened.put(0, torch.zeros(5, 2))
