from os import PathLike
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, PathLike[str]]
_Block = tuple[npt.NDArray[np.float32], Optional[npt.NDArray[np.int64]], Optional[list[str]]]

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

class NetError(ImgclfError):
    """Networks from pixels, fine-tuning, and run folders of any kind."""

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
    def read(self, split: str, start: int = 0, stop: Optional[int] = None, paths: bool = True) -> _Block:
        """Rows start..stop: float32 (N, D), int64 labels or None, paths (None with paths=False)."""

class Run:
    """A run folder of any kind: train-head, train-cnn or fine-tune."""
    def __init__(self, dir: _Path) -> None: ...
    @property
    def dir(self) -> Path: ...
    @property
    def kind(self) -> str: ...
    @property
    def classes(self) -> list[str]: ...
    @property
    def temperature(self) -> Optional[float]: ...
    @property
    def info(self) -> dict[str, Any]: ...
    def predict(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """A head run's class probabilities (N, classes) for feature rows, calibrated when the run is."""
    def predict_images(
        self, images: Sequence[_Path], engine: str = "auto", batch: int = 32
    ) -> tuple[npt.NDArray[np.float32], list[Path]]:
        """Class probabilities for image files or folders, and the paths read."""
    def predict_split(
        self,
        split: Optional[str] = None,
        features: Sequence[_Path] = (),
        data: Optional[_Path] = None,
        memory_budget: Optional[int] = None,
    ) -> tuple[npt.NDArray[np.float32], list[str], Optional[list[int]]]:
        """Class probabilities of a split: (probs, paths, labels or None)."""
    def evaluate(
        self,
        split: Optional[str] = None,
        features: Sequence[_Path] = (),
        data: Optional[_Path] = None,
        memory_budget: Optional[int] = None,
        top: int = 10,
    ) -> dict[str, Any]:
        """Accuracy, log loss, calibration, per-class scores, confusion, top losses."""
    def report(
        self,
        out: Optional[_Path] = None,
        split: Optional[str] = None,
        data: Optional[_Path] = None,
        features: Sequence[_Path] = (),
        engine: str = "auto",
    ) -> Path:
        """Writes the run's HTML page; returns its path."""

class Model:
    """A backbone loaded on an engine once, to embed many batches."""
    def __init__(self, model: _Path, engine: str = "auto") -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def input_size(self) -> tuple[int, int]: ...
    def embed(
        self,
        images: Union[npt.NDArray[np.uint8], Sequence[_Path]],
        batch: int = 32,
        resize: bool = True,
        progress: Union[bool, Callable[[int, int], None]] = True,
    ) -> npt.NDArray[np.float32]:
        """Features (N, D), as the module's embed, without loading the model again."""

class Blocks:
    """A split in blocks of `rows` rows: len() blocks, each (X, y, paths)."""
    def __init__(self, file: Union[FeatureFile, _Path], split: str, rows: int = 65536, paths: bool = True) -> None: ...
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
    splits: Optional[Sequence[str]] = None,
    threads: Optional[int] = None,
    decode_threads: Optional[int] = None,
    store: str = "f32",
    device: str = "cpu",
    precision: str = "fp32",
    shard: Optional[str] = None,
    checkpoint_secs: float = 30.0,
    progress: Union[bool, Callable[[int, int], None]] = True,
) -> list[FeatureFile]:
    """Features of every split of `data` through each model, one file per model in `out`."""

def embed(
    model: _Path,
    images: Union[npt.NDArray[np.uint8], Sequence[_Path]],
    engine: str = "auto",
    batch: int = 32,
    resize: bool = True,
    progress: Union[bool, Callable[[int, int], None]] = True,
) -> npt.NDArray[np.float32]:
    """Features (N, D) of a uint8 (N, H, W, 3) batch or of image files, resized as extract
    resizes (resize=False: a batch already at the model's input size goes in as it is)."""

def train_head(
    features: Sequence[_Path],
    out: _Path,
    *,
    head: Optional[str] = None,
    solver: Optional[str] = None,
    hidden: Optional[int] = None,
    dropout: Optional[float] = None,
    l2: Optional[float] = None,
    optimizer: Optional[str] = None,
    lr: Optional[float] = None,
    decay: Optional[float] = None,
    momentum: Optional[float] = None,
    nesterov: bool = False,
    epochs: Optional[int] = None,
    batch: Optional[int] = None,
    seed: int = 0,
    standardize: bool = False,
    val_split: Optional[float] = None,
    patience: Optional[int] = None,
    class_weight: Union[str, Sequence[float], None] = None,
    c: Union[float, str, None] = None,
    refit: bool = False,
    tol: Optional[float] = None,
    max_iter: Optional[int] = None,
    memory_budget: Optional[int] = None,
    overwrite: bool = False,
    progress: Union[bool, Callable[[int, int], None]] = True,
) -> Run:
    """A head trained as `imgclf train-head` trains it, every flag a keyword; without `head`, the probe."""

def list_runs(dirs: Sequence[_Path]) -> list[dict[str, Any]]:
    """Every run folder under `dirs`, one dict each."""
