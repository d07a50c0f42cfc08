"""TPT images/s and peak memory: ttpt's TPT against a plain reimplementation without its two optimisations.

    python benchmarks/tpt_speed.py [--model ttpt-miniclip] [--classes 36] [--images 20] [--views 64] [--steps 1]

The plain version follows the algorithm literally: at every step it re-encodes all views with the (frozen) image
encoder, and it runs the text encoder over the full context length. ttpt's `TPT` encodes the views once per image
and truncates prompts at the longest end-of-text token. Both are run on the same images with the same views and
must give the same predictions (asserted); the script prints images/s, peak memory and their ratios.
Peak memory is CUDA's max_memory_allocated on a GPU, the peak resident set size sampled per image on a CPU.
"""
import argparse
import time

import torch

from ttpt.data.benchmark import SOURCE_CLASSES, get_dataset
from ttpt.harness.evaluate import PeakMemory
from ttpt.core.models import MINICLIP, load_clip
from ttpt.core.prompts import encode_text_embeddings, text_tower
from ttpt.core.selection import entropy, marginal_entropy, select_confident_views
from ttpt.methods.tpt import TPT
from ttpt.core.zeroshot import clip_logits, image_features


class PlainTPT(TPT):
    "TPT without shared image features or truncation: what a literal implementation computes."
    name = "plain-tpt"

    def full_context_features(self):
        "Class features with every prompt padded to the model's full context length, (K, D)."
        emb = self.learner.prompt_embeddings() # (K, L, W)
        tower = text_tower(self.clip.model)
        pad_ids = torch.zeros(emb.shape[0], self.clip.model.context_length - emb.shape[1], dtype=torch.long, device=emb.device)
        padded = torch.cat([emb, tower.token_embedding(pad_ids)], dim=1) # (K, context_length, W)
        return encode_text_embeddings(self.clip.model, padded, self.learner.eot, truncate=False)

    def predict(self, image, index):
        self.reset()
        views = self.views(image, index) # (N, 3, R, R)
        for step in range(self.steps):
            logits = clip_logits(self.clip, image_features(self.clip, views), self.full_context_features()) # (N, K)
            if step == 0: selected = select_confident_views(entropy(logits.detach()), self.keep)
            loss = marginal_entropy(logits[selected])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        with torch.no_grad():
            return clip_logits(self.clip, image_features(self.clip, views[:1]), self.full_context_features()).softmax(-1)[0]


def run(method, clip, classnames, images):
    "Predictions, images/s and peak memory (MiB) of `method` on `images`."
    method.prepare(clip, classnames)
    meter, predictions = PeakMemory(clip.device), []
    meter.reset()
    start = time.perf_counter()
    for i, image in enumerate(images): predictions.append(int(method.predict(image, i).argmax()))
    return predictions, len(images) / (time.perf_counter() - start), meter.peak_mb()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MINICLIP, help="open_clip model; models other than ttpt-miniclip are random-init")
    parser.add_argument("--classes", type=int, default=len(SOURCE_CLASSES), help="number of classes K (names repeat with a suffix beyond the benchmark's)")
    parser.add_argument("--images", type=int, default=20, help="test images")
    parser.add_argument("--views", type=int, default=64, help="views per image")
    parser.add_argument("--steps", type=int, default=1, help="TPT steps per image")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    clip = load_clip(args.model, pretrained="ttpt" if args.model == MINICLIP else None, device=args.device)
    images = [image for image, _ in get_dataset("hard", n=args.images)]
    classnames = [SOURCE_CLASSES[k % len(SOURCE_CLASSES)] + ("" if k < len(SOURCE_CLASSES) else f" {k}") for k in range(args.classes)]
    print(f"{args.model}, {args.classes} classes, {args.images} images, {args.views} views, {args.steps} step(s), "
          f"{args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    settings = dict(n_views=args.views, steps=args.steps)
    plain, plain_speed, plain_mem = run(PlainTPT(**settings), clip, classnames, images)
    ours, our_speed, our_mem = run(TPT(**settings), clip, classnames, images)
    agree = sum(p == o for p, o in zip(plain, ours))
    assert agree == len(ours), f"predictions differ on {len(ours) - agree} of {len(ours)} images"
    print(f"{'':>10} {'images/s':>9} {'peak MiB':>9}")
    print(f"{'plain':>10} {plain_speed:>9.3g} {plain_mem:>9.0f}")
    print(f"{'ttpt':>10} {our_speed:>9.3g} {our_mem:>9.0f}")
    print(f"speed-up {our_speed / plain_speed:.2f}x, memory ratio (ttpt/plain) {our_mem / plain_mem:.2f}; "
          f"same predictions on {agree}/{len(ours)} images")


if __name__ == "__main__":
    main()
