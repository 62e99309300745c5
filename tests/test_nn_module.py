"""`tj.nn.Module`, `Parameter`, the layers, containers, losses and `tj.nn.init`: registration,
state dicts, modes, dtype moves, gradients, ``repr`` (PyTorch's text), default initialization
statistics and error messages. Layer outputs are checked against the numpy references of
test_nn.py."""

import copy
import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from test_nn import (  # noqa: F401  (_reseed: the autouse fixture applies here too)
    RNG,
    T,
    _reseed,
    close,
    rand,
    ref_avg_pool2d,
    ref_conv2d,
    ref_max_pool2d,
)

import tracejit as tj
import tracejit.nn as nn
import tracejit.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 2 * 2, 3)
        self.register_buffer("scale", tj.ones(3))
        self.register_buffer("tmp", tj.zeros(1), persistent=False)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc(x.flatten(1)) * self.scale


# -- Parameter ----------------------------------------------------------------------------------

def test_parameter_is_a_tensor_sharing_data():
    t = tj.zeros(2)
    p = nn.Parameter(t)
    assert isinstance(p, tj.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf and p.grad is None
    with tj.no_grad():
        p.fill_(3.0)
    assert t.tolist() == [3.0, 3.0]  # shares data with the tensor it wraps
    assert type(p * 2) is tj.Tensor
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert nn.Parameter().shape == (0,)
    assert repr(p) == "Parameter containing:\ntensor([3., 3.], requires_grad=True)"
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(tj.tensor([1, 2]))


def test_parameter_copies():
    p = nn.Parameter(tj.tensor([1.0, 2.0]))
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert type(q) is nn.Parameter and q.requires_grad and q is not p
        assert q.tolist() == [1.0, 2.0]
        with tj.no_grad():
            q.fill_(0.0)
        assert p.tolist() == [1.0, 2.0]


# -- registration and traversal -----------------------------------------------------------------

def test_registration_and_traversal():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["conv.weight", "conv.bias", "fc.weight",
                                                     "fc.bias"]
    assert len(list(net.parameters())) == 4
    assert len(list(net.parameters(recurse=False))) == 0
    assert [n for n, _ in net.named_buffers()] == ["scale", "tmp"]
    assert [n for n, _ in net.named_children()] == ["conv", "fc"]
    assert [n for n, _ in net.named_modules()] == ["", "conv", "fc"]
    assert list(net.modules())[1] is net.conv
    assert net.get_submodule("fc") is net.fc and net.get_parameter("fc.bias") is net.fc.bias
    assert net.get_buffer("scale") is net.scale
    assert "fc" in dir(net) and "scale" in dir(net)
    assert net(tj.randn(2, 1, 4, 4)).shape == (2, 3)


def test_shared_parameters_count_once_and_none_is_skipped():
    lin = nn.Linear(2, 2, bias=False)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    assert [n for n, _ in seq.named_parameters()] == ["0.weight"]
    assert len(list(seq.named_parameters(remove_duplicate=False))) == 2
    assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]
    assert list(lin.state_dict()) == ["weight"]


def test_setattr_moves_between_registries_and_delattr():
    m = nn.Module()
    m.a = nn.Parameter(tj.zeros(1))
    m.b = nn.Linear(1, 1)
    m.c = nn.Buffer(tj.ones(1))
    m.plain = 3
    assert list(m._parameters) == ["a"] and list(m._modules) == ["b"]
    assert list(m._buffers) == ["c"] and m.plain == 3
    m.a = None  # a parameter slot may hold None
    assert m.a is None and list(m.named_parameters()) == [("b.weight", m.b.weight),
                                                           ("b.bias", m.b.bias)]
    m.c = tj.zeros(2)  # a buffer slot takes any tensor
    assert m.c.shape == (2,)
    del m.b
    assert not hasattr(m, "b") and list(m._modules) == []


