"""The first `ttpt eval` of each method, source stage included, from a clean cache: one checkout beside another.

    python benchmarks/first_eval.py --before /path/to/old/checkout [--methods coop self-tpt ...] [--images 20] [--timeout 300]

Each run is `python -m ttpt.cli eval --method M --dataset hard --images N` in a fresh process with an empty
results folder and an empty source-artifact cache (`--source-dir`), with PYTHONPATH pointing at the checkout, and
the environment as a user's (OMP_NUM_THREADS and MKL_NUM_THREADS removed, so each checkout's own threading decides).
Before and after alternate per method. It prints wall seconds and peak resident memory of each run; a run stopped
at `--timeout` is shown as "> timeout".
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent # this checkout


def first_eval(checkout, method, images, timeout):
    "(seconds or None when stopped at the timeout, peak MB) of one first run from `checkout`."
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TTPT_THREADS")}
    env["PYTHONPATH"] = str(checkout)
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); " # the run, then its peak RSS on stderr
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
        command = [sys.executable, "-m", "ttpt.cli", "eval", "--method", method, "--dataset", "hard", "--images", str(images),
                   "--out", f"{tmp}/results", "--source-dir", f"{tmp}/source"]
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", code, *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True, cwd=tmp, start_new_session=True) # cwd: `-m` puts it before PYTHONPATH; own process group, stopped as one
        try:
            _, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return None, None
        seconds = time.perf_counter() - start
        if process.returncode != 0: raise RuntimeError(f"{method} from {checkout} failed: {err.strip().splitlines()[-2:]}")
        return seconds, int(err.strip().splitlines()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the checkout to compare against (its root: the folder holding ttpt/)")
    parser.add_argument("--methods", nargs="+", default=["zeroshot", "tpt", "zero", "coop", "sapt", "self-tpt", "metatpt"])
    parser.add_argument("--images", type=int, default=20, help="test images of the hard set")
    parser.add_argument("--timeout", type=float, default=300, help="seconds after which a run is stopped")
    parser.add_argument("--skip-before", nargs="*", default=[], help="methods to run only from this checkout")
    args = parser.parse_args()
    print(f"first `ttpt eval --method M --dataset hard --images {args.images}`, clean caches; before: {args.before}, after: {HERE}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    show = lambda s, mb: (f"> {args.timeout:.0f} s" if s is None else f"{s:.1f} s") + ("" if mb is None else f", {mb:.0f} MB")
    for method in args.methods:
        before = first_eval(args.before, method, args.images, args.timeout) if method not in args.skip_before else None
        after = first_eval(HERE, method, args.images, args.timeout)
        ratio = f"{before[0] / after[0]:.1f}×" if before and before[0] and after[0] else "—"
        print(f"{method:>10}: before {'not run' if before is None else show(*before)}; after {show(*after)}; speed-up {ratio}", flush=True)


if __name__ == "__main__":
    main()
