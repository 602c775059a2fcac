"""Read speed of a feature dataset by HDF5 chunk height: 200,000 x 1,280 f32 rows appended 256 at a
time (as extract does), then 16,384-row blocks in order and 500 random 128-row ranges.
Writes three ~1 GB files to /tmp/chunk; the figures behind keeping 64-row chunks.

    .venv/bin/python tools/chunk_reads.py
"""
import os
import time

import h5py
import numpy as np

os.makedirs("/tmp/chunk", exist_ok=True)
rows, dim = 200_000, 1280
data = np.random.default_rng(0).standard_normal((8192, dim)).astype(np.float32)
for chunk in [64, 256, 1024]:
    p = f"/tmp/chunk/c{chunk}.h5"
    t = time.time()
    with h5py.File(p, "w") as f:
        d = f.create_dataset("train", shape=(0, dim), maxshape=(None, dim), chunks=(chunk, dim), dtype="f4")
        for s in range(0, rows, 256):  # extract appends a batch at a time
            d.resize(s + 256, axis=0); d[s:s+256] = data[s % 8192: s % 8192 + 256]
    w = time.time() - t
    os.system("sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null")
    with h5py.File(p, "r") as f:
        d = f["train"]
        t = time.time()
        for s in range(0, rows, 16384): x = d[s:s+16384]
        seq = time.time() - t
        rng = np.random.default_rng(1); t = time.time()
        for s in rng.integers(0, rows - 128, 500): x = d[s:s+128]
        rnd = time.time() - t
    print(f"chunk {chunk:5d} rows ({chunk*dim*4/1e6:.2f} MB): write {w:.1f} s, sequential 16384-row blocks {rows*dim*4/1e6/seq:.0f} MB/s, 500 random 128-row reads {rnd*1e3/500:.2f} ms each, file {os.path.getsize(p)/1e6:.0f} MB")