def test_registration_errors():
    lin = nn.Linear(2, 3)
    with pytest.raises(TypeError, match=r"cannot assign 'tracejit.Tensor' as parameter 'weight' "
                                        r"\(tj.nn.Parameter or None expected\)"):
        lin.weight = tj.ones(3, 2)
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        lin.register_buffer("weight", tj.ones(2))
    with pytest.raises(KeyError, match='buffer name can.*t contain ".", got: a.b'):
        lin.register_buffer("a.b", tj.ones(2))
    with pytest.raises(KeyError, match="buffer name can.*t be empty string"):
        lin.register_buffer("", tj.ones(2))
    with pytest.raises(TypeError, match="buffer name should be a string. Got int"):
        lin.register_buffer(3, tj.ones(2))
    with pytest.raises(TypeError, match="cannot assign 'int' object to buffer 'x'"):
        lin.register_buffer("x", 3)
    with pytest.raises(TypeError, match="cannot assign 'tracejit.Tensor' object to parameter"):
        lin.register_parameter("x", tj.ones(2))
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        lin.add_module("c", 3)
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'foo'"):
        lin.foo  # noqa: B018
    lin.register_buffer("buf", tj.ones(2))
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'buf'"):
        lin.buf = 3
    lin.sub = nn.ReLU()
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'sub'"):
        lin.sub = 3

    class NoInit(nn.Module):
        def __init__(self, what):
            self.x = what

    with pytest.raises(AttributeError, match="cannot assign parameters before "
                                             r"Module.__init__\(\) call"):
        NoInit(nn.Parameter(tj.ones(1)))
    with pytest.raises(AttributeError, match="cannot assign module before"):
        NoInit(nn.ReLU())
    with pytest.raises(NotImplementedError, match='Module \\[Module\\] is missing the required '
                                                  '"forward" function'):
        nn.Module()(1)


# -- state dicts --------------------------------------------------------------------------------

def test_state_dict_round_trip():
    tj.manual_seed(0)
    a = Net()
    tj.manual_seed(1)
    b = Net()
    x = tj.randn(2, 1, 4, 4)
    sd = a.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["scale", "conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    assert not sd["fc.weight"].requires_grad
    with tj.no_grad():
        a.scale.fill_(2.0)
    assert sd["scale"].tolist() == [2.0, 2.0, 2.0]  # values share data with the module
    assert a.state_dict(keep_vars=True)["fc.weight"] is a.fc.weight
    w_before = b.fc.weight
    res = b.load_state_dict(sd)
    assert repr(res) == "<All keys matched successfully>"
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert b.fc.weight is w_before  # loaded in place: optimizers keep their Parameters
    np.testing.assert_array_equal(b(x).detach().numpy(), a(x).detach().numpy())
    # numpy arrays are accepted, and dtypes are cast to the parameter's
    b.load_state_dict({k: v.numpy().astype(np.float64) for k, v in Net().state_dict().items()})
    assert b.fc.weight.dtype == tj.float32


def test_load_state_dict_errors():
    lin = nn.Linear(2, 3)
    bad = {"weight": tj.ones(3, 3), "foo": tj.ones(1)}
    with pytest.raises(RuntimeError) as e:
        lin.load_state_dict(bad)
    assert str(e.value) == (
        'Error(s) in loading state_dict for Linear:\n\tMissing key(s) in state_dict: "bias". '
        '\n\tUnexpected key(s) in state_dict: "foo". \n\tsize mismatch for weight: copying a '
        "param with shape [3, 3] from checkpoint, the shape in current model is [3, 2].")
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):  # even if not strict
        nn.Sequential(nn.Linear(2, 3)).load_state_dict({"0.weight": tj.ones(3, 3)}, strict=False)
    res = lin.load_state_dict({"weight": tj.full((3, 2), 7.0), "foo": tj.ones(1)}, strict=False)
    assert res.missing_keys == ["bias"] and res.unexpected_keys == ["foo"]
    assert "IncompatibleKeys(missing_keys=['bias'], unexpected_keys=['foo'])" in repr(res)
    assert lin.weight.tolist() == [[7.0, 7.0]] * 3


def test_non_persistent_buffers_and_assign():
    net = Net()
    assert "tmp" not in net.state_dict()
    other = Net()
    new_w = tj.full((3, 8), 0.5)
    other.load_state_dict({**net.state_dict(), "fc.weight": new_w}, assign=True)
    assert isinstance(other.fc.weight, nn.Parameter) and other.fc.weight.tolist()[0][0] == 0.5


