"""Real networks beside the theory: offline data, MLPs trained in the UFM's convention,
recorded into resumable stores, and compared with the models' predictions.

- `dataset`: scikit-learn's digits or a Gaussian mixture, split and (im)balanced with a seed.
- `Training`: every setting of one run; `train`: a grid of runs into a zarr store.
- `open_training` and the readers in `read`: a store back as xarray, one layer's features.
"""

from . import read as read
from .data import Dataset as Dataset
from .data import dataset as dataset
from .grid import train as train
from .store import open_training as open_training
from .training import Training as Training
from .training import network as network

__all__ = ["Dataset", "Training", "dataset", "network", "open_training", "read", "train"]
