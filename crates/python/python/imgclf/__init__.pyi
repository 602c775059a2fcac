from os import PathLike
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike[str]]
_Block = tuple[npt.NDArray[np.float32], Optional[npt.NDArray[np.int64]], list[str]]

class ImgclfError(Exception):
    """The base of every error imgclf raises."""

class DatasetError(ImgclfError):
    """Photos and data roots: unreadable, missing or inconsistent."""

class EngineError(ImgclfError):
    """Models and engines: a spec, an ONNX file or ONNX Runtime."""

class FeatureError(ImgclfError):
    """Feature files: unreadable, damaged, or of another dataset."""

class HeadError(ImgclfError):
    """Heads and runs: settings, inputs and run folders."""

class ReportError(ImgclfError):
    """Reports and tables of runs."""

class FeatureFile:
    """A feature file: splits, classes, backbone and attributes at once, rows on demand."""
    def __init__(self, path: _Path) -> None: ...
    @property
    def path(self) -> Path: ...
    @property
    def backbone(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def dim(self) -> int: ...
    @property
    def splits(self) -> list[str]: ...
    @property
    def attrs(self) -> dict[str, Any]: ...
    def rows(self, split: str) -> int:
        """Rows of `split`."""
    def read(self, split: str, start: int = 0, stop: Optional[int] = None) -> _Block:
        """Rows start..stop: float32 (N, D), int64 labels or None, paths."""

class HeadRun:
    """A train-head run folder: classes, run.json, probabilities for feature rows."""
    def __init__(self, dir: _Path) -> None: ...
    @property
    def dir(self) -> Path: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def info(self) -> dict[str, Any]: ...
    def predict(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Class probabilities (N, classes), calibrated when the run is."""

class Blocks:
    """A split in blocks of `rows` rows: len() blocks, each (X, y, paths)."""
    def __init__(self, file: Union[FeatureFile, _Path], split: str, rows: int = 65536) -> None: ...
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> _Block: ...
    def __iter__(self) -> Iterator[_Block]: ...

def open_features(path: _Path) -> FeatureFile:
    """Opens a feature file."""

def extract(
    data: _Path,
    models: Sequence[_Path],
    out: _Path = "features",
    engine: str = "auto",
    batch: Optional[int] = None,
    force: bool = False,
) -> list[FeatureFile]:
    """Features of every split of `data` through each model, one file per model in `out`."""

def embed(
    model: _Path,
    images: Union[npt.NDArray[np.uint8], Sequence[_Path]],
    engine: str = "auto",
    batch: int = 32,
) -> npt.NDArray[np.float32]:
    """Features (N, D) of a uint8 (N, H, W, 3) batch or of image files."""

def train_head(
    features: Sequence[_Path],
    out: _Path,
    config: Optional[dict[str, Any]] = None,
    memory_budget: Optional[int] = None,
    overwrite: bool = False,
) -> HeadRun:
    """A head trained as train-head trains it; `config` is a run.json's `config` object."""

def list_runs(dirs: Sequence[_Path]) -> list[dict[str, Any]]:
    """Every run folder under `dirs`, one dict each."""
