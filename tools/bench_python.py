"""The wheel's figures for README's "From Python", each pair measured side by side in one run:

1. extract from Python against the CLI on the same photos (cats_dogs, EfficientNet-Lite0 on
   ONNX Runtime, --force), alternating, each a whole process: seconds and the time ratio;
2. a 256-photo batch in memory (uint8, decoded and cropped beforehand, as the spec says)
   through `imgclf.embed`, against `imgclf extract` of the same 256 photos from files and
   against onnxruntime's own Python API with numpy preprocessing: images/s;
3. reading a 10^6-row feature file (tools/bench_scale.sh's) a block of 65,536 rows at a time
   (features and labels) with `imgclf.Blocks` against h5py slices, each in a process of its
   own after the file was read once (page cache warm): seconds and peak RSS. h5py twice where
   Debian's python3-h5py is installed: the wheel's (its own, newer HDF5) and Debian's, which
   links the same libhdf5 as imgclf, so the library's share of a gap shows apart from ours.

    .venv/bin/python tools/bench_python.py [--shared ../shared] [--rows-file FILE.h5]
        [--only extract|embed|blocks ...] [--rounds N] [--rechunk ROWS]

Needs the wheel installed in this Python (`./just test-python` installs it) and the CLI built.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path("target/debug/imgclf")


def timed(cmd):
    """Seconds and peak RSS (MB) of a command, via /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r") as out:
        started = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *map(str, cmd)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - started
        return seconds, int(out.read().split()[-1]) / 1024