def test_deepcopy_and_pickle_of_modules_with_realized_state():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert repr(twin) == repr(net) and isinstance(twin[0].weight, nn.Parameter)
        np.testing.assert_array_equal(twin[0].weight.numpy(), net[0].weight.numpy())
        with tj.no_grad():
            twin[0].weight.fill_(0.0)
        assert float(net[0].weight.abs().sum()) > 0


def test_deepcopy_module():
    net = Net()
    twin = copy.deepcopy(net)
    with tj.no_grad():
        twin.fc.weight.fill_(0.0)
    assert float(net.fc.weight.abs().sum()) > 0
    assert isinstance(twin.fc.weight, nn.Parameter)


# -- modes, devices, dtypes, gradients ----------------------------------------------------------

def test_train_eval():
    seq = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.9)))
    assert all(m.training for m in seq.modules())
    assert seq.eval() is seq and not any(m.training for m in seq.modules())
    x = tj.randn(4, 3)
    np.testing.assert_array_equal(seq(x).numpy(), seq[0](x).numpy())  # dropout is identity
    seq.train()
    assert all(m.training for m in seq.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        seq.train("yes")


def test_to_dtype_and_device():
    net = Net()
    w = net.fc.weight
    assert net.to(tj.float64) is net
    assert net.fc.weight is w and w.dtype == tj.float64 and net.scale.dtype == tj.float64
    assert net(tj.randn(1, 1, 4, 4, dtype=tj.float64)).dtype == tj.float64
    net.float()
    assert w.dtype == tj.float32
    net.to("cpu")
    net.to(tj.device("cpu"), dtype="float64")
    assert w.dtype == tj.float64
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point"):
        net.to(tj.int64)
    if not tj.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available: .*docs/gpu.md"):
            net.to("cuda")
    bn = nn.BatchNorm2d(2).double()
    assert bn.running_mean.dtype == tj.float64 and bn.num_batches_tracked.dtype == tj.int64


def test_backward_zero_grad_and_requires_grad():
    tj.manual_seed(0)
    net = Net()
    x, y = tj.randn(3, 1, 4, 4), tj.tensor([0, 2, 1])
    F.cross_entropy(net(x), y).backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert all(g is not None and g.shape == p.shape
               for g, p in zip(grads.values(), net.parameters()))

    # the same gradients from the functional transform, through a copy of the parameters
    def loss_of(params):
        conv_w, conv_b, fc_w, fc_b = params
        h = F.max_pool2d(F.relu(F.conv2d(x, conv_w, conv_b, padding=1)), 2)
        return F.cross_entropy(F.linear(h.flatten(1), fc_w, fc_b) * net.scale, y)

    ref = tj.grad(loss_of)([p.detach() for p in net.parameters()])
    for g, r in zip(grads.values(), ref):
        np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-5, atol=1e-6)
    net.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_apply_and_hooks():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)))
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Linear", "Sequential", "Sequential"]
    net.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None)
    assert net[1][0].bias.tolist() == [0.0, 0.0]
    plain = net(tj.ones(1, 2)).tolist()
    calls = []
    h = net.register_forward_hook(lambda m, args, out: calls.append(out.shape) or out * 0)
    pre = net.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    assert net(tj.ones(1, 2)).tolist() == [[0.0, 0.0]] and calls == [(1, 2)]
    h.remove()
    pre.remove()
    np.testing.assert_allclose(net(tj.ones(1, 2)).numpy(), plain, rtol=1e-6)


# -- repr -----------------------------------------------------------------------------------------

