#!/usr/bin/env python3
"""The Python pipeline a user would write for feature extraction, the baseline of `just bench`:
Pillow decode + resize + the spec's preprocessing (tools/reference_features.py) + onnxruntime
in batches + h5py, one split after another.

  python3 tools/bench_python_extract.py MODEL.onnx DATA_SPLIT_DIR OUT.h5 [--threads 2] [--batch 32]

DATA_SPLIT_DIR holds <class>/<image> folders. Prints one JSON line: images, seconds, images/s.
"""
import json
import os
import sys
import time

import h5py
import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
from reference_features import normalize, resize  # noqa: E402


def main():
    args = bench_common.parse("model", "split_dir", "out")
    start = time.perf_counter()
    spec = json.load(open(os.path.splitext(args.model)[0] + ".json"))
    inp, outputs = spec["input"], spec["outputs"]
    pooled = (outputs.get("pooled") or {}).get("name")
    fmap = (outputs.get("features") or {}).get("name")
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])

    classes = sorted(d for d in os.listdir(args.split_dir) if os.path.isdir(os.path.join(args.split_dir, d)))
    files = [(os.path.join(args.split_dir, c, f), i) for i, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(args.split_dir, c)))]
    rows, labels = [], []
    for b in range(0, len(files), args.batch):
        chunk = files[b:b + args.batch]
        x = np.concatenate([normalize(resize(Image.open(p).convert("RGB"), inp), inp) for p, _ in chunk])
        out = sess.run([pooled or fmap], {inp["name"]: x})[0]
        if not pooled:  # global average pool of the map
            out = out.mean(axis=(2, 3)) if fmap and outputs["features"].get("layout", inp["layout"]) == "NCHW" \
                else out.mean(axis=(1, 2))
        rows.append(out)
        labels += [label for _, label in chunk]
    with h5py.File(args.out, "w") as h:
        h["train"] = np.concatenate(rows)
        h["label"] = np.array(labels)
    bench_common.report(len(files), start)


if __name__ == "__main__":
    main()
