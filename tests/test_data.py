"""tj.utils.data: datasets, samplers, collation and the DataLoader, with PyTorch's semantics
(compared with torch.utils.data where torch is installed)."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np
import pytest

import tracejit as tj
from tracejit.utils.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)

Point = collections.namedtuple("Point", "x y")


def _ds(n=10):
    return TensorDataset(tj.arange(float(n)).reshape(n, 1) * 10, tj.arange(n))


def _labels(loader):
    """The label column of every batch of one epoch, as lists of ints."""
    return [y.tolist() for _, y in loader]


def _gen(seed):
    return tj.Generator().manual_seed(seed)


# -- batching ---------------------------------------------------------------------------------

def test_tj_utils_data_is_exported():
    assert tj.utils.data.DataLoader is DataLoader
    assert tj.utils.data.TensorDataset is TensorDataset


@pytest.mark.parametrize("drop_last, sizes", [(False, [3, 3, 3, 1]), (True, [3, 3, 3])])
def test_batch_sizes_and_last_batch(drop_last, sizes):
    loader = DataLoader(_ds(10), batch_size=3, drop_last=drop_last)
    assert len(loader) == len(sizes)
    batches = list(loader)
    assert [len(y) for _, y in batches] == sizes
    for x, y in batches:
        assert x.shape == (len(y), 1) and x.dtype == tj.float32 and y.dtype == tj.int64
        np.testing.assert_array_equal(x.numpy()[:, 0], 10.0 * y.numpy())
    flat = [v for _, y in batches for v in y.tolist()]
    assert flat == list(range(sum(sizes)))


def test_batch_size_larger_than_dataset_and_exact_multiple():
    assert _labels(DataLoader(_ds(4), batch_size=10)) == [[0, 1, 2, 3]]
    assert _labels(DataLoader(_ds(4), batch_size=10, drop_last=True)) == []
    assert len(DataLoader(_ds(4), batch_size=10, drop_last=True)) == 0
    assert _labels(DataLoader(_ds(4), batch_size=2, drop_last=True)) == [[0, 1], [2, 3]]


def test_default_batch_size_is_one():
    batches = list(DataLoader(_ds(3)))
    assert [y.tolist() for _, y in batches] == [[0], [1], [2]]
    assert batches[0][0].shape == (1, 1)


def test_batch_size_none_disables_batching():
    loader = DataLoader(_ds(3), batch_size=None)
    assert len(loader) == 3
    samples = list(loader)
    assert [tuple(x.shape) for x, _ in samples] == [(1,)] * 3
    assert [y.item() for _, y in samples] == [0, 1, 2]
    # the samples go through default_convert: numpy arrays become Tensors, numbers stay
    loader = DataLoader([(np.ones(2, np.float32), 1)], batch_size=None)
    ((x, y),) = list(loader)
    assert isinstance(x, tj.Tensor) and x.dtype == tj.float32 and y == 1


def test_custom_collate_fn_sees_the_list_of_samples():
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return sum(int(y) for _, y in samples)

    assert list(DataLoader(_ds(5), batch_size=2, collate_fn=collate)) == [1, 5, 4]
    assert seen == [2, 2, 1]


def test_plain_list_and_custom_dataset():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"i": i, "sq": float(i * i)}

    (b1, b2) = list(DataLoader(Squares(), batch_size=3))
    assert b1["i"].tolist() == [0, 1, 2] and b1["sq"].dtype == tj.float64
    assert b2["sq"].tolist() == [9.0, 16.0]
    assert [b.tolist() for b in DataLoader([1, 2, 3], batch_size=2)] == [[1, 2], [3]]


def test_getitems_is_used_for_batched_fetches():
    class Batched(Dataset):
        calls = []

        def __len__(self):
            return 6

        def __getitem__(self, i):
            raise AssertionError("__getitems__ should be used")

        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return [i * 2 for i in indices]

    ds = Batched()
    assert [b.tolist() for b in DataLoader(ds, batch_size=4)] == [[0, 2, 4, 6], [8, 10]]
    assert ds.calls == [[0, 1, 2, 3], [4, 5]]
    # Subset forwards it with its own indices
    assert [b.tolist() for b in DataLoader(Subset(ds, [5, 0]), batch_size=2)] == [[10, 0]]


def test_samples_stay_differentiable():
    """A dataset tensor that requires grad is indexed and stacked with tracejit ops, so the
    batch is part of the autograd graph (the numpy fast path is only for plain tensors)."""
    w = tj.ones(4, 2, requires_grad=True)
    (x,) = next(iter(DataLoader(TensorDataset(w), batch_size=3)))
    assert x.requires_grad
    (x * tj.tensor([1.0, 2.0])).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[1, 2], [1, 2], [1, 2], [0, 0]])


def test_lazy_dataset_tensors():
    x = tj.arange(6.0) * 2  # a pending (lazy) result
    assert [b[0].tolist() for b in DataLoader(TensorDataset(x), batch_size=4)] == [
        [0.0, 2.0, 4.0, 6.0], [8.0, 10.0]]


# -- shuffling --------------------------------------------------------------------------------

def test_shuffle_reproducible_with_a_generator():
    def epochs(seed, n=3):
        loader = DataLoader(_ds(20), batch_size=6, shuffle=True, generator=_gen(seed))
        return [sum(_labels(loader), []) for _ in range(n)]

    a, b = epochs(0), epochs(0)
    assert a == b
    for order in a:
        assert sorted(order) == list(range(20))  # every index exactly once per epoch
    assert a[0] != list(range(20))
    assert len({tuple(o) for o in a}) == 3  # a new order every epoch
    assert epochs(1)[0] != a[0]


def test_shuffle_with_the_global_generator_follows_manual_seed():
    loader = DataLoader(_ds(20), batch_size=5, shuffle=True)
    tj.manual_seed(123)
    first = [sum(_labels(loader), []) for _ in range(2)]
    tj.manual_seed(123)
    again = [sum(_labels(loader), []) for _ in range(2)]
    assert first == again and first[0] != first[1]
    assert sorted(first[0]) == list(range(20))


def test_shuffled_batches_hold_matching_pairs():
    for x, y in DataLoader(_ds(17), batch_size=4, shuffle=True, generator=_gen(3)):
        np.testing.assert_array_equal(x.numpy()[:, 0], 10.0 * y.numpy())


def test_generator_must_be_a_tracejit_generator():
    with pytest.raises(TypeError, match="tj.Generator"):
        DataLoader(_ds(), shuffle=True, generator=np.random.default_rng(0))


# -- samplers ---------------------------------------------------------------------------------

def test_sequential_and_random_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    s = RandomSampler(range(8), generator=_gen(0))
    a, b = list(s), list(s)
    assert sorted(a) == sorted(b) == list(range(8)) and a != b and len(s) == 8
    assert list(RandomSampler(range(8), generator=_gen(0))) == a


def test_random_sampler_num_samples_and_replacement():
    s = RandomSampler(range(4), num_samples=10, generator=_gen(0))
    drawn = list(s)
    assert len(drawn) == len(s) == 10
    assert sorted(drawn[:4]) == sorted(drawn[4:8]) == [0, 1, 2, 3]  # whole permutations first
    r = list(RandomSampler(range(3), replacement=True, num_samples=300, generator=_gen(1)))
    assert len(r) == 300 and set(r) == {0, 1, 2}
    assert all(abs(r.count(k) - 100) < 40 for k in range(3))
    with pytest.raises(ValueError, match="num_samples should be a positive integer value, "
                       "but got num_samples=0"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="replacement should be a boolean value"):
        RandomSampler(range(3), replacement=1)


def test_subset_random_and_weighted_samplers():
    s = SubsetRandomSampler([10, 20, 30, 40], generator=_gen(2))
    a = list(s)
    assert sorted(a) == [10, 20, 30, 40] and len(s) == 4
    w = list(WeightedRandomSampler([0.0, 1.0, 3.0], 400, generator=_gen(0)))
    assert set(w) == {1, 2} and 250 < w.count(2) < 350
    no_rep = list(WeightedRandomSampler([1.0, 0.0, 5.0, 1.0], 3, replacement=False,
                                        generator=_gen(0)))
    assert sorted(no_rep) == [0, 2, 3]
    with pytest.raises(RuntimeError, match="without replacement"):
        WeightedRandomSampler([1.0, 0.0], 2, replacement=False)
    with pytest.raises(ValueError, match="1d sequence"):
        WeightedRandomSampler([[1.0, 2.0]], 2)


def test_batch_sampler():
    assert list(BatchSampler(range(5), 2, False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(range(5), 2, True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, False)) == 3 and len(BatchSampler(range(5), 2, True)) == 2
    with pytest.raises(ValueError, match="batch_size should be a positive integer value, but "
                       "got batch_size=0"):
        BatchSampler(range(5), 0, False)
    with pytest.raises(ValueError, match="drop_last should be a boolean value"):
        BatchSampler(range(5), 2, None)


def test_loader_with_sampler_and_batch_sampler():
    loader = DataLoader(_ds(6), batch_size=2, sampler=[5, 4, 3, 2, 1, 0])
    assert _labels(loader) == [[5, 4], [3, 2], [1, 0]]
    loader = DataLoader(_ds(6), batch_sampler=[[0, 5], [1], [2, 3, 4]])
    assert _labels(loader) == [[0, 5], [1], [2, 3, 4]] and len(loader) == 3
    loader = DataLoader(_ds(6), sampler=SubsetRandomSampler([1, 3], generator=_gen(0)))
    assert sorted(sum(_labels(loader), [])) == [1, 3]


# -- collation --------------------------------------------------------------------------------

def test_collate_numbers_follow_pytorch_dtypes():
    assert default_collate([1.5, 2.0]).dtype == tj.float64
    assert default_collate([1, 2]).dtype == tj.int64
    assert default_collate([True, False]).dtype == tj.bool
    assert default_collate([np.float32(1), np.float32(2)]).dtype == tj.float32
    assert default_collate([np.int32(1), np.int32(2)]).dtype == tj.int32
    assert default_collate([np.array([1, 2], np.int16)] * 3).dtype == tj.int16
    out = default_collate([np.zeros((2, 3), np.float32)] * 4)
    assert out.shape == (4, 2, 3) and out.dtype == tj.float32
    assert default_collate(["a", "b"]) == ["a", "b"]


def test_collate_nested_structures():
    batch = [
        (tj.tensor([1.0, 2.0]), {"label": 0, "name": "a", "p": Point(1.0, np.int64(2))}, [1, 2]),
        (tj.tensor([3.0, 4.0]), {"label": 1, "name": "b", "p": Point(3.0, np.int64(4))}, [3, 4]),
    ]
    x, meta, pair = default_collate(batch)
    assert isinstance(x, tj.Tensor) and x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert meta["label"].tolist() == [0, 1] and meta["name"] == ["a", "b"]
    assert isinstance(meta["p"], Point)
    assert meta["p"].x.dtype == tj.float64 and meta["p"].y.dtype == tj.int64
    assert meta["p"].x.tolist() == [1.0, 3.0] and meta["p"].y.tolist() == [2, 4]
    # a list sample is transposed column-wise: [tensor([1, 3]), tensor([2, 4])]
    assert [c.tolist() for c in pair] == [[1, 3], [2, 4]]
    # tuples come back as lists, as in PyTorch
    assert isinstance(default_collate([(1, 2.0), (3, 4.0)]), list)


def test_collate_errors():
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal "
                       "size"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got "
                       r"\[3\] at entry 0 and \[4\] at entry 1"):
        default_collate([tj.zeros(3), tj.zeros(4)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([np.zeros(3), np.zeros(4)])
    with pytest.raises(TypeError, match="default_collate: batch must contain tensors, numpy "
                       "arrays, numbers, dicts or lists; found"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_default_convert():
    out = default_convert((np.zeros(2, np.float32), 1, np.float32(3), "s"))
    assert isinstance(out, list)
    assert out[0].dtype == tj.float32 and out[1] == 1 and out[2].dtype == tj.float32
    assert out[3] == "s"
    a = np.zeros(3)
    t = default_convert(a)
    a[0] = 5.0  # shares memory, like torch.as_tensor
    assert t[0].item() == 5.0


# -- datasets ---------------------------------------------------------------------------------

def test_tensor_dataset():
    ds = _ds(4)
    assert len(ds) == 4
    x, y = ds[2]
    assert x.tolist() == [20.0] and y.item() == 2 and y.dtype == tj.int64
    assert ds[-1][1].item() == 3
    with pytest.raises(IndexError):
        ds[4]


def test_tensor_dataset_errors():
    with pytest.raises(ValueError, match=r"Size mismatch between tensors.*\[3, 4\]"):
        TensorDataset(tj.zeros(3, 2), tj.zeros(4))
    with pytest.raises(TypeError, match="argument 1 is a ndarray, expected a Tensor"):
        TensorDataset(tj.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="0-dimensional"):
        TensorDataset(tj.tensor(1.0))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()


def test_concat_subset_and_add():
    a, b = _ds(3), TensorDataset(tj.zeros(2, 1), tj.tensor([7, 8]))
    c = a + b
    assert isinstance(c, ConcatDataset) and len(c) == 5 and c.cumulative_sizes == [3, 5]
    assert [c[i][1].item() for i in range(5)] == [0, 1, 2, 7, 8]
    assert c[-1][1].item() == 8
    with pytest.raises(IndexError):
        c[5]
    with pytest.raises(ValueError, match="should not exceed dataset length"):
        c[-6]
    with pytest.raises(ValueError, match="empty iterable"):
        ConcatDataset([])
    assert _labels(DataLoader(c, batch_size=4)) == [[0, 1, 2, 7], [8]]
    s = Subset(c, [4, 0])
    assert len(s) == 2 and s[0][1].item() == 8
    assert _labels(DataLoader(s, batch_size=2)) == [[8, 0]]


def test_random_split_lengths_and_fractions():
    parts = random_split(range(10), [3, 7], generator=_gen(0))
    assert [len(p) for p in parts] == [3, 7]
    assert sorted(list(parts[0]) + list(parts[1])) == list(range(10))
    again = random_split(range(10), [3, 7], generator=_gen(0))
    assert [list(p) for p in parts] == [list(p) for p in again]
    assert [len(p) for p in random_split(range(10), [0.33, 0.33, 0.34], generator=_gen(0))] == [
        4, 3, 3]  # PyTorch's rule: floors, then the remainder one by one from the first
    assert [len(p) for p in random_split(range(7), [0.5, 0.5])] == [4, 3]
    tj.manual_seed(5)
    a = [list(p) for p in random_split(range(8), [0.5, 0.5])]
    tj.manual_seed(5)
    assert a == [list(p) for p in random_split(range(8), [0.5, 0.5])]
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the "
                       "input dataset"):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
        random_split(range(10), [-0.5, 1.5])
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(2), [0.9, 0.1])


# -- iterable datasets ------------------------------------------------------------------------

class Stream(IterableDataset):
    """0 .. n-1; in worker threads, each worker takes every num_workers-th value."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))

    def __len__(self):
        return self.n