def test_repr_like_pytorch():
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(128, 10), nn.Dropout(0.2), nn.Softmax(dim=1))
    assert repr(seq) == """Sequential(
  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
  (1): ReLU()
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (3): Flatten(start_dim=1, end_dim=-1)
  (4): Linear(in_features=128, out_features=10, bias=True)
  (5): Dropout(p=0.2, inplace=False)
  (6): Softmax(dim=1)
)"""
    assert repr(nn.ModuleList([nn.Linear(2, 2) for _ in range(3)] + [nn.ReLU()])) == """\
ModuleList(
  (0-2): 3 x Linear(in_features=2, out_features=2, bias=True)
  (3): ReLU()
)"""
    assert repr(nn.ModuleDict({"a": nn.ReLU(), "b": nn.GELU()})) == \
        "ModuleDict(\n  (a): ReLU()\n  (b): GELU(approximate='none')\n)"
    assert repr(nn.Conv2d(4, 4, (3, 5), stride=2, padding=1, dilation=2, groups=2, bias=False,
                          padding_mode="reflect")) == (
        "Conv2d(4, 4, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
        "groups=2, bias=False, padding_mode=reflect)")
    reprs = {
        nn.Conv2d(4, 4, 3, padding="same"): "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), "
                                            "padding=same)",
        nn.AvgPool2d(3): "AvgPool2d(kernel_size=3, stride=3, padding=0)",
        nn.CrossEntropyLoss(): "CrossEntropyLoss()", nn.MSELoss(): "MSELoss()",
        nn.LogSoftmax(1): "LogSoftmax(dim=1)", nn.Identity(): "Identity()",
        nn.LeakyReLU(): "LeakyReLU(negative_slope=0.01)", nn.ELU(): "ELU(alpha=1.0)",
        nn.ReLU(inplace=True): "ReLU(inplace=True)", nn.Tanh(): "Tanh()",
        nn.Softplus(): "Softplus(beta=1.0, threshold=20.0)",
        nn.BatchNorm2d(4): "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, "
                           "track_running_stats=True)",
        nn.LayerNorm(5): "LayerNorm((5,), eps=1e-05, elementwise_affine=True, bias=True)",
        nn.Embedding(10, 3, padding_idx=0): "Embedding(10, 3, padding_idx=0)",
        nn.AdaptiveAvgPool2d((1, 1)): "AdaptiveAvgPool2d(output_size=(1, 1))",
    }
    for m, text in reprs.items():
        assert repr(m) == text

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(1, 1)

        def extra_repr(self):
            return "alpha=1\nbeta=2"

    assert repr(Custom()) == ("Custom(\n  alpha=1\n  beta=2\n  (inner): Linear(in_features=1, "
                              "out_features=1, bias=True)\n)")


# -- containers ---------------------------------------------------------------------------------

def test_sequential_and_module_list_and_dict():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b and list(seq) == [a, b]
    assert type(seq[:1]) is nn.Sequential and len(seq[:1]) == 1
    seq.append(c)
    assert seq(tj.zeros(4, 2)).shape == (4, 1) and list(seq.state_dict())[-1] == "2.bias"
    del seq[1]
    assert list(seq._modules) == ["0", "1"] and seq[1] is c
    seq.insert(1, b)
    assert seq[1] is b and seq[2] is c
    with pytest.raises(IndexError, match="index 5 is out of range"):
        seq[5]  # noqa: B018
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        nn.Sequential(1)
    named = nn.Sequential(OrderedDict(first=nn.Linear(1, 2), act=nn.Tanh()))
    assert [n for n, _ in named.named_children()] == ["first", "act"]
    ml = nn.ModuleList([a, b])
    ml += [c]
    assert len(ml) == 3 and ml[2] is c and [n for n, _ in ml.named_parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    assert ml.pop(1) is b and list(ml._modules) == ["0", "1"]
    md = nn.ModuleDict({"x": a})
    md["y"] = c
    assert list(md) == ["x", "y"] and "y" in md and md["y"] is c and len(md) == 2
    assert [n for n, _ in md.named_parameters()] == ["x.weight", "x.bias", "y.weight", "y.bias"]


# -- layers against the references --------------------------------------------------------------

def test_linear_and_conv_layers_compute_with_their_parameters():
    tj.manual_seed(0)
    lin = nn.Linear(4, 3)
    x = rand(5, 4, dtype=np.float32)
    close(lin(T(x)), x @ lin.weight.numpy().T + lin.bias.numpy(), np.float32)
    conv = nn.Conv2d(4, 6, (3, 2), stride=2, padding=1, dilation=(1, 2), groups=2)
    xi = rand(2, 4, 7, 8, dtype=np.float32)
    close(conv(T(xi)), ref_conv2d(xi, conv.weight.numpy(), conv.bias.numpy(), stride=2,
                                  padding=1, dilation=(1, 2), groups=2), np.float32)
    for mode, np_mode in (("reflect", "reflect"), ("replicate", "edge"), ("circular", "wrap")):
        cm = nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode=mode, bias=False)
        xm = rand(1, 2, 5, 6, dtype=np.float32)
        xp = np.pad(xm, ((0, 0), (0, 0), (1, 1), (2, 2)), mode=np_mode)
        close(cm(T(xm)), ref_conv2d(xp, cm.weight.numpy()), np.float32)
    same = nn.Conv2d(2, 2, 4, padding="same", padding_mode="reflect")
    assert same(tj.randn(1, 2, 6, 6)).shape == (1, 2, 6, 6)


