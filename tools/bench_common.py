"""What the Python sides of `just bench` share: their command line and their one-line report."""
import argparse
import json
import time


def parse(*positional):
    """`positional` arguments, then --threads (default 2) and --batch (default 32)."""
    ap = argparse.ArgumentParser()
    for name in positional:
        ap.add_argument(name)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    return ap.parse_args()


def report(images, start):
    """The JSON line the bench reads: images, seconds since `start`, images/s."""
    seconds = time.perf_counter() - start
    print(json.dumps({"images": images, "seconds": seconds, "images_per_s": images / seconds}))
