"""Self-TPT's default (no stage 2) against its first stage 2 (AdamW at 5e-3 for 10 steps, no early stop), on the
default comparison's images, with exact paired 95% intervals.

    ttpt compare                                  # the default comparison: results/compare, results/source
    python benchmarks/self_tpt_stage2.py          # then this, in the same folder

It reads Self-TPT's and zero-shot's rows from `results/compare`, evaluates the old stage 2 from the same cached source
stage (`results/source`) into `results/self-tpt-old-stage2` (resumable), and prints, per set and pooled, the default
minus the old stage 2 and the old stage 2 minus zero-shot.
"""
import argparse
import dataclasses

import numpy as np

from ttpt.core.models import load_clip
from ttpt.core.stats import paired_difference
from ttpt.data.benchmark import get_dataset
from ttpt.harness.evaluate import evaluate
from ttpt.harness.results import read_results
from ttpt.harness.setup import Setup
from ttpt.registry import make_method

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--results", default="results/compare", help="the default comparison's results folder")
parser.add_argument("--source-dir", default="results/source", help="its cached source stages")
parser.add_argument("--images", type=int, default=1000, help="images per set, as in the comparison")
args = parser.parse_args()

setup = Setup(load_clip(), source_dir=args.source_dir, progress=False)
old = dataclasses.replace(make_method("self-tpt", setup), steps=10, flat_gap=0.0, name="self-tpt-old-stage2")
correct = {"default": [], "old stage 2": [], "zero-shot": []}
for name in ("photo", "sketch", "cartoon", "corrupted", "hard"):
    rows = {"old stage 2": evaluate(old, get_dataset(name, n=args.images), setup.clip, out="results/self-tpt-old-stage2", progress=False),
            "default": read_results(f"{args.results}/self-tpt__{name}.csv"), "zero-shot": read_results(f"{args.results}/zeroshot__{name}.csv")}
    for key, r in rows.items(): correct[key].append(r.sort_values("index").eval("prediction == label").to_numpy())
    assert len({len(r) for r in rows.values()}) == 1, "the three runs hold different images"
for i, name in enumerate(("photo", "sketch", "cartoon", "corrupted", "hard", "all")):
    pick = (lambda k: correct[k][i]) if name != "all" else (lambda k: np.concatenate(correct[k]))
    a, b = paired_difference(pick("default"), pick("old stage 2")), paired_difference(pick("old stage 2"), pick("zero-shot"))
    print(f"{name:10} default − old stage 2 {a['diff']:+.1f} [{a['diff_low']:+.1f}, {a['diff_high']:+.1f}] p={a['p']:.2g}   "
          f"old stage 2 − zero-shot {b['diff']:+.1f} [{b['diff_low']:+.1f}, {b['diff_high']:+.1f}] p={b['p']:.2g}")
