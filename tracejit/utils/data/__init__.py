"""``tj.utils.data``: PyTorch's data-loading API — datasets, samplers, collation and the
``DataLoader`` — so that tutorial training loops port by changing the import.

    from tracejit.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
                        generator=tj.Generator().manual_seed(0))
    for xb, yb in loader:
        ...

Files, in the order data flows: `dataset.py` (what the samples are), `sampler.py` (which
indices, in which batches), `collate.py` (samples -> a batch), `worker.py` (background threads
for ``num_workers > 0``), `dataloader.py` (the loop that ties them together).
"""

from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from .worker import WorkerInfo, get_worker_info

__all__ = ["BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset",
           "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Subset",
           "SubsetRandomSampler", "TensorDataset", "WeightedRandomSampler", "WorkerInfo",
           "default_collate", "default_convert", "get_worker_info", "random_split"]