def test_iterable_dataset_batches():
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5],
                                                                        [6]]
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3, drop_last=True)] == [
        [0, 1, 2], [3, 4, 5]]
    assert len(DataLoader(Stream(7), batch_size=3)) == 3
    assert len(DataLoader(Stream(7), batch_size=3, drop_last=True)) == 2
    assert list(DataLoader(Stream(3), batch_size=None)) == [0, 1, 2]
    assert list(ChainDataset([Stream(2), Stream(1)])) == [0, 1, 0]
    assert [b.tolist() for b in DataLoader(Stream(2) + Stream(2), batch_size=4)] == [[0, 1, 0, 1]]


def test_iterable_dataset_errors():
    for kw, name in ((dict(shuffle=True), "shuffle"), (dict(sampler=[0]), "sampler"),
                     (dict(batch_sampler=[[0]]), "batch_sampler")):
        with pytest.raises(ValueError, match=f"DataLoader with IterableDataset: expected "
                           f"unspecified {name} option"):
            DataLoader(Stream(3), **kw)

    class NoLen(IterableDataset):
        def __iter__(self):
            return iter([1])

    with pytest.raises(TypeError):
        len(DataLoader(NoLen()))
    with pytest.raises(TypeError, match="no __getitem__"):
        NoLen()[0]


