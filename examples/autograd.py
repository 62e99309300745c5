"""tracejit for PyTorch users: a walk through autograd.

Run: python examples/autograd.py

Three parts:
  1. eager autograd, as in PyTorch: `requires_grad=True` leaves, `backward()`, `.grad`,
     `grad_fn`, `detach`, `no_grad`, `retain_grad`, `tj.autograd.grad`, and the errors PyTorch
     raises when a graph is misused;
  2. the functional API (`tj.vjp`, `tj.jacobian`, `tj.hessian`, `tj.hvp`, `tj.vhp`, `tj.jvp`,
     mirroring `torch.autograd.functional`) and the function transforms `tj.grad` /
     `tj.value_and_grad`, which compose with `tj.compile` and `tj.vmap`. Derivatives are
     symbolic: `tj.make_graph` shows the graph that computes them;
  3. a training step (forward, `loss.backward()`, update under `no_grad`) compiled whole with
     `tj.compile`, which writes the new parameter values back after each call.
The output is deterministic.
"""

import tracejit as tj


def section(title: str) -> None:
    print(f"\n== {title} ==")


def first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0]}"


# -- 1. eager autograd --------------------------------------------------------------------------

def backward_and_grad():
    section("1a. backward() fills .grad of the leaves")
    x = tj.arange(4.0, requires_grad=True)  # a leaf: created by the user, requires grad
    print("x =", x)
    y = 2 * tj.dot(x, x)  # every op on x records how to differentiate itself
    print("y = 2 * tj.dot(x, x) =", y)
    print("y.grad_fn =", y.grad_fn, " tj.dot(x, x).grad_fn =", tj.dot(x, x).grad_fn)
    print("x.is_leaf =", x.is_leaf, " x.grad_fn =", x.grad_fn, " y.is_leaf =", y.is_leaf)
    y.backward()  # dy/dx = 4x
    print("after y.backward(): x.grad =", x.grad)

    # backward *accumulates* into .grad, as in PyTorch: zero it between steps
    y = 2 * tj.dot(x, x)
    y.backward()
    print("after a second forward and backward: x.grad =", x.grad)
    x.grad.zero_()
    print("after x.grad.zero_(): x.grad =", x.grad)

    # detach() cuts the graph: u is a constant to autograd, so d(u * x)/dx = u
    y = x * x
    u = y.detach()
    z = u * x
    z.sum().backward()
    print("u = (x * x).detach() =", u, " u.requires_grad =", u.requires_grad)
    print("z = u * x; z.sum().backward(): x.grad =", x.grad)
    print("x.grad equals u:", bool((x.grad == u).all()))
    x.grad = None  # the other way to reset a gradient


def no_grad_and_friends():
    section("1b. no_grad, non-scalar backward, retain_grad, higher derivatives")
    x = tj.arange(4.0, requires_grad=True)
    with tj.no_grad():  # nothing is recorded here: results are plain tensors
        w = x * 2
    print("under tj.no_grad(): (x * 2).requires_grad =", w.requires_grad,
          " grad_fn =", w.grad_fn)
    print("outside: (x * 2).requires_grad =", (x * 2).requires_grad)

    @tj.no_grad()  # also a decorator
    def doubled(t):
        return t * 2

    print("in a @tj.no_grad() function: requires_grad =", doubled(x).requires_grad)

    # backward() of a non-scalar needs the vector to multiply the Jacobian with
    y = x * x
    v = tj.tensor([1.0, 0.1, 0.01, 0.001])
    y.backward(gradient=v)  # x.grad = v * dy/dx = v * 2x
    print("(x * x).backward(gradient=v): x.grad =", x.grad)
    x.grad = None

    # non-leaves keep grad None unless they ask for it
    h = x * x
    h.retain_grad()
    (3 * h).sum().backward()
    print("h = x * x; h.retain_grad(); (3 * h).sum().backward(): h.grad =", h.grad)
    print("  and x.grad =", x.grad)

    # tj.autograd.grad returns the gradients instead of accumulating them; with
    # create_graph=True the result is itself differentiable
    t = tj.tensor(1.5, requires_grad=True)
    y = t ** 3
    (dy,) = tj.autograd.grad(y, t, create_graph=True)  # 3t^2
    (d2y,) = tj.autograd.grad(dy, t)  # 6t
    print("t = 1.5, y = t ** 3: dy/dt =", dy.detach(), " d2y/dt2 =", d2y)


def autograd_errors():
    section("1c. the errors PyTorch raises, raised here too")
    x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)

    # the graph's saved values are freed by backward() unless retain_graph=True
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()  # fine: the graph was kept the first time
    try:
        y.backward()
    except RuntimeError as e:
        print("second backward without retain_graph=True ->", first_line(e))

    try:
        (x * 2).backward()
    except RuntimeError as e:
        print("backward() on a non-scalar ->", first_line(e))

    try:
        x.add_(1)  # would change a leaf behind autograd's back
    except RuntimeError as e:
        print("in-place op on a leaf that requires grad ->", first_line(e))
    with tj.no_grad():
        x.add_(1)  # allowed: this is how an optimizer updates parameters
    print("under no_grad, x.add_(1) is fine: x =", x)

    # sigmoid saves its output for backward; changing it in place bumps its version counter
    s = x.sigmoid()
    s.mul_(2)
    try:
        s.sum().backward()
    except RuntimeError as e:
        print("modifying a value saved for backward ->", first_line(e))


# -- 2. the functional API ----------------------------------------------------------------------

def doubling(a):
    """The PyTorch autograd tutorial's example: Python control flow that depends on values."""
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    return b


def sin_times_first(x):
    return tj.sin(x) * x[0]  # Jacobian: diag(x[0] * cos(x)) plus sin(x) in the first column