def test_pool_and_shape_layers():
    x = rand(2, 3, 7, 6)
    close(nn.MaxPool2d(3, 2, 1)(T(x)), ref_max_pool2d(x, 3, 2, 1)[0])
    out, idx = nn.MaxPool2d(2, return_indices=True)(T(x))
    np.testing.assert_array_equal(idx.numpy(), ref_max_pool2d(x, 2)[1])
    close(nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)(T(x)),
          ref_avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False))
    close(nn.AdaptiveAvgPool2d(1)(T(x)), x.mean(axis=(2, 3), keepdims=True))
    assert nn.Flatten()(T(x)).shape == (2, 126)
    assert nn.Flatten(0, 2)(T(x)).shape == (42, 6)
    assert nn.Unflatten(1, (3, 1))(T(x)).shape == (2, 3, 1, 7, 6)
    assert nn.Identity(3, foo=1)(T(x)) is not None


def test_activation_layers():
    x = rand(3, 4)
    pairs = [(nn.ReLU(), F.relu(T(x))), (nn.Sigmoid(), F.sigmoid(T(x))),
             (nn.Tanh(), F.tanh(T(x))), (nn.GELU(), F.gelu(T(x))),
             (nn.GELU("tanh"), F.gelu(T(x), approximate="tanh")),
             (nn.Softmax(dim=0), F.softmax(T(x), 0)), (nn.LogSoftmax(1), F.log_softmax(T(x), 1)),
             (nn.LeakyReLU(0.3), F.leaky_relu(T(x), 0.3)), (nn.ELU(0.5), F.elu(T(x), 0.5)),
             (nn.SiLU(), F.silu(T(x))), (nn.Softplus(2.0), F.softplus(T(x), 2.0)),
             (nn.Hardtanh(-0.5, 0.5), F.hardtanh(T(x), -0.5, 0.5)), (nn.ReLU6(), F.relu6(T(x)))]
    for layer, want in pairs:
        close(layer(T(x)), want.numpy())


def test_normalization_and_embedding_layers():
    tj.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    x = rand(4, 3, 2, 2, dtype=np.float32)
    y = bn(T(x))
    m, v = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    close(y, (x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-5), np.float32)
    close(bn.running_mean, 0.1 * m, np.float32)
    close(bn.running_var, 0.9 + 0.1 * v * 16 / 15, np.float32)
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    close(bn(T(x)), (x - bn.running_mean.numpy()[:, None, None])
          / np.sqrt(bn.running_var.numpy()[:, None, None] + 1e-5), np.float32)
    assert int(bn.num_batches_tracked) == 1
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        bn(tj.zeros(3, 2, 2))
    bn1 = nn.BatchNorm1d(2, affine=False, track_running_stats=False)
    assert bn1.weight is None and bn1.running_mean is None and list(bn1.state_dict()) == []
    close(bn1(tj.tensor([[1.0, 2.0], [3.0, 6.0]])), [[-1.0, -1.0], [1.0, 1.0]], np.float32)
    ln = nn.LayerNorm((2, 2))
    assert ln.weight.tolist() == [[1.0, 1.0]] * 2 and ln.bias.tolist() == [[0.0, 0.0]] * 2
    xl = rand(3, 2, 2, dtype=np.float32)
    mu, var = xl.mean(axis=(1, 2), keepdims=True), xl.var(axis=(1, 2), keepdims=True)
    close(ln(T(xl)), (xl - mu) / np.sqrt(var + 1e-5), np.float32)
    emb = nn.Embedding(5, 3, padding_idx=1)
    assert emb.weight.numpy()[1].tolist() == [0.0, 0.0, 0.0]
    close(emb(tj.tensor([[4, 1]])), emb.weight.numpy()[[[4, 1]]], np.float32)
    pre = nn.Embedding.from_pretrained(tj.ones(2, 2))
    assert not pre.weight.requires_grad


