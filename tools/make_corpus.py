"""A corpus of N distinct JPEGs for the scale benchmark, made from a folder of labelled photos:
photo i % P, variant i // P, cropped (70-100% of each side, seeded position), mirrored on odd
variants, scaled to at most 320 px and saved at quality 70-94. Every file differs from every
other; the same N gives the same files. Written as OUT/train/<class>/img<i>.jpg.

    python tools/make_corpus.py ../shared/data/cats_dogs 10000 /tmp/corpus-10000
"""

import os
import random
import sys
from multiprocessing import Pool
from pathlib import Path

from PIL import Image


def photos(root):
    """Every labelled photo as (class, path), the classes taking turns so that any N has them all."""
    per_class = {}
    for split in ("train", "validation"):
        if not (root / split).is_dir():
            continue
        for folder in sorted(p for p in (root / split).iterdir() if p.is_dir()):
            images = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
            per_class.setdefault(folder.name, []).extend(images)
    turns = [[(cls, p) for p in images] for cls, images in sorted(per_class.items())]
    return [item for rank in range(max(map(len, turns), default=0)) for t in turns if rank < len(t) for item in [t[rank]]]


def make(job):
    i, variant, cls, src, out = job
    target = out / "train" / cls / f"img{i:07d}.jpg"
    if target.exists():
        return
    rng = random.Random(i)
    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = im.size
        cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        im = im.crop((x, y, x + cw, y + ch))
        if variant % 2:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        im.thumbnail((320, 320))
        tmp = target.with_suffix(".tmp")
        im.save(tmp, "JPEG", quality=70 + i % 25)
        os.replace(tmp, target)


def main():
    root, n, out = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    found = photos(root)
    if not found:
        sys.exit(f"{root}: no photos under train/ or validation/")
    for cls in {c for c, _ in found}:
        (out / "train" / cls).mkdir(parents=True, exist_ok=True)
    jobs = [(i, i // len(found), *found[i % len(found)], out) for i in range(n)]
    with Pool(os.cpu_count()) as pool:
        pool.map(make, jobs, chunksize=64)
    print(f"{out}: {n} JPEGs from {len(found)} photos")


if __name__ == "__main__":
    main()
