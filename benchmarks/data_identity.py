"""The cost of a dataset's content-addressed identity: hashing every image once, then reading the digests from the cache.

    python benchmarks/data_identity.py [--root /tmp/ttpt-identity-bench] [--images 50000] [--kb 110]

Writes `--images` JPEG files of about `--kb` KB each (ImageNet's validation set: 50,000 images, about 6.4 GB) in
ImageNet's layout, one folder per WordNet id, unless they are there already; then times `load_dataset("imagenet", ...)`
three times with an empty digest cache the first two times:
  cold: the files' pages evicted from the OS page cache (posix_fadvise), so every byte comes from the disk;
  cached files: the bytes come from the page cache, and only the hashing is left;
  warm: the digests come from the cache keyed by (path, size, mtime, ctime, inode), as in every later run.
"""
import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_images(root, n, kb, seed=0):
    "n JPEG files in ImageNet's layout, each one of 64 smooth random pictures of about `kb` KB plus its own trailing bytes."
    from ttpt.data.layouts import IMAGENET_SYNSETS
    rng = np.random.default_rng(seed)
    bases = []
    for _ in range(64):
        low = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        picture = np.asarray(Image.fromarray(low).resize((500, 375), Image.BICUBIC)).astype(np.int16)
        picture = np.clip(picture + rng.normal(0, 18, picture.shape), 0, 255).astype(np.uint8) # texture, like a photo
        for quality in range(95, 40, -5):
            buffer = io.BytesIO()
            Image.fromarray(picture).save(buffer, "JPEG", quality=quality)
            if buffer.tell() <= kb * 1024: break
        bases.append(buffer.getvalue())
    for i in range(n):
        folder = root/IMAGENET_SYNSETS[i % 1000]
        folder.mkdir(parents=True, exist_ok=True)
        (folder/f"ILSVRC2012_val_{i + 1:08d}.JPEG").write_bytes(bases[i % len(bases)] + i.to_bytes(8, "little")) # after the end marker: no two files alike
    os.sync()


def evict(root):
    "Drop the files' clean pages from the OS page cache (their own pages only; no privileges needed)."
    for path in root.rglob("*.JPEG"):
        fd = os.open(path, os.O_RDONLY)
        try: os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally: os.close(fd)


def timed(root, cache):
    "Seconds to read the dataset and its identity with the digest cache in `cache`."
    os.environ["TTPT_CACHE"] = str(cache)
    from ttpt.data.datasets import load_dataset
    start = time.perf_counter()
    dataset = load_dataset("imagenet", root)
    return time.perf_counter() - start, dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir())/"ttpt-identity-bench")
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--kb", type=int, default=110)
    args = parser.parse_args()
    if len(list(args.root.rglob("*.JPEG"))) != args.images:
        start = time.perf_counter()
        write_images(args.root, args.images, args.kb)
        print(f"wrote {args.images:,} images in {time.perf_counter() - start:.0f} s")
    files = list(args.root.rglob("*.JPEG"))
    print(f"{len(files):,} images, {sum(f.stat().st_size for f in files) / 1e9:.2f} GB, mean {np.mean([f.stat().st_size for f in files]) / 1024:.0f} KB")
    with tempfile.TemporaryDirectory() as cold_cache, tempfile.TemporaryDirectory() as hot_cache:
        evict(args.root)
        cold, dataset = timed(args.root, cold_cache)
        cached_files, _ = timed(args.root, hot_cache)
        warm, again = timed(args.root, hot_cache)
    assert again.identity == dataset.identity, "the cached digests must give the same identity"
    print(f"cold (bytes from disk, nothing cached): {cold:.1f} s")
    print(f"files in the page cache, digests not cached: {cached_files:.1f} s")
    print(f"warm (digests cached by path, size, mtime, ctime, inode): {warm:.1f} s")


if __name__ == "__main__":
    main()
