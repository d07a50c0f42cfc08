"""ttpt alone and beside a busy process, side by side: torch's default threading against ttpt's thread policy.

    python benchmarks/busy_machine.py [--steps 100] [--images 10] [--repeats 2]

Each configuration runs in a fresh process (the OpenMP wait policy is read when torch loads), on the same work:
`--steps` CoOp source-training steps and TPT on `--images` images of the hard set with the shipped miniature CLIP.

- torch default: torch's own thread count (one per core), OpenMP's default wait policy, ttpt's policy not applied;
- ttpt: what `import ttpt` and `ttpt.core.threads.use_threads` choose (`TTPT_THREADS` still overrides).

"Busy" runs it beside one other CPU-bound process (`python -c "while True: pass"`). The configurations alternate, so
that a change in the machine's other load hits them alike. It prints seconds, the busy/alone ratio of each
configuration, and the speed-up of ttpt's policy over torch's default; peak resident memory of each child too.
"""
import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r"""
import json, os, resource, sys, time
policy, steps, images = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if policy == "default": os.environ.pop("OMP_WAIT_POLICY", None); import torch # torch first: ttpt's import leaves the runtime as it is
import ttpt, torch
wait = os.environ.get("OMP_WAIT_POLICY", "default") if policy == "ttpt" else "default"
from ttpt.data.benchmark import get_dataset
from ttpt.methods.coop import train_coop
from ttpt.data.benchmark import few_shot_source
from ttpt.core.models import load_clip
from ttpt.methods.tpt import TPT
from ttpt.core.threads import use_threads
clip = load_clip()
if policy == "ttpt": use_threads(clip)
source = few_shot_source()
from ttpt.core.zeroshot import encode_dataset
features = encode_dataset(clip, source)
start = time.perf_counter()
train_coop(clip, source, epochs=max(1, steps // 18), progress=False, features=features)
coop = time.perf_counter() - start
method, data = TPT(), get_dataset("hard", n=images)
method.prepare(clip, data.classes)
start = time.perf_counter()
for i in range(images): method.predict(data[i][0], i)
tpt = time.perf_counter() - start
print(json.dumps({"threads": torch.get_num_threads(), "wait": wait, "coop": coop, "tpt": tpt,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(policy, steps, images):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")} # let each policy choose
    out = subprocess.run([sys.executable, "-c", CHILD, policy, str(steps), str(images)], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=90, help="CoOp source-training steps (whole epochs of 18 steps)")
    parser.add_argument("--images", type=int, default=10, help="TPT test images")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each configuration (the best is kept)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    best = {}
    for _ in range(args.repeats):
        for busy in (False, True):
            spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                time.sleep(0.5 if busy else 0)
                for policy in ("default", "ttpt"):
                    r = run_child(policy, args.steps, args.images)
                    key = (policy, busy)
                    print(f"  {policy:>7} {'busy' if busy else 'alone':>5}: {r['threads']} thread(s), wait {r['wait']}: CoOp {r['coop']:.2f} s, TPT {r['tpt']:.2f} s, peak {r['peak_mb']:.0f} MB", flush=True)
                    best[key] = {k: min(v, best[key][k]) if k in ("coop", "tpt") and key in best else v for k, v in r.items()}
            finally:
                if spinner is not None: spinner.kill(); spinner.wait()
    print(f"\nbest of {args.repeats} (seconds; {args.steps} CoOp steps, TPT on {args.images} images):")
    print(f"{'':>16} {'alone':>7} {'busy':>7} {'busy/alone':>11}")
    for policy in ("default", "ttpt"):
        for work in ("coop", "tpt"):
            alone, busy = best[(policy, False)][work], best[(policy, True)][work]
            print(f"{policy + ' ' + work:>16} {alone:>7.2f} {busy:>7.2f} {busy / alone:>10.2f}×")
    for work in ("coop", "tpt"):
        print(f"ttpt's policy is {best[('default', False)][work] / best[('ttpt', False)][work]:.1f}× faster alone and "
              f"{best[('default', True)][work] / best[('ttpt', True)][work]:.1f}× faster busy on {work}")


if __name__ == "__main__":
    main()
