"""imgclf from Python: extract backbone features, read feature files as numpy arrays, embed
photos in memory, train heads and list runs, through imgclf's Rust libraries (no subprocess,
no CSV in between). Arrays are C-contiguous float32 `(N, D)`; long calls release the GIL and
stop between batches on Ctrl-C; errors are `ImgclfError`s with the command line's messages.
"""

import functools
import importlib.util
import os
import sys
from pathlib import Path


def _find_onnxruntime():
    """ONNX Runtime for `engine="auto"`/`"ort"`, as the CLI finds it: the library of the
    `onnxruntime` wheel installed beside this one (ORT_DYLIB_PATH, when set, wins)."""
    if os.environ.get("ORT_DYLIB_PATH"):
        return
    spec = importlib.util.find_spec("onnxruntime")
    if spec and spec.submodule_search_locations:
        libraries = sorted(Path(spec.submodule_search_locations[0], "capi").glob("libonnxruntime.so*"))
        if libraries:
            os.environ["ORT_DYLIB_PATH"] = str(libraries[0])


_find_onnxruntime()

from . import _imgclf  # noqa: E402
from ._imgclf import (  # noqa: E402
    DatasetError,
    EngineError,
    FeatureError,
    FeatureFile,
    HeadError,
    ImgclfError,
    NetError,
    ReportError,
    Run,
    list_runs,
)

__all__ = [
    "Blocks",
    "DatasetError",
    "EngineError",
    "FeatureError",
    "FeatureFile",
    "HeadError",
    "ImgclfError",
    "Model",
    "NetError",
    "ReportError",
    "Run",
    "embed",
    "extract",
    "list_runs",
    "open_features",
    "train_head",
]


class _Progress:
    """`progress(done, total)` for the library: a tqdm bar when tqdm is installed, else a line
    at every tenth."""

    def __init__(self, what):
        self.what, self.bar, self.shown = what, None, -1
        try:
            from tqdm.auto import tqdm

            self.tqdm = tqdm
        except ImportError:
            self.tqdm = None

    def __call__(self, done, total):
        if self.tqdm is not None:
            if self.bar is None:
                self.bar = self.tqdm(total=total, desc=self.what)
            self.bar.total = total
            self.bar.update(done - self.bar.n)
        elif done * 10 // total != self.shown:
            self.shown = done * 10 // total
            print(f"{self.what}: {done}/{total} ({100 * done // total}%)", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _with_progress(what, function):
    """`function` with `progress=True` (the default: a bar or lines), False (silent) or a
    callable `progress(done, total)`."""

    @functools.wraps(function)
    def call(*args, progress=True, **kwargs):
        reporter = _Progress(what) if progress is True else (progress or None)
        try:
            return function(*args, progress=reporter, **kwargs)
        finally:
            if isinstance(reporter, _Progress):
                reporter.close()

    return call


class Model:
    """A backbone loaded on an engine once (`model`: an ONNX file with its spec, or a name in
    the model cache; `engine`: auto, ort or tract), to embed many batches without loading it
    again."""

    def __init__(self, model, engine="auto"):
        self._model = _imgclf.Model(model, engine)
        self.embed = _with_progress("embed (images)", self._model.embed)
        self.embed.__doc__ = _imgclf.Model.embed.__doc__

    @property
    def name(self):
        """The backbone's name."""
        return self._model.name

    @property
    def input_size(self):
        """(height, width) a photo is resized to."""
        return self._model.input_size


extract = _with_progress("extract (images)", _imgclf.extract)
embed = _with_progress("embed (images)", _imgclf.embed)
train_head = _with_progress("train_head (epochs or iterations)", _imgclf.train_head)


def open_features(path):
    """Opens a feature file (`gap_<Backbone>.h5`); see `FeatureFile`."""
    return FeatureFile(path)


class Blocks:
    """A split of a feature file in blocks of `rows` rows, for data that does not fit in memory:
    `len()` blocks, each `(X, y, paths)` as `FeatureFile.read` gives them (paths None with
    `paths=False`), by index or in order (a Dataset-style sequence, without PyTorch)."""

    def __init__(self, file, split, rows=65536, paths=True):
        if rows < 1:
            raise ValueError(f"rows: at least 1, got {rows}")
        self.file = file if isinstance(file, FeatureFile) else FeatureFile(file)
        self.split, self.rows, self.paths = split, rows, paths
        self.total = self.file.rows(split)

    def __len__(self):
        return -(-self.total // self.rows)

    def __getitem__(self, i):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"block {i} of {len(self)}")
        return self.file.read(self.split, i * self.rows, min((i + 1) * self.rows, self.total), paths=self.paths)

    def __iter__(self):
        return (self[i] for i in range(len(self)))