@pytest.mark.parametrize("compiled", [False, True])
def test_batch_norm_cumulative_average(compiled):
    bn = nn.BatchNorm1d(2, momentum=None)
    run = tj.compile(bn) if compiled else bn
    x = rand(5, 2, dtype=np.float32)
    run(T(x))
    run(T(3 * x))
    close(bn.running_mean, 2 * x.mean(axis=0), np.float32)  # mean of the two batch means
    assert int(bn.num_batches_tracked) == 2


def test_loss_layers():
    x, t = rand(5, 4), RNG.integers(0, 4, 5)
    w = RNG.random(4) + 0.5
    ce = nn.CrossEntropyLoss(weight=T(w), label_smoothing=0.1, ignore_index=2)
    close(ce(T(x), T(t)), F.cross_entropy(T(x), T(t), T(w), ignore_index=2,
                                          label_smoothing=0.1).numpy())
    assert list(ce.state_dict()) == ["weight"]
    lp = F.log_softmax(T(x), 1)
    close(nn.NLLLoss(reduction="sum")(lp, T(t)), F.nll_loss(lp, T(t), reduction="sum").numpy())
    y = rand(5, 4)
    close(nn.MSELoss()(T(x), T(y)), ((x - y) ** 2).mean())
    close(nn.L1Loss(reduction="none")(T(x), T(y)), np.abs(x - y))
    p = RNG.uniform(0.1, 0.9, (5, 4))
    close(nn.BCELoss()(T(p), T(p)), F.binary_cross_entropy(T(p), T(p)).numpy())
    bl = nn.BCEWithLogitsLoss(pos_weight=T(w))
    close(bl(T(x), T(p)), F.binary_cross_entropy_with_logits(T(x), T(p), pos_weight=T(w))
          .numpy())
    assert list(bl.state_dict()) == ["pos_weight"]
    close(nn.SmoothL1Loss(beta=0.5)(T(x), T(y)), F.smooth_l1_loss(T(x), T(y), beta=0.5).numpy())
    close(nn.HuberLoss(delta=0.5)(T(x), T(y)), F.huber_loss(T(x), T(y), delta=0.5).numpy())
    with pytest.warns(UserWarning):
        assert nn.MSELoss(size_average=False).reduction == "sum"


def test_layer_constructor_errors():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        nn.Conv2d(4, 4, 3, groups=0)
    with pytest.raises(ValueError, match="padding_mode must be one of .*, but got "
                                         "padding_mode='foo'"):
        nn.Conv2d(4, 4, 3, padding_mode="foo")
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(4, 4, 3, padding="same", stride=2)
    with pytest.raises(ValueError, match="Invalid padding string 'foo'"):
        nn.Conv2d(4, 4, 3, padding="foo")
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout(-0.1)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied "
                                           r"\(2x5 and 3x4\)"):
        nn.Linear(3, 4)(tj.zeros(2, 5))


# -- initialization -----------------------------------------------------------------------------

def test_default_init_bounds_and_reproducibility():
    tj.manual_seed(7)
    lin = nn.Linear(50, 400)
    bound = 1 / math.sqrt(50)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.95 * bound  # uniform over the whole range
    assert abs(w.mean()) < 0.05 * bound and abs(w.var() - bound ** 2 / 3) < 0.05 * bound ** 2
    conv = nn.Conv2d(6, 16, 3, groups=2)
    cb = 1 / math.sqrt(3 * 3 * 3)
    assert np.abs(conv.weight.numpy()).max() <= cb and np.abs(conv.bias.numpy()).max() <= cb
    tj.manual_seed(7)
    again = nn.Linear(50, 400)
    np.testing.assert_array_equal(again.weight.numpy(), w)
    np.testing.assert_array_equal(again.bias.numpy(), b)
    assert not np.array_equal(nn.Linear(50, 400).weight.numpy(), w)
    assert nn.Linear(3, 2, dtype=tj.float64).weight.dtype == tj.float64


