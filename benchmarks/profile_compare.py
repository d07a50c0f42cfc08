"""Where the default comparison's time goes, per method: views, the image pass, the text pass, backward, source stages, the rest.

    python benchmarks/profile_compare.py [--images 50] [--methods ...] [--datasets ...] [--threads N]
    python benchmarks/profile_compare.py --full          # the default comparison's size, 1000 images per set

It runs `ttpt.compare.compare` one method at a time, as `ttpt compare` does (one shared view-feature cache, the
source stages trained from a clean, temporary cache), with timers wrapped around the pieces every method shares:

- views: `ViewMaker.__call__` (decoding excluded: the benchmark renders its images);
- image pass: the model's `encode_image`;
- text pass: `encode_text_embeddings` (every prompt-learner forward and open_clip-equivalent text encoding);
- backward: `torch.autograd.backward` and `torch.autograd.grad`;
- source stage: CoOp's, SAPT's, Self-TPT's and MetaTPT's training (its own text pass and backward are counted inside it);
- rest: everything else (selection, optimiser steps, the harness, Python).

Time is exclusive: a timed piece inside another is counted once, in the inner piece (inside a source stage, as
"source: ..."). Point PYTHONPATH at a checkout to profile that checkout's code (before and after a change).
"""
import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch

import ttpt
from ttpt.core import prompts, views
from ttpt.data.benchmark import SUITES
from ttpt.registry import STANDARD
from ttpt.compare import compare
from ttpt.harness.setup import Setup
from ttpt.core.models import load_clip

SOURCE_TRAINERS = {"train_coop": "CoOp", "train_sapt": "SAPT", "train_source_stage": "Self-TPT", "meta_train": "MetaTPT"}


class Timers:
    "Exclusive time per label: a timed call inside another is charged to the inner one only."
    def __init__(self): self.seconds, self.stack = defaultdict(float), []

    @contextmanager
    def region(self, label):
        now = time.perf_counter()
        if self.stack: self.seconds[self.stack[-1][0]] += now - self.stack[-1][1] # the outer piece stops at the inner's start
        inside_source = any(l.startswith("source") for l, _ in self.stack)
        self.stack.append([f"source: {label}" if inside_source and not label.startswith("source") else label, now])
        try: yield
        finally:
            label, start = self.stack.pop()
            now = time.perf_counter()
            self.seconds[label] += now - start
            if self.stack: self.stack[-1][1] = now # the outer piece resumes

    def wrap(self, function, label):
        def timed(*args, **kwargs):
            with self.region(label): return function(*args, **kwargs)
        return timed


def instrument(timers, clip):
    "Wrap the shared pieces with timers (in every ttpt module that imported them by name)."
    views.ViewMaker.__call__ = timers.wrap(views.ViewMaker.__call__, "views")
    encoder = clip if hasattr(type(clip), "encode_image") else clip.model # the image pass (older checkouts ran open_clip's own)
    encoder.encode_image = timers.wrap(encoder.encode_image, "image pass")
    original_text = prompts.encode_text_embeddings # compared against below, before `prompts` itself is patched
    text = timers.wrap(original_text, "text pass")
    torch.autograd.backward = timers.wrap(torch.autograd.backward, "backward")
    torch.autograd.grad = timers.wrap(torch.autograd.grad, "backward")
    for name, module in list(sys.modules.items()):
        if not name.startswith("ttpt.") or module is None: continue
        if getattr(module, "encode_text_embeddings", None) is original_text: module.encode_text_embeddings = text
        for trainer, method in SOURCE_TRAINERS.items():
            if callable(getattr(module, trainer, None)): setattr(module, trainer, timers.wrap(getattr(module, trainer), f"source stage ({method})"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50, help="test images per set")
    parser.add_argument("--full", action="store_true", help="the default comparison's size: 1000 images per set")
    parser.add_argument("--methods", nargs="+", default=list(STANDARD), help="methods, in order (default: the default comparison's)")
    parser.add_argument("--datasets", nargs="+", default=SUITES["source"] + SUITES["domain"], help="benchmark sets")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: what this checkout's code chooses; torch's own count for one without a policy)")
    args = parser.parse_args()
    n = 1000 if args.full else args.images
    if args.threads is not None: # both for a checkout without a thread policy and for one with it (TTPT_THREADS wins there)
        os.environ["TTPT_THREADS"] = str(args.threads)
        torch.set_num_threads(args.threads)
    clip = load_clip()
    timers = Timers()
    instrument(timers, clip)
    print(f"ttpt from {Path(ttpt.__file__).parent.parent}; {n} images × {len(args.datasets)} sets; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    rows, pieces = [], ["views", "image pass", "text pass", "backward"]
    columns = ["total"] + pieces + ["source stage", "rest"]
    width = max(len(m) for m in args.methods + ["method"])
    print(f"seconds per method (exclusive; {n} images per set):\n{'method':<{width}} " + " ".join(f"{c:>12}" for c in columns), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(clip, source_dir=Path(tmp)/"source", progress=False)
        for method in args.methods:
            timers.seconds.clear()
            start = time.perf_counter()
            compare(setup, args.datasets, [method], out=Path(tmp)/"compare", n=n, progress=False)
            total = time.perf_counter() - start
            source = {k: v for k, v in timers.seconds.items() if k.startswith("source")}
            row = {"method": method, "total": total, **{p: timers.seconds.get(p, 0.0) for p in pieces},
                   "source stage": sum(source.values()), "rest": total - sum(timers.seconds.values())}
            rows.append((row, source))
            print(f"{row['method']:<{width}} " + " ".join(f"{row[c]:>12.1f}" for c in columns), flush=True)
    print(f"{'all':<{width}} " + " ".join(f"{sum(r[c] for r, _ in rows):>12.1f}" for c in columns))
    print(f"torch ran on {torch.get_num_threads()} thread(s) at the end (a checkout's thread policy applies when a method runs)")
    for row, source in rows:
        if source: print(f"{row['method']}'s source stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(source.items())))


if __name__ == "__main__":
    main()
