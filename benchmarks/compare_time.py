"""`ttpt compare` from a clean start with different numbers of worker processes, or before and after a change, side by side in one run.

    python benchmarks/compare_time.py [--jobs 1 2] [--images 1000] [--busy] [--methods ...]
    python benchmarks/compare_time.py --before ../ttpt-before --jobs 2   # another checkout's code first, as the reference

Each run is `ttpt compare --jobs J` in a fresh process with an empty results folder and an empty source-artifact
cache, so the source stages are trained in it, and the environment as a user's (OMP_NUM_THREADS, MKL_NUM_THREADS and
TTPT_THREADS removed). With `--busy`, every setting is also run beside one CPU-bound process
(`python -c "while True: pass"`), as a laptop with something else running. It prints the wall time, the CPU time
of all processes, and the peak resident memory of the largest process of each run, their ratios to the first
setting, and whether every run's predictions equal the first run's, image for image (the differences listed, and
the method × dataset files whose confidences moved by more than 1e-5). Where a change alters a method's results on
purpose, each file whose predictions differ gets its accuracy in the first run and in this one, with the paired
difference and its 95% bootstrap interval, per file and pooled over each such method's files.
With `--before CHECKOUT`, each setting is run first with that checkout's code (the reference), then with this one's.
"""
import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ttpt.core.stats import paired_difference

HERE = Path(__file__).resolve().parent.parent # this checkout


def timed_compare(checkout, jobs, images, methods, folder, busy):
    "(wall seconds, CPU seconds of the run's processes, peak MB of its largest process) of one `ttpt compare` of `checkout`'s code; results in `folder`/compare."
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TTPT_THREADS")}
    env["PYTHONPATH"] = str(checkout)
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print(u.ru_utime + u.ru_stime, u.ru_maxrss, file=sys.stderr); sys.exit(r.returncode)") # CPU and peak RSS of the run's processes
    command = [sys.executable, "-m", "ttpt.cli", "compare", "--jobs", str(jobs), "--images", str(images), "--out", f"{folder}/compare",
               "--source-dir", f"{folder}/source", *(["--methods", *methods] if methods else [])]
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", code, *command], env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
    finally:
        if spinner: spinner.kill()
    if run.returncode != 0: raise RuntimeError(f"ttpt compare --jobs {jobs} failed: {run.stderr.strip().splitlines()[-3:]}")
    cpu, peak_kb = run.stderr.strip().splitlines()[-1].split()
    return wall, float(cpu), int(peak_kb) / 1024


def predictions(folder):
    "Every method × dataset's predictions and confidences in a comparison's results folder, indexed by (file, image)."
    frames = [pd.read_csv(p).assign(file=p.stem) for p in sorted(Path(folder, "compare").glob("*__*.csv"))]
    return pd.concat(frames).set_index(["file", "index"])[["label", "prediction", "confidence"]].sort_index()


def changed_accuracy(found, reference, files):
    "Accuracy of `files` in the reference run and in `found`, with the paired difference (points) and its 95% bootstrap interval; pooled per method."
    right = lambda frame: frame["prediction"] == frame["label"]
    groups = [(file, [file]) for file in files] + [(f"{method} (pooled)", [f for f in found.index.unique("file") if f.split("__")[0] == method])
                                                   for method in sorted({f.split("__")[0] for f in files})]
    rows = []
    for name, members in groups:
        before, after = np.concatenate([right(reference.loc[f]) for f in members]), np.concatenate([right(found.loc[f]) for f in members])
        d = paired_difference(after, before)
        rows.append({"results": name, "first run": 100 * before.mean(), "this run": 100 * after.mean(), "difference": d["diff"],
                     "95% CI": f"[{d['diff_low']:+.1f}, {d['diff_high']:+.1f}]", "same predictions": (found.loc[members, "prediction"] == reference.loc[members, "prediction"]).mean()})
    return pd.DataFrame(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="worker-process counts to time, the first is the reference")
    parser.add_argument("--images", type=int, default=1000, help="test images per set (the default comparison: 1000)")
    parser.add_argument("--methods", nargs="*", default=None, help="methods (default: the default comparison's)")
    parser.add_argument("--busy", action="store_true", help="also run each setting beside one CPU-bound process")
    parser.add_argument("--before", type=Path, default=None, help="a checkout of the code before a change: each setting runs with it first")
    args = parser.parse_args()
    checkouts = ([("before", args.before.resolve())] if args.before else []) + [("this checkout", HERE)]
    print(f"`ttpt compare --images {args.images}` from a clean start, from {HERE}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for busy, jobs, (code, checkout) in itertools.product([False, True] if args.busy else [False], args.jobs, checkouts):
            folder = Path(tmp)/f"jobs{jobs}{'-busy' if busy else ''}-{len(rows)}"
            folder.mkdir()
            wall, cpu, peak = timed_compare(checkout, jobs, args.images, args.methods, folder, busy)
            found = predictions(folder)
            if reference is None: reference = found
            same = (found["prediction"] == reference["prediction"]).mean() if found.index.equals(reference.index) else float("nan")
            rows.append({"code": code, "jobs": jobs, "beside": "a busy process" if busy else "nothing", "wall s": wall, "CPU s": cpu, "peak MB": peak,
                         "same predictions": same, "max |Δ confidence|": (found["confidence"] - reference["confidence"]).abs().max()})
            print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False, header=len(rows) == 1), flush=True)
            differ = found.index[found["prediction"] != reference["prediction"]] if found.index.equals(reference.index) else []
            for file, index in differ[:50]: print(f"  differs: {file} image {index}")
            if len(differ): print(changed_accuracy(found, reference, sorted({file for file, _ in differ})).round(3).to_string(index=False))
            if found.index.equals(reference.index):
                moved = (found["confidence"] - reference["confidence"]).abs().groupby(level="file").max()
                for file, most in moved[moved > 1e-5].items(): print(f"  confidences moved: {file}, up to {most:.2g}")
    table = pd.DataFrame(rows)
    table["wall ÷ first"] = table["wall s"] / table["wall s"].iloc[0]
    print(table.round(3).to_string(index=False))
    if args.busy:
        alone, busy = table[table["beside"] == "nothing"].set_index(["code", "jobs"]), table[table["beside"] != "nothing"].set_index(["code", "jobs"])
        print("busy ÷ alone (wall):", ", ".join(f"{c}, jobs {j}: {busy.loc[(c, j), 'wall s'] / alone.loc[(c, j), 'wall s']:.2f}×" for c, j in alone.index))


if __name__ == "__main__":
    main()