def test_init_functions():
    tj.manual_seed(0)
    t = tj.empty(200, 300)
    assert nn.init.uniform_(t, -2.0, 3.0) is t
    v = t.numpy()
    assert v.min() >= -2.0 and v.max() < 3.0 and abs(v.mean() - 0.5) < 0.05
    nn.init.normal_(t, 1.0, 2.0)
    assert abs(t.numpy().mean() - 1.0) < 0.03 and abs(t.numpy().std() - 2.0) < 0.03
    nn.init.trunc_normal_(t, 0.0, 1.0, -1.0, 1.5)
    assert t.numpy().min() >= -1.0 and t.numpy().max() <= 1.5
    nn.init.xavier_uniform_(t, gain=2.0)
    a = 2.0 * math.sqrt(6.0 / 500)
    assert np.abs(t.numpy()).max() <= a and np.abs(t.numpy()).max() > 0.95 * a
    nn.init.xavier_normal_(t)
    assert abs(t.numpy().std() - math.sqrt(2 / 500)) < 0.003
    nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu")
    assert abs(t.numpy().std() - math.sqrt(2 / 200)) < 0.003
    nn.init.kaiming_uniform_(t, nonlinearity="relu")
    assert np.abs(t.numpy()).max() <= math.sqrt(6 / 300)
    nn.init.constant_(t, 0.25)
    assert (t.numpy() == 0.25).all()
    assert (nn.init.zeros_(t).numpy() == 0).all() and (nn.init.ones_(t).numpy() == 1).all()
    np.testing.assert_array_equal(nn.init.eye_(tj.empty(2, 3)).numpy(), np.eye(2, 3))
    p = nn.Parameter(tj.zeros(3, 3))
    nn.init.uniform_(p)  # in place under no_grad, though p requires grad
    assert p.requires_grad and p.grad_fn is None and float(p.abs().sum()) > 0
    p.data.uniform_(-0.1, 0.1)  # PyTorch's older idiom
    assert float(p.abs().max()) <= 0.1
    g = tj.Generator().manual_seed(3)
    first = nn.init.normal_(tj.empty(4), generator=g).numpy().copy()
    g.manual_seed(3)
    np.testing.assert_array_equal(nn.init.normal_(tj.empty(4), generator=g).numpy(), first)


def test_init_gain_and_errors():
    assert nn.init.calculate_gain("relu") == math.sqrt(2)
    assert nn.init.calculate_gain("tanh") == 5 / 3
    assert nn.init.calculate_gain("conv2d") == 1
    assert nn.init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        nn.init.calculate_gain("foo")
    with pytest.raises(ValueError, match="Fan in and fan out can not be computed for tensor "
                                         "with fewer than 2 dimensions"):
        nn.init.xavier_uniform_(tj.ones(3))
    with pytest.raises(ValueError, match=r"Mode foo not supported, please use one of "
                                         r"\['fan_in', 'fan_out'\]"):
        nn.init.kaiming_uniform_(tj.ones(3, 3), mode="foo")
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        nn.Linear(0, 3)


# -- whole models: training, compile ------------------------------------------------------------

def _data():
    tj.manual_seed(0)
    x = tj.randn(16, 1, 6, 6)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return x, y


def test_eager_training_loop_reduces_the_loss():
    x, y = _data()
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 3 * 3, 2))
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(3):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        with tj.no_grad():
            for p in model.parameters():
                p.sub_(0.2 * p.grad)
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_compiled_model_and_training_step():
    x, y = _data()
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Dropout(0.5), nn.Linear(2 * 2 * 2, 2)).eval()
    compiled = tj.compile(model)
    np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    with tj.no_grad():  # parameters are read at each call, not frozen at trace time
        model[-1].bias.add_(1.0)
    np.testing.assert_allclose(compiled(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)

    @tj.compile
    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with tj.no_grad():
            for p in model.parameters():
                p.sub_(0.5 * p.grad)
                p.grad = None
        return loss

    losses = [step(x, y).item() for _ in range(3)]
    assert losses[-1] < losses[0]
