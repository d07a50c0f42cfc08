"""TPT at real scale: seconds per image and peak memory for K = 200 and K = 1000 classes, with the views already on the
device and end to end (views made by DataLoader workers), and the float32 agreement of batched episodes with the
sequential path.

    python benchmarks/tpt_gpu.py --device cuda [--pretrained openai] [--classes 200 1000] [--images 64]
    python benchmarks/tpt_gpu.py --device cpu --classes 20 --images 4 --views 16   # a smoke run on a CPU

The model is ViT-B/16, randomly initialised unless --pretrained names weights the machine has. Images are random
256 px pictures: a random model's predictions mean nothing, its time and memory do. Peak memory is
torch.cuda.max_memory_allocated on a GPU and the process's peak RSS on a CPU.
"""
import argparse
import time

import torch

from ttpt.harness.evaluate import evaluate, PeakMemory
from ttpt.harness.reports import RandomImages
from ttpt.core.models import load_clip
from ttpt.methods.tpt import TPT


def synchronise(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def views_on_device(clip, data, views, episodes):
    "Seconds per image and peak MiB of TPT when every image's views already sit on the device (the image pass included)."
    method = TPT(n_views=views)
    method.prepare(clip, data.classes)
    images = [data[i][0] for i in range(len(data))]
    ready = {i: method.views(image, i).to(clip.device) for i, image in enumerate(images)} # made and moved before timing
    method.take_views({i: ready[i] for i in range(min(episodes, len(images)))})
    method.predict_episodes(images[:episodes], list(range(min(episodes, len(images))))) # warm-up (kernels, allocator)
    meter = PeakMemory(clip.device)
    meter.reset()
    synchronise(clip.device)
    start = time.perf_counter()
    for first in range(0, len(images), episodes):
        batch = list(range(first, min(first + episodes, len(images))))
        method.take_views({i: ready[i] for i in batch})
        method.predict_episodes([images[i] for i in batch], batch).cpu()
    synchronise(clip.device)
    return (time.perf_counter() - start) / len(images), meter.peak_mb()


def end_to_end(clip, data, views, episodes, workers):
    "Seconds per image and peak MiB through the harness: images read and views made by `workers` processes."
    results = evaluate(TPT(n_views=views), data, clip, episodes=episodes, workers=workers, progress=False)
    return 1 / results["images_per_s"].iloc[0], results["memory_mb"].max()


def agreement(clip, data, views, episodes, images):
    "Float32: batched episodes against sequential ones on the first `images` images (argmax agreement, max |Δp|)."
    subset = RandomImages(images, len(data.classes))
    one = evaluate(TPT(n_views=views), subset, clip, episodes=1, progress=False)
    many = evaluate(TPT(n_views=views), subset, clip, episodes=episodes, progress=False)
    return (one["prediction"] == many["prediction"]).mean(), (one["confidence"] - many["confidence"]).abs().max()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--pretrained", default="none", help="weights tag the machine has, e.g. openai; none: random init")
    parser.add_argument("--classes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--views", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=8, help="episodes per pass")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers for the end-to-end run")
    parser.add_argument("--check-images", type=int, default=8, help="images of the float32 agreement check")
    args = parser.parse_args()
    clip = load_clip(args.model, pretrained=None if args.pretrained == "none" else args.pretrained, device=args.device)
    print(f"{args.model} ({args.pretrained}), {args.device}, torch {torch.__version__}, {args.views} views, 1 step, "
          f"{args.episodes} episodes per pass, {args.workers} workers")
    print(f"{'K':>5} {'views on device s/img':>22} {'peak MiB':>9} {'end to end s/img':>17} {'peak MiB':>9} {'fp32 argmax agree':>18} {'max |Δp|':>9}")
    for classes in args.classes:
        data = RandomImages(args.images, classes)
        on_device = views_on_device(clip, data, args.views, args.episodes)
        whole = end_to_end(clip, data, args.views, args.episodes, args.workers)
        if clip.device.type == "cuda": # the agreement is a float32 property: check it without bf16 autocast
            fp32 = load_clip(args.model, pretrained=None if args.pretrained == "none" else args.pretrained, device="cpu")
        else: fp32 = clip
        agree, gap = agreement(fp32, data, min(args.views, 16), min(args.episodes, 4), args.check_images)
        print(f"{classes:>5} {on_device[0]:>22.4f} {on_device[1]:>9.0f} {whole[0]:>17.4f} {whole[1]:>9.0f} {agree:>18.0%} {gap:>9.1e}")


if __name__ == "__main__":
    main()