# -- worker threads ---------------------------------------------------------------------------

class Slow(Dataset):
    """Samples that take a random while, so worker threads finish out of order."""

    def __init__(self, n):
        self.n, self.threads = n, set()
        self.rng = np.random.default_rng(0)
        self.delays = self.rng.uniform(0, 0.004, n)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delays[i])
        return np.full(2, i, np.float32), i


@pytest.mark.parametrize("num_workers", [1, 3])
def test_workers_give_the_same_batches_in_order(num_workers):
    def run(workers):
        ds = Slow(23)
        loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers,
                            generator=_gen(7))
        return [sum(_labels(loader), []) for _ in range(2)], ds.threads

    (serial, main_only), (threaded, names) = run(0), run(num_workers)
    assert serial == threaded  # same order: the shuffle does not depend on num_workers
    assert main_only == {threading.current_thread().name}
    assert names and all(n.startswith("tj-DataLoader-worker-") for n in names)


def test_workers_with_an_iterable_dataset_use_worker_info():
    loader = DataLoader(Stream(10), batch_size=2, num_workers=2)
    batches = [b.tolist() for b in loader]
    # worker 0 yields 0,2,4,6,8 and worker 1 yields 1,3,5,7,9; batches alternate between them
    assert batches == [[0, 2], [1, 3], [4, 6], [5, 7], [8], [9]]
    assert sorted(sum(batches, [])) == list(range(10))


