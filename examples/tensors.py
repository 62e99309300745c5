"""tracejit for PyTorch users: a walk through `tj.Tensor`.

Run: python examples/tensors.py

If you know `torch.Tensor`, you know `tj.Tensor`: the same creation functions, dtypes,
promotion rules, broadcasting, indexing, `dim=`/`keepdim=` reductions and in-place `_` methods.
The differences are in the last sections: a CPU tensor *is* a numpy buffer (zero-copy both
ways), and `tj.compile` traces a function into a typed graph you can print. The output is
deterministic (random numbers come from a seeded counter-based generator).
"""

import numpy as np

import tracejit as tj


def section(title: str) -> None:
    print(f"\n== {title} ==")


def creation():
    section("1. creating tensors")
    a = tj.tensor([[1, 2], [3, 4]])  # copies the data; Python ints give int64, as in torch
    print("tj.tensor([[1, 2], [3, 4]]) =", a, "dtype:", a.dtype)
    b = tj.tensor([1.5, 2.5])  # Python floats give float32 (the default float dtype)
    print("tj.tensor([1.5, 2.5]) dtype:", b.dtype)
    # shapes as varargs, a tuple or size=: all three are the same
    print("zeros(2, 3) =", tj.zeros(2, 3))
    print("ones((2,), dtype=tj.int32) =", tj.ones((2,), dtype=tj.int32))
    print("full((2, 2), 7.0) =", tj.full((2, 2), 7.0))
    print("arange(0, 10, 3) =", tj.arange(0, 10, 3))
    print("linspace(0, 1, 5) =", tj.linspace(0, 1, 5))
    print("eye(3) =", tj.eye(3))
    # random numbers: seed the global generator, or pass generator= to each call
    tj.manual_seed(0)
    r = tj.rand(2, 3)  # uniform on [0, 1)
    n = tj.randn(3)  # standard normal
    print("after tj.manual_seed(0): rand(2, 3) =", r)
    print("randn(3) =", n)
    tj.manual_seed(0)
    print("same seed, same numbers:", bool((tj.rand(2, 3) == r).all()))
    print("rand(2, 3).tolist() =", [[round(v, 4) for v in row] for row in r.tolist()])