def cubic(x):
    return (x ** 3).sum() + x[0] * x[1]  # Hessian: diag(6x) plus 1 at [0, 1] and [1, 0]


def functional_api():
    section("2a. torch.autograd.functional, here tj.vjp / jacobian / hessian / hvp / vhp / jvp")
    # the while loop's condition reads a value: the function is traced with the concrete
    # input, specialised to the path taken (here b is doubled until its norm reaches 1000)
    a = tj.tensor([0.5, -1.0, 2.0])
    v = tj.tensor([1.0, 0.1, 0.01])
    out, vjp = tj.vjp(doubling, a, v)
    print("a =", a, " v =", v)
    print("doubling(a) =", out)
    print("doubling(a) / a =", out / a, "(a factor 2**k)")
    print("vjp(doubling, a, v) =", vjp, "(= v * 2**k)")
    a2 = tj.tensor([5.0, -1.0, 2.0])  # a larger input takes fewer trips round the loop
    out2, vjp2 = tj.vjp(doubling, a2, v)
    print("a2 =", a2)
    print("doubling(a2) / a2 =", out2 / a2)
    print("vjp(doubling, a2, v) =", vjp2)

    x = tj.tensor([0.5, 1.0, 2.0])
    print("x =", x)
    print("jacobian(sin(x) * x[0]) =", tj.jacobian(sin_times_first, x))
    out, jv = tj.jvp(sin_times_first, x, tj.tensor([1.0, 0.0, -1.0]))
    print("jvp(sin(x) * x[0], x, [1, 0, -1]) =", jv, "(a column combination of the Jacobian)")
    print("hessian(sum(x ** 3) + x[0] * x[1]) =", tj.hessian(cubic, x))
    w = tj.tensor([1.0, 0.0, -1.0])
    value, hv = tj.hvp(cubic, x, w)  # (f(x), H @ w), as in torch.autograd.functional.hvp
    print("hvp(cubic, x, [1, 0, -1]) =", hv, " value =", value)
    _, vh = tj.vhp(cubic, x, w)  # w @ H: the same, H being symmetric
    print("vhp(cubic, x, [1, 0, -1]) =", vh)


def mse(w, x, y):
    return ((x @ w - y) ** 2).mean()


def transforms():
    section("2b. tj.grad / tj.value_and_grad with tj.compile and tj.vmap")
    w = tj.tensor([1.0, -1.0, 0.5])
    x = tj.arange(12.0).reshape(4, 3) / 10
    y = tj.tensor([1.0, 2.0, 3.0, 4.0])
    g = tj.grad(mse)(w, x, y)  # d mse / d w (argnums=0)
    print("grad(mse)(w, x, y) =", g)
    loss_and_grad = tj.compile(tj.value_and_grad(mse))  # one compiled graph for both
    value, g2 = loss_and_grad(w, x, y)
    print("compile(value_and_grad(mse))(w, x, y): value =", value, " grad =", g2)
    # per-example gradients: vmap the gradient of the loss of one example over the batch
    per_example = tj.compile(tj.vmap(tj.grad(mse), in_dims=(None, 0, 0)))(w, x, y)
    print("per-example gradients, compile(vmap(grad(mse), in_dims=(None, 0, 0))) =",
          per_example)
    print("their mean is the batch gradient:", float((per_example.mean(0) - g).abs().max()) < 1e-5)
    # grad of grad: derivatives of any order, each a graph that compiles like any other
    d2 = tj.compile(tj.grad(tj.grad(lambda t: t ** 3)))
    print("compile(grad(grad(t ** 3)))(2.0) =", d2(tj.tensor(2.0)))

    def f(x):
        return (tj.tanh(x) * x).sum()

    # the backward graph is a graph: print it (each line ends with the source line it came from)
    print("make_graph(grad(f))(x), f(x) = sum(tanh(x) * x):")
    print(tj.make_graph(tj.grad(f))(tj.ones(3)))


# -- 3. a compiled training step -----------------------------------------------------------------

X = tj.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 1.0, 0.0],
               [2.0, 0.0, -1.0], [0.0, 2.0, 1.0], [1.0, -1.0, 1.0]])
TRUE_W = tj.tensor([2.0, -1.0, 0.5])
Y = X @ TRUE_W
LR = 0.2
STEPS = 8


def make_step(w):
    """A PyTorch-style training step for the linear model x @ w."""

    def step(x, y):
        nonlocal w
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with tj.no_grad():
            w -= LR * w.grad  # in place: w stays the same leaf tensor
            w.grad = None
        return loss

    return step


def training():
    section("3. a training step, compiled whole")
    # parameters are captured by the step function (read and written back at each call);
    # the batch is passed as arguments
    w = tj.zeros(3, requires_grad=True)
    compiled_step = tj.compile(make_step(w))
    w_eager = tj.zeros(3, requires_grad=True)
    eager_step = make_step(w_eager)
    for i in range(STEPS):
        loss = compiled_step(X, Y)
        loss_eager = eager_step(X, Y)
        print(f"step {i}: loss = {float(loss):.4f}  (eager: {float(loss_eager):.4f})")
    print("after", STEPS, "compiled steps: w =", w, " w.grad =", w.grad)
    print("after", STEPS, "eager steps:    w =", w_eager)
    print("compiled and eager parameters agree:", float((w - w_eager).abs().max()) < 1e-6)
    print("the true weights:", TRUE_W)
    # traced and compiled once; the other calls reuse the compiled code
    print(compiled_step.cache_info())


def main():
    backward_and_grad()
    no_grad_and_friends()
    autograd_errors()
    functional_api()
    transforms()
    training()


if __name__ == "__main__":
    main()
