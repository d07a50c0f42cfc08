"""Do this checkout's predictions equal those of a comparison's results files written before a change?

    python benchmarks/agreement.py BASELINE_FOLDER [--methods tpt zero mta] [--datasets photo sketch] [--images 200]

For each method × dataset whose results file `BASELINE_FOLDER/{method}__{dataset}.csv` exists, it evaluates the
method with this checkout (the default comparison's settings: seed 0, 1000-image sets, the shipped model) on the
first `--images` images that the baseline file holds, in memory, and prints how many predictions agree, listing the
images that differ. Source-trained methods train their artifacts into a temporary cache first.
"""
import argparse
import tempfile
from pathlib import Path

from ttpt.data.benchmark import get_dataset
from ttpt.harness.evaluate import evaluate
from ttpt.harness.results import read_results
from ttpt.registry import make_method
from ttpt.harness.setup import Setup
from ttpt.core.models import load_clip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("baseline", help="folder of the results files written before the change")
    parser.add_argument("--methods", nargs="+", default=["tpt", "zero", "mta"])
    parser.add_argument("--datasets", nargs="+", default=["photo", "sketch"])
    parser.add_argument("--images", type=int, default=200, help="first images of each set to compare")
    parser.add_argument("--n", type=int, default=1000, help="the baseline comparison's images per set")
    args = parser.parse_args()
    clip = load_clip()
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(clip, source_dir=Path(tmp), progress=False)
        for dataset in args.datasets:
            data = get_dataset(dataset, n=args.n)
            for name in args.methods:
                path = Path(args.baseline)/f"{name}__{dataset}.csv"
                if not path.is_file(): print(f"{name} · {dataset}: no baseline file"); continue
                before = read_results(path).set_index("index")["prediction"]
                limit = min(args.images, len(before))
                if limit == 0 or set(range(limit)) - set(before.index): print(f"{name} · {dataset}: the baseline lacks some of the first {limit} images"); continue
                after = evaluate(make_method(name, setup), data, clip, limit=limit, progress=False).set_index("index")["prediction"]
                differ = [i for i in range(limit) if after[i] != before[i]]
                print(f"{name} · {dataset}: {limit - len(differ)}/{limit} predictions agree ({(limit - len(differ)) / limit:.1%})"
                      + (f"; differ at {differ}" if differ else ""), flush=True)


if __name__ == "__main__":
    main()
