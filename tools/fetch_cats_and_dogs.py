#!/usr/bin/env python3
"""Download the cats_and_dogs_filtered archive that TensorFlow's own tutorials use and
unpack it as DEST/cats_and_dogs_filtered/{train,validation}/{cats,dogs}, after checking its
layout and counts (1,000 photos per class in train, 500 in validation).

Used by `just demo` when ../shared is absent. Standard library only. The folder appears
under its final name only once it has been checked; a failed or interrupted run leaves
nothing there.

    python3 tools/fetch_cats_and_dogs.py DEST [--url URL]
"""
import argparse
import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile

URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
NAME = "cats_and_dogs_filtered"
EXPECTED = {("train", "cats"): 1000, ("train", "dogs"): 1000,
            ("validation", "cats"): 500, ("validation", "dogs"): 500}


def check(root):
    """Problems with the unpacked folder, as one-line messages (empty when it is right)."""
    problems = []
    for (split, cls), want in EXPECTED.items():
        d = os.path.join(root, split, cls)
        if not os.path.isdir(d):
            problems.append(f"{split}/{cls}/ is missing")
            continue
        got = sum(1 for f in os.listdir(d) if f.lower().endswith(".jpg"))
        if got != want:
            problems.append(f"{split}/{cls}/ has {got} .jpg files, expected {want}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", help="folder to unpack into (DEST/cats_and_dogs_filtered)")
    ap.add_argument("--url", default=URL, help="where to download the archive from")
    args = ap.parse_args()
    final = os.path.join(args.dest, NAME)
    if os.path.isdir(final) and not check(final):
        print(final)
        return 0
    os.makedirs(args.dest, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dest, prefix=".fetch-") as tmp:
        archive = os.path.join(tmp, "archive.zip")
        print(f"downloading {args.url}", file=sys.stderr)
        try:
            with urllib.request.urlopen(args.url, timeout=60) as r, open(archive, "wb") as f:
                shutil.copyfileobj(r, f)
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        except (OSError, zipfile.BadZipFile) as e:
            sys.exit(f"error: {args.url}: {e}")
        unpacked = os.path.join(tmp, NAME)
        problems = check(unpacked)
        if problems:
            sys.exit(f"error: {args.url} is not the expected {NAME} archive: " + "; ".join(problems))
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.rename(unpacked, final)
    print(final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