def test_worker_init_fn_and_worker_info():
    seen = []
    lock = threading.Lock()

    def init(wid):
        info = get_worker_info()
        with lock:
            seen.append((wid, info.id, info.num_workers, info.seed - wid))

    ds = _ds(8)
    loader = DataLoader(ds, batch_size=2, num_workers=2, worker_init_fn=init)
    assert _labels(loader) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert sorted(s[:3] for s in seen) == [(0, 0, 2), (1, 1, 2)]
    assert seen[0][3] == seen[1][3]  # seeds are base_seed + worker id
    assert get_worker_info() is None


def test_workers_compute_lazy_batches_in_the_background():
    class Computed(Dataset[tj.Tensor]):  # subscriptable like torch's Dataset[T_co]
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return tj.arange(3.0) * i  # a lazy (pending) tracejit result

    batches = list(DataLoader(Computed(), batch_size=2, num_workers=2))
    assert all(b._lazy is None for b in batches)  # realized in the worker thread
    assert [b.tolist() for b in batches] == [[[0.0, 0.0, 0.0], [0.0, 1.0, 2.0]],
                                             [[0.0, 2.0, 4.0], [0.0, 3.0, 6.0]],
                                             [[0.0, 4.0, 8.0]]]


def test_worker_errors_reach_the_main_thread():
    class Bad(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            if i == 3:
                raise KeyError("sample 3 is broken")
            return i

    with pytest.raises(KeyError, match="sample 3 is broken") as info:
        list(DataLoader(Bad(), batch_size=2, num_workers=2))
    assert "DataLoader worker thread" in "".join(getattr(info.value, "__notes__", []))


def test_workers_out_of_order_timeout_and_early_exit():
    ds = Slow(20)
    got = sum(_labels(DataLoader(ds, batch_size=2, num_workers=3, in_order=False)), [])
    assert sorted(got) == list(range(20))

    class Stuck(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            time.sleep(0.5)
            return i

    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.05 seconds"):
        list(DataLoader(Stuck(), num_workers=1, timeout=0.05))
    before = threading.active_count()
    for _ in range(3):
        for _ in DataLoader(_ds(50), batch_size=1, num_workers=2):
            break  # the iterator is dropped: its threads must stop
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before


# -- argument errors --------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(shuffle=True, sampler=[0, 1]), "sampler option is mutually exclusive with shuffle"),
    (dict(batch_sampler=[[0]], batch_size=2), "batch_sampler option is mutually exclusive with "
     "batch_size, shuffle, sampler, and drop_last"),
    (dict(batch_sampler=[[0]], drop_last=True), "mutually exclusive with batch_size"),
    (dict(batch_size=None, drop_last=True), "batch_size=None option disables auto-batching and "
     "is mutually exclusive with drop_last"),
    (dict(num_workers=-1), "num_workers option should be non-negative"),
    (dict(timeout=-1), "timeout option should be non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor option could only be specified in "
     "multiprocessing"),
    (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
    (dict(batch_size=0), "batch_size should be a positive integer value, but got batch_size=0"),
    (dict(batch_size=2.5), "batch_size should be a positive integer value"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(_ds(4), **kwargs)


def test_frozen_attributes():
    loader = DataLoader(_ds(4), batch_size=2)
    with pytest.raises(ValueError, match="batch_size attribute should not be set after "
                       "DataLoader is initialized"):
        loader.batch_size = 3
    loader.num_workers = 1  # not frozen, as in PyTorch
    assert _labels(loader) == [[0, 1], [2, 3]]


# -- against PyTorch --------------------------------------------------------------------------

def _torch_dataset(torch):
    class Mixed(torch.utils.data.Dataset):
        def __len__(self):
            return 11

        def __getitem__(self, i):
            return (np.arange(3, dtype=np.float32) + i, float(i) / 2, i,
                    {"flag": i % 2 == 0, "n": np.int16(i), "p": Point(i, np.float64(i))})

    return Mixed()


def _as_numpy(tree):
    if hasattr(tree, "numpy"):
        return ("tensor", str(tree.dtype).split(".")[-1].replace("bool_", "bool"),
                tree.numpy().tolist())
    if isinstance(tree, dict):
        return {k: _as_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return (type(tree).__name__, [_as_numpy(v) for v in tree])
    return tree


@pytest.mark.parametrize("batch_size, drop_last", [(4, False), (4, True), (1, False),
                                                   (None, False)])
def test_sequential_loader_matches_torch(batch_size, drop_last):
    torch = pytest.importorskip("torch")
    ds = _torch_dataset(torch)
    ours = DataLoader(ds, batch_size=batch_size, drop_last=drop_last)
    theirs = torch.utils.data.DataLoader(ds, batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    got, want = [_as_numpy(b) for b in ours], [_as_numpy(b) for b in theirs]
    assert got == want


def test_collate_dtypes_match_torch():
    torch = pytest.importorskip("torch")
    cases = [[1.5, 2.5], [1, 2], [True, False], [np.float32(1), np.float32(2)],
             [np.int8(1), np.int8(2)], [np.uint8(1), np.uint8(2)], [np.float64(1)],
             [np.bool_(True)], [np.zeros(2, np.float16)] * 2, [np.array(2.5)] * 2,
             [np.zeros((2, 2), np.int32)] * 3]
    for batch in cases:
        ours = default_collate(batch)
        theirs = torch.utils.data.default_collate(batch)
        assert str(ours.dtype).split(".")[-1] == str(theirs.dtype).split(".")[-1], batch
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# -- documentation ----------------------------------------------------------------------------

def test_documented_example_runs():
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "tensor.md").read_text()
    section = text[text.index("## Data loading"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "docs/tensor.md#data-loading", "exec"), {})


@pytest.mark.parametrize("module", ["collate", "dataloader", "dataset", "sampler", "worker"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"tracejit.utils.data.{module}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
