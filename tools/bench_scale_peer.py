"""The tutorial's plain Python recipe at scale, beside `imgclf train-head`: each feature file's
train split read whole with h5py (`h['train'][:]`), concatenated with numpy, then one epoch
of the same logistic head (softmax regression, mini-batches of 128, plain SGD) in numpy.
Prints one line: seconds to load, seconds for the epoch, peak RSS, or "out of memory".

    python tools/bench_scale_peer.py FILE.h5...
"""

import resource
import sys
import time

import h5py
import numpy as np


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(files):
    started = time.time()
    try:
        blocks = [h5py.File(f)["train"][:] for f in files]
        labels = h5py.File(files[0])["label"][:]
        x = np.concatenate(blocks, axis=1)
        del blocks
    except MemoryError:
        print(f"load: out of memory after {time.time() - started:.1f} s (peak RSS {peak_mb():.0f} MB)")
        return
    loaded = time.time() - started
    classes = int(labels.max()) + 1
    w = np.zeros((x.shape[1], classes), np.float32)
    b = np.zeros(classes, np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    started = time.time()
    for start in range(0, len(x), 128):
        rows = order[start : start + 128]
        z = x[rows] @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(rows)), labels[rows]] -= 1
        w -= 0.01 * x[rows].T @ p / len(rows)
        b -= 0.01 * p.mean(axis=0)
    print(f"load {loaded:.1f} s, epoch {time.time() - started:.1f} s, peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