def dtypes():
    section("2. dtypes and promotion")
    i = tj.arange(3)  # int64
    f = tj.ones(3)  # float32
    # Python scalars are "weak": they do not widen a tensor's dtype
    print("int64 * 2      ->", (i * 2).dtype)
    print("int64 * 2.5    ->", (i * 2.5).dtype, "(a float scalar makes the default float)")
    print("float32 * 2.0  ->", (f * 2.0).dtype, "(stays float32, no float64 creep)")
    print("int64 / 2      ->", (i / 2).dtype, "(true division), int64 // 2 ->", (i // 2).dtype)
    # two tensors promote by the lattice, as in torch ...
    print("float32 + float64 tensor ->", (f + tj.ones(3, dtype=tj.float64)).dtype)
    # ... except that a 0-d tensor does not widen a dimensioned one of the same kind
    print("float32[3] * float64[] ->", (f * tj.tensor(2.0, dtype=tj.float64)).dtype)
    print("promote_types(int32, float16) =", tj.promote_types(tj.int32, tj.float16))
    print("conversions:", i.float().dtype, i.double().dtype, f.long().dtype,
          i.to(tj.float64).dtype, f.bool().dtype)


def broadcasting():
    section("3. broadcasting")
    col = tj.arange(3).reshape(3, 1)  # shape (3, 1)
    row = tj.arange(4)  # shape (4,) acts as (1, 4)
    table = col * 10 + row  # -> (3, 4)
    print("arange(3).reshape(3, 1) * 10 + arange(4) =", table)
    try:
        tj.ones(3) + tj.ones(4)
    except ValueError as e:  # the message says which shapes, as torch's does
        print("ones(3) + ones(4) raises ValueError:", str(e).splitlines()[0])


def indexing():
    section("4. indexing")
    x = tj.arange(12).reshape(3, 4)
    print("x =", x)
    print("x[1] =", x[1], " x[:, 1] =", x[:, 1], " x[-1, -1] =", x[-1, -1])
    print("x[1:, ::2] =", x[1:, ::2])
    print("x[..., None].shape =", x[..., None].shape)
    mask = x % 3 == 0
    print("x[x % 3 == 0] =", x[mask], "(boolean mask: a 1-d result)")
    print("x[[0, 2]] =", x[[0, 2]], "(fancy indexing picks rows)")
    print("x[[0, 2], [1, 3]] =", x[[0, 2], [1, 3]], "(pairs of indices)")
    # basic indexing gives a view: writing through it changes x, as in torch
    first = x[0]
    first.mul_(-1)
    print("after x[0].mul_(-1): x[0] =", x[0])
    # assignment: by index tensor, by mask, by slice
    y = tj.zeros(6)
    y[tj.tensor([1, 4])] = 5.0
    y[y == 0] = -1.0
    y[2:4] = tj.tensor([7.0, 8.0])
    print("y after three assignments =", y)
    print("y.tolist() =", y.tolist())


def shapes():
    section("5. reshaping and joining")
    x = tj.arange(6).reshape(2, 3)
    print("x.reshape(3, -1).shape =", x.reshape(3, -1).shape, " x.view(6) =", x.view(6))
    print("x.T =", x.T)
    print("x.transpose(0, 1).shape =", x.transpose(0, 1).shape,
          " x[None].permute(2, 0, 1).shape =", x[None].permute(2, 0, 1).shape)
    print("x.unsqueeze(0).shape =", x.unsqueeze(0).shape, " x.flatten() =", x.flatten())
    print("cat([x, x], dim=0).shape =", tj.cat([x, x], dim=0).shape,
          " cat([x, x], dim=1).shape =", tj.cat([x, x], dim=1).shape)
    print("stack([x, x]).shape =", tj.stack([x, x]).shape,
          " stack([x, x], dim=-1).shape =", tj.stack([x, x], dim=-1).shape)
    print("x.split(2, dim=1) shapes =", [tuple(p.shape) for p in x.split(2, dim=1)])


def reductions():
    section("6. reductions")
    x = tj.arange(12, dtype=tj.float32).reshape(3, 4)
    print("x.sum() =", x.sum())
    print("x.sum(dim=1).tolist() =", x.sum(dim=1).tolist())
    print("x.mean(dim=0, keepdim=True) =", x.mean(dim=0, keepdim=True))
    values, indices = x.max(dim=1)  # a (values, indices) pair, as in torch
    print("x.max(dim=1): values =", values, "indices =", indices)
    print("x.argmax() =", x.argmax(), " x.std(dim=1) =", x.std(dim=1))
    # numpy spellings work too
    print("x.sum(axis=0, keepdims=True).tolist() =", x.sum(axis=0, keepdims=True).tolist())


def matmul():
    section("7. matrix products")
    a = tj.arange(6, dtype=tj.float32).reshape(2, 3)
    b = tj.arange(12, dtype=tj.float32).reshape(3, 4)
    print("a @ b =", a @ b)
    print("(a @ b).tolist() =", (a @ b).tolist())
    print("batched: (5, 2, 3) @ (3, 4) ->", (tj.ones(5, 2, 3) @ b).shape,
          " matrix @ vector ->", (a @ tj.ones(3)).shape)


def inplace():
    section("8. in-place ops")
    v = tj.ones(3)
    v.add_(1)  # trailing underscore: modifies v, returns v
    v.mul_(3)
    v += 1
    print("ones(3).add_(1).mul_(3), then += 1 ->", v)
    v.clamp_(max=5.0)
    print("v.clamp_(max=5.0) ->", v)
    i = tj.arange(3)
    try:
        i += 1.5  # the result would be float: it cannot be stored in an int64 tensor
    except RuntimeError as e:
        print("int64 += 1.5 raises:", str(e).splitlines()[0])


def numpy_interop():
    section("9. numpy interop")
    arr = np.zeros(3, dtype=np.float32)
    t = tj.from_numpy(arr)  # shares memory with arr
    arr[0] = 5.0
    print("after arr[0] = 5: t =", t)
    t.add_(1)
    print("after t.add_(1): arr =", arr)
    print("np.asarray(t) is the same buffer:", np.shares_memory(np.asarray(t), arr))
    c = tj.tensor(arr)  # tj.tensor copies
    arr[1] = 100.0
    print("after arr[1] = 100: t =", t, "but the copy c =", c)
    # numpy functions accept tensors (they go through np.asarray)
    print("np.linalg.norm(c) =", round(float(np.linalg.norm(c)), 4))


def compiling():
    section("10. tj.compile")

    @tj.compile
    def scaled_tanh_sum(x):
        return tj.tanh(x * 2.0).sum(dim=-1)

    x = tj.linspace(-1, 1, 6).reshape(2, 3)
    print("scaled_tanh_sum(x) =", scaled_tanh_sum(x))
    # the function is traced once per input signature into a typed graph, then compiled
    print(scaled_tanh_sum.lower(x).as_text("graph"))
    scaled_tanh_sum(x * 3)  # same shape and dtype: reuses the compiled code
    scaled_tanh_sum(tj.ones(4, 3))  # a new shape: traced and compiled again
    print(scaled_tanh_sum.cache_info())


def main():
    creation()
    dtypes()
    broadcasting()
    indexing()
    shapes()
    reductions()
    matmul()
    inplace()
    numpy_interop()
    compiling()


if __name__ == "__main__":
    main()