def photo(path, size=224):
    """A photo as the spec prepares it: RGB, square centre crop of 0.875 of the short side, bicubic."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    c = int(size / (size + 32) * min(w, h))
    top, left = (h - c + 1) // 2, (w - c + 1) // 2
    return np.asarray(img.crop((left, top, left + c, top + c)).resize((size, size), Image.BICUBIC))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default="../shared", type=Path)
    ap.add_argument("--rows-file", default="/tmp/imgclf-scale/rows-1000000/gap_EfficientNet-Lite0-copy0.h5")
    ap.add_argument("--only", nargs="+", choices=["extract", "embed", "blocks"], default=["extract", "embed", "blocks"])
    ap.add_argument("--rounds", type=int, default=2, help="block reads: each reader this many times, alternating")
    ap.add_argument("--rechunk", type=int, metavar="ROWS",
                    help="block reads: also on a copy of the file rewritten by h5py with ROWS-row chunks (beside it)")
    args = ap.parse_args()
    data, model = args.shared / "data" / "cats_dogs", args.shared / "models" / "efficientnet_lite0.onnx"
    work = Path(tempfile.mkdtemp(prefix="bench-python-"))
    if "extract" in args.only:
        extract(data, model, work)
    if "embed" in args.only:
        embed(data, model, work)
    if "blocks" in args.only:
        blocks(args.rows_file, args.rounds)
        if args.rechunk:
            blocks(rechunked(args.rows_file, args.rechunk), args.rounds)


def extract(data, model, work):
    print("## extract, cats_dogs (2,780 photos), EfficientNet-Lite0, ONNX Runtime, --force")
    cli = [BIN, "extract", "--data", data, "--model", model, "--out", work / "cli", "--force"]
    py = [sys.executable, "-c",
          f"import imgclf; imgclf.extract({str(data)!r}, [{str(model)!r}], {str(work / 'py')!r}, force=True, progress=False)"]
    runs = {"CLI": [], "Python": []}
    for _ in range(4):
        runs["CLI"].append(timed(cli)[0])
        runs["Python"].append(timed(py)[0])
    for name, seconds in runs.items():
        print(f"{name}: {' / '.join(f'{s:.1f}' for s in seconds)} s")
    print(f"ratio Python / CLI: {sum(runs['Python']) / sum(runs['CLI']):.3f}")


def embed(data, model, work):
    import imgclf

    print("\n## 256 photos (cats_dogs train), EfficientNet-Lite0, images/s")
    files = sorted((data / "train" / "cats").iterdir())[:128] + sorted((data / "train" / "dogs").iterdir())[:128]
    batch = np.stack([photo(f) for f in files])
    root = work / "photos"
    for f in files:
        (root / "train" / f.parent.name).mkdir(parents=True, exist_ok=True)
        (root / "train" / f.parent.name / f.name).symlink_to(f.resolve())
    loaded = imgclf.Model(model)  # loaded once, as the onnxruntime session below
    loaded.embed(batch[:32], resize=False, progress=False)  # the engine's first run
    started = time.perf_counter()
    rows = loaded.embed(batch, batch=32, resize=False, progress=False)
    embed_s = time.perf_counter() - started
    started = time.perf_counter()
    loaded.embed(batch, batch=32, progress=False)
    embed_resized_s = time.perf_counter() - started
    started = time.perf_counter()
    imgclf.embed(model, batch, batch=32, resize=False, progress=False)
    embed_once_s = time.perf_counter() - started
    extract_s, _ = timed([BIN, "extract", "--data", root, "--model", model, "--out", work / "photos-f", "--force"])

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    ort_s, theirs = ort_seconds(ort, model, options, batch)
    # as imgclf's sessions are made: intra-op threads that sleep instead of spinning, since
    # extract decodes the next batches on the same cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    quiet_s, _ = ort_seconds(ort, model, options, batch)
    # and at imgclf's graph optimisation level (the ort crate's Level3) instead of Python's ALL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT
    layout_s, _ = ort_seconds(ort, model, options, batch)
    print(f"imgclf.Model.embed (uint8 batch in memory, resize=False): {256 / embed_s:.1f}")
    print(f"imgclf.Model.embed, each photo resized as extract resizes it (crop and bicubic again): {256 / embed_resized_s:.1f}")
    print(f"imgclf.embed (the model loaded in the call): {256 / embed_once_s:.1f}")
    print(f"imgclf extract of the same photos from files (whole command, decoding included): {256 / extract_s:.1f}")
    print(f"onnxruntime's Python API, numpy preprocessing: {256 / ort_s:.1f}")
    print(f"the same, intra-op spinning off (as imgclf's sessions): {256 / quiet_s:.1f}")
    print(f"the same, also at ORT_ENABLE_LAYOUT (imgclf's level): {256 / layout_s:.1f}")
    print(f"embed against onnxruntime: max |difference| {np.abs(rows - theirs).max():.2e}")



def ort_seconds(ort, model, options, batch):
    """Seconds onnxruntime's Python API takes for `batch` in 32s with `options`, numpy
    preprocessing and pooling included (after one warm-up batch), and the pooled rows."""
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    run = lambda x: session.run(["features"], {"input": ((x.astype(np.float32) - 127) / 128).transpose(0, 3, 1, 2)})
    run(batch[:32])
    started = time.perf_counter()
    rows = np.concatenate([run(batch[i:i + 32])[0].mean(axis=(2, 3)) for i in range(0, len(batch), 32)])
    return time.perf_counter() - started, rows


def rechunked(rows_file, rows):
    """A copy of `rows_file` beside it whose datasets h5py rewrote in `rows`-row chunks (made once)."""
    import h5py

    out = Path(rows_file).with_suffix(f".chunks{rows}.h5")
    if not out.is_file():
        with h5py.File(rows_file, "r") as a, h5py.File(out.with_suffix(".tmp"), "w") as b:
            b.attrs.update(a.attrs)
            for name, d in a.items():
                copy = b.create_dataset(name, shape=d.shape, dtype=d.dtype, chunks=(rows, *d.shape[1:]),
                                        maxshape=(None, *d.shape[1:]))
                copy.attrs.update(d.attrs)
                for i in range(0, d.shape[0], 65536):
                    copy[i:i + 65536] = d[i:i + 65536]
        out.with_suffix(".tmp").rename(out)
    return str(out)


def blocks(rows_file, rounds):
    print(f"\n## reading {rows_file} in blocks of 65,536 rows")
    if not Path(rows_file).is_file():
        print("(no file: tools/bench_scale.sh --only probe --rows 1000000 makes it)")
        return
    subprocess.run(["cat", rows_file], stdout=subprocess.DEVNULL, check=True)
    # the same loop on every side: features and labels a block at a time, one block held
    ours = ("import imgclf\n"
            f"b = imgclf.Blocks({rows_file!r}, 'train', 65536, paths=False)\n"
            "def one(i):\n"
            "    x, y, _ = b[i]\n"
            "    return float(x[:, 0].sum()) + float(y.sum())\n"
            "s = sum(one(i) for i in range(len(b)))")
    theirs = ("import h5py\n"
              f"h = h5py.File({rows_file!r}, 'r'); d, labels = h['train'], h['label']\n"
              "def one(i):\n"
              "    x, y = d[i:i + 65536], labels[i:i + 65536]\n"
              "    return float(x[:, 0].sum()) + float(y.sum())\n"
              "s = sum(one(i) for i in range(0, d.shape[0], 65536))")
    readers = [("imgclf.Blocks (the system's libhdf5 " + system_hdf5() + ")", [sys.executable, "-c", ours])]
    for python in [sys.executable, "/usr/bin/python3"]:
        version = subprocess.run([python, "-c", "import h5py; print(h5py.__version__, h5py.version.hdf5_version)"],
                                 capture_output=True, text=True).stdout.split()
        if version:
            readers.append((f"h5py {version[0]} slices ({python}, HDF5 {version[1]})", [python, "-c", theirs]))
    seconds = {name: [] for name, _ in readers}
    for _ in range(rounds):
        for name, cmd in readers:
            s, mb = timed(cmd)
            seconds[name].append(s)
            print(f"{name}: {s:.2f} s, peak RSS {mb:.0f} MB")
    for name, times in seconds.items():
        print(f"median {name}: {sorted(times)[len(times) // 2]:.2f} s of {len(times)}")


def system_hdf5():
    """The version of the system's libhdf5, which the wheel links (pkg-config's answer)."""
    got = subprocess.run(["pkg-config", "--modversion", "hdf5"], capture_output=True, text=True).stdout.strip()
    return got or "?"

if __name__ == "__main__":
    main()
