"""tracejit quickstart: trace a function, look at its graph, compile it and run it.

Run: python examples/quickstart.py
"""

import numpy as np

import tracejit as tj


def mlp_layer(x, w, b):
    """One dense layer with a tanh, then a softmax over the features."""
    h = tj.tanh(x @ w + b)
    return tj.softmax(h, dim=-1)


def main():
    rng = np.random.default_rng(0)
    x = tj.tensor(rng.standard_normal((4, 3)), dtype=tj.float32)
    w = tj.tensor(rng.standard_normal((3, 5)), dtype=tj.float32)
    b = tj.zeros(5)

    # 1. Trace: the function becomes a typed graph; every node knows its source line.
    graph = tj.make_graph(mlp_layer)(x, w, b)
    print("== traced graph ==")
    print(graph)

    # 2. Compile: traced once per signature, cached, then run.
    f = tj.compile(mlp_layer)
    y = f(x, w, b)
    y = f(x * 2, w, b)  # same shapes and dtypes: a cache hit, no retrace
    print("\n== result ==")
    print(y)
    print("rows sum to one:", np.allclose(y.numpy().sum(axis=1), 1.0, atol=1e-6))
    print(f.cache_info())

    # 3. Structured control flow compiles to one loop node, not an unrolled chain.
    @tj.compile
    def doubling(v):
        return tj.while_loop(lambda u: u.norm() < 1000, lambda u: u * 2, v)

    print("\n== while_loop ==")
    print(doubling(tj.tensor([1.0, 2.0, 3.0])))


if __name__ == "__main__":
    main()
