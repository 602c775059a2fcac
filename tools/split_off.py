"""A data root whose `validation` split is a seeded, stratified share of another split of
another root (symbolic links, no copies), for datasets without a validation split: what
README's "Which head" tables use for traffic_signs.

    python3 tools/split_off.py DATA OUT [--from train] [--fraction 0.2] [--seed 0]

OUT/validation and OUT/<from> split DATA/<from> class by class; DATA's other splits are linked
whole. traffic_signs' train holds many frames of each sign, so a share of train is easier than
test (frames of other signs): to calibrate, carve validation out of test (`--from test`).
"""

import argparse
import os
import random
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--from", dest="source", default="train")
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for split in sorted(p for p in args.data.iterdir() if p.is_dir()):
        if split.name == args.source:
            continue
        (args.out / split.name).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(split.resolve(), args.out / split.name)
    for cls in sorted(p for p in (args.data / args.source).iterdir() if p.is_dir()):
        photos = sorted(cls.iterdir())
        random.Random(f"{args.seed}/{cls.name}").shuffle(photos)
        held = max(1, round(args.fraction * len(photos)))
        for split, part in (("validation", photos[:held]), (args.source, photos[held:])):
            (args.out / split / cls.name).mkdir(parents=True, exist_ok=True)
            for p in part:
                os.symlink(p.resolve(), args.out / split / cls.name / p.name)


if __name__ == "__main__":
    main()
