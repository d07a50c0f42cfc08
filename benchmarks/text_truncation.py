"""Text-encoding throughput with and without exact truncation, on a random-init open_clip model.

    python benchmarks/text_truncation.py [--model ViT-B-16] [--classes 10 100 1000] [--repeats 3]

Encodes K ImageNet class prompts ("a photo of a {c}.") with ttpt's encoder at the full context length and
truncated at the longest end-of-text token, asserts both give the same features, and prints prompts/s and the ratio.
"""
import argparse
import time

import torch
from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

from ttpt.core.models import load_clip
from ttpt.core.prompts import encode_token_ids, eot_positions


def prompts_per_second(clip, ids, truncate, repeats):
    "Best-of-`repeats` throughput of encoding `ids` (after one warm-up pass)."
    with torch.no_grad():
        features = encode_token_ids(clip.model, ids, truncate=truncate)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            encode_token_ids(clip.model, ids, truncate=truncate)
            best = min(best, time.perf_counter() - start)
    return len(ids) / best, features


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-16", help="open_clip model name (random init, no download)")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000], help="numbers of class prompts K")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per setting (best is reported)")
    args = parser.parse_args()
    clip = load_clip(args.model, pretrained=None)
    print(f"{args.model} (random init), torch {torch.__version__}, {torch.get_num_threads()} threads, device {clip.device}")
    print(f"{'K':>6} {'tokens used':>12} {'full prompts/s':>15} {'truncated prompts/s':>20} {'ratio':>7} {'max |diff|':>11}")
    for k in args.classes:
        names = [IMAGENET_CLASSNAMES[i % len(IMAGENET_CLASSNAMES)] for i in range(k)]
        ids = clip.tokenizer([f"a photo of a {c}." for c in names])
        full, full_feats = prompts_per_second(clip, ids, False, args.repeats)
        cut, cut_feats = prompts_per_second(clip, ids, True, args.repeats)
        diff = (full_feats - cut_feats).abs().max().item()
        assert diff < 1e-5, f"truncation changed the features by {diff}"
        used = int(eot_positions(ids).max()) + 1
        print(f"{k:>6} {f'{used}/{ids.shape[1]}':>12} {full:>15.1f} {cut:>20.1f} {cut / full:>6.2f}x {diff:>11.1e}")


if __name__ == "__main__":
    main()
