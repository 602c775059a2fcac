"""imgclf from Python: extract backbone features, read feature files as numpy arrays, embed
photos in memory, train heads and list runs, through imgclf's Rust libraries (no subprocess,
no CSV in between). Arrays are C-contiguous float32 `(N, D)`; long calls release the GIL and
stop between batches on Ctrl-C; errors are `ImgclfError`s with the command line's messages.
"""

from ._imgclf import (
    DatasetError,
    EngineError,
    FeatureError,
    FeatureFile,
    HeadError,
    HeadRun,
    ImgclfError,
    ReportError,
    embed,
    extract,
    list_runs,
    train_head,
)

__all__ = [
    "Blocks",
    "DatasetError",
    "EngineError",
    "FeatureError",
    "FeatureFile",
    "HeadError",
    "HeadRun",
    "ImgclfError",
    "ReportError",
    "embed",
    "extract",
    "list_runs",
    "open_features",
    "train_head",
]


def open_features(path):
    """Opens a feature file (`gap_<Backbone>.h5`); see `FeatureFile`."""
    return FeatureFile(path)


class Blocks:
    """A split of a feature file in blocks of `rows` rows, for data that does not fit in memory:
    `len()` blocks, each `(X, y, paths)` as `FeatureFile.read` gives them, by index or in order
    (a Dataset-style sequence, without PyTorch)."""

    def __init__(self, file, split, rows=65536):
        if rows < 1:
            raise ValueError(f"rows: at least 1, got {rows}")
        self.file = file if isinstance(file, FeatureFile) else FeatureFile(file)
        self.split, self.rows = split, rows
        self.total = self.file.rows(split)

    def __len__(self):
        return -(-self.total // self.rows)

    def __getitem__(self, i):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"block {i} of {len(self)}")
        return self.file.read(self.split, i * self.rows, min((i + 1) * self.rows, self.total))

    def __iter__(self):
        return (self[i] for i in range(len(self)))
