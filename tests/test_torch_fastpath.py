"""divcore.torch.cross_entropy's fast path for plain eager calls (divcore._torch_ops.
plain_cross_entropy): taken exactly when expected, and the same bits as the general path
(loss, gradient, second derivatives), whichever door to the kernels it takes."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import divcore  # noqa: E402
import divcore.reference  # noqa: E402
import divcore.torch as dct  # noqa: E402
from divcore import _torch_ops as ops  # noqa: E402

F64 = torch.float64


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def bits(t):
    """The tensor's bits, for exact comparisons (nan included)."""
    t = t.detach().contiguous()
    return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    assert torch.equal(bits(a), bits(b))


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls the fast path takes and those of the general path."""
    counts = {"fast": 0, "general": 0}
    fast, general = ops.plain_cross_entropy, ops.call

    def fast_spy(*a, **k):
        out = fast(*a, **k)
        counts["fast"] += out is not None
        return out

    def general_spy(name, *a, **k):
        if name == "cross_entropy":
            counts["general"] += 1
        return general(name, *a, **k)

    monkeypatch.setattr(ops, "plain_cross_entropy", fast_spy)
    monkeypatch.setattr(ops, "call", general_spy)
    return counts


def run(fn, x, y, create_graph=False, **kw):
    """(loss, x's gradient, and with create_graph a Hessian-vector product) of one call."""
    x = x.detach().clone().requires_grad_()
    loss = fn(x, y, **kw)
    out = loss.sum() if loss.dim() else loss
    (g,) = torch.autograd.grad(out * 1.0 if create_graph else out, x,
                               create_graph=create_graph)
    if not create_graph:
        return loss, g, None
    (hv,) = torch.autograd.grad((g * torch.linspace(-1, 1, g.numel()).view_as(g)
                                 .to(g.dtype)).sum(), x)
    return loss, g, hv


def general(monkeypatch):
    monkeypatch.setattr(ops, "plain_cross_entropy", lambda *a: None)


CASES = [
    dict(dtype=torch.float32, shape=(32, 10)),
    dict(dtype=F64, shape=(7, 5), reduction="sum"),
    dict(dtype=torch.float32, shape=(9, 4), reduction="none"),
    dict(dtype=torch.float32, shape=(6, 3), ignore_index=1),
    dict(dtype=F64, shape=(6, 3), ignore_index=None),
    dict(dtype=torch.float32, shape=(8, 6), label_smoothing=0.2),
    dict(dtype=F64, shape=(5,)),
    dict(dtype=torch.float32, shape=(5,), reduction="none"),
    dict(dtype=torch.bfloat16, shape=(12, 7)),
    dict(dtype=torch.float16, shape=(12, 7), reduction="none"),
    dict(dtype=torch.float32, shape=(10, 12), transposed=True),
    dict(dtype=torch.float32, shape=(300, 256)),  # threaded kernels
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(
    f"{k}={v}".replace("torch.", "") for k, v in c.items()))
@pytest.mark.parametrize("create_graph", [False, True])
def test_fast_and_general_paths_give_the_same_bits(monkeypatch, gen, spy, case,
                                                   create_graph):
    case = dict(case)
    dtype, shape = case.pop("dtype"), case.pop("shape")
    x = torch.randn(*shape, generator=gen, dtype=F64).mul(3).to(dtype)
    if case.pop("transposed", False):
        x = x.t().contiguous().t()  # (N, C) with the classes strided
    n_classes = x.shape[-1]
    y = torch.randint(0, n_classes, x.shape[:-1], generator=gen)
    if "ignore_index" in case and case["ignore_index"] is not None and y.dim():
        y[::3] = case["ignore_index"]
    fast = run(dct.cross_entropy, x, y, create_graph, **case)
    assert spy["fast"] == 1 and spy["general"] == 0
    general(monkeypatch)
    slow = run(dct.cross_entropy, x, y, create_graph, **case)
    assert spy["general"] == 1
    for a, b in zip(fast, slow):
        if a is not None:
            same_bits(a, b)


def test_fast_path_agrees_with_torch(gen):
    x = torch.randn(32, 10, generator=gen, requires_grad=True)
    y = torch.randint(0, 10, (32,), generator=gen)
    ref = x.detach().clone().requires_grad_()
    for reduction in ("mean", "sum", "none"):
        x.grad = ref.grad = None
        ours, theirs = dct.cross_entropy(x, y, reduction=reduction), \
            F.cross_entropy(ref, y, reduction=reduction)
        assert type(ours.grad_fn).__name__ == "_PlainCEBackward"
        torch.testing.assert_close(ours, theirs)
        ours.sum().backward()
        theirs.sum().backward()
        torch.testing.assert_close(x.grad, ref.grad)


def test_fast_path_is_taken_for_plain_calls(gen, spy):
    x = torch.randn(4, 3, generator=gen, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1])
    cases = [
        lambda: dct.cross_entropy(x, y),
        lambda: dct.cross_entropy(x, y, reduction="none", label_smoothing=0.1),
        lambda: dct.cross_entropy(x, y, None, 2, "sum", 0),
        lambda: dct.CrossEntropyLoss()(x, y),
        lambda: dct.cross_entropy(torch.nn.Parameter(x.detach()), y),
        lambda: dct.cross_entropy(x[1], y[1]),                     # one row
        lambda: dct.cross_entropy(x.t().contiguous().t(), y),      # strided classes
        lambda: dct.cross_entropy(x.to(torch.bfloat16), y),
    ]
    for i, case in enumerate(cases):
        loss = case()
        assert type(loss.grad_fn).__name__ == "_PlainCEBackward", i
    with torch.no_grad():
        assert dct.cross_entropy(x, y).grad_fn is None
    assert dct.cross_entropy(x.detach(), y).grad_fn is None
    assert spy == {"fast": len(cases) + 2, "general": 0}


def test_fast_path_is_not_taken_otherwise(gen, spy):
    x = torch.randn(4, 3, generator=gen, requires_grad=True)
    y = torch.tensor([0, 2, 1, 1])
    probs = torch.softmax(torch.randn(4, 3, generator=gen), 1)
    cases = [
        lambda: dct.cross_entropy(x, y, weight=torch.ones(3)),
        lambda: dct.cross_entropy(x, y, target_type="labels"),
        lambda: dct.cross_entropy(x, y, temperature=2.0),
        lambda: dct.cross_entropy(x, y, dim=1),
        lambda: dct.cross_entropy(x, y, where=torch.ones(4, 3, dtype=torch.bool)),
        lambda: dct.cross_entropy(x, y, base=2.0),
        lambda: dct.cross_entropy(x, y, z_loss=1e-3),
        lambda: dct.cross_entropy(x, y, sample_weight=torch.ones(4)),
        lambda: dct.cross_entropy(x, y, softcap=30.0),
        lambda: dct.cross_entropy(x, probs),                            # soft target
        lambda: dct.cross_entropy(x, y.to(torch.int32)),                # not int64
        lambda: dct.cross_entropy(x, y.numpy()),                        # not a tensor
        lambda: dct.cross_entropy(x.view(2, 3, 2), y.view(2, 2)[:, :2]),  # (N, C, d)
        lambda: dct.cross_entropy(x, y, label_smoothing=np.float64(0.1)),
    ]
    for i, case in enumerate(cases):
        loss = case()
        assert type(loss.grad_fn).__name__ != "_PlainCEBackward", i
    assert spy == {"fast": 0, "general": len(cases)}


def test_fast_path_is_not_taken_under_transforms_or_compile(gen, spy):
    x = torch.randn(4, 3, generator=gen, dtype=F64)
    y = torch.tensor([0, 2, 1, 1])
    g = torch.func.grad(lambda x: dct.cross_entropy(x, y))(x)
    ref = x.clone().requires_grad_()
    F.cross_entropy(ref, y).backward()
    torch.testing.assert_close(g, ref.grad)
    torch.func.vmap(lambda x, y: dct.cross_entropy(x, y))(x.view(2, 2, 3), y.view(2, 2))
    assert spy["fast"] == 0

    class Sub(torch.Tensor):
        pass

    dct.cross_entropy(x.as_subclass(Sub), y)
    assert spy["fast"] == 0


def test_fast_path_refuses_what_the_general_path_refuses(gen):
    x = torch.randn(2, 3, generator=gen, requires_grad=True)
    with pytest.raises(IndexError, match="row 1"):
        dct.cross_entropy(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="reduction"):
        dct.cross_entropy(x, torch.tensor([0, 1]), reduction="batchmean")
    with pytest.raises(ValueError):
        dct.cross_entropy(x, torch.tensor([0, 1]), label_smoothing=1.5)
    with pytest.raises(TypeError, match="CPU only"):
        dct.cross_entropy(torch.zeros(2, 3, device="meta"), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="CPU only"):
        dct.cross_entropy(x, torch.zeros(2, dtype=torch.long, device="meta"))


def test_fast_path_runs_on_the_swapped_in_backend(monkeypatch, gen):
    calls = []
    real = divcore.reference.cross_entropy_and_grad
    monkeypatch.setattr(dct, "divcore", divcore.reference)
    monkeypatch.setattr(divcore.reference, "cross_entropy_and_grad",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(5, 4, generator=gen, dtype=F64, requires_grad=True)
    y = torch.tensor([0, 3, 1, 2, 3])
    loss = dct.cross_entropy(x, y, label_smoothing=0.1)
    assert calls and type(loss.grad_fn).__name__ == "_PlainCEBackward"
    loss.backward()
    ref = x.detach().clone().requires_grad_()
    F.cross_entropy(ref, y, label_smoothing=0.1).backward()
    torch.testing.assert_close(x.grad, ref.grad)


def test_the_compiled_front_reads_the_tensors(monkeypatch, gen):
    """float32/float64 tensors go to the compiled front's door for tensors; half ones to
    the numpy API (the front takes float32/float64 only); with the front off, the numpy
    API too, with the same bits."""
    if ops._front_ce is None or not divcore._kernels.front_enabled():
        pytest.skip("no compiled front")
    seen = []
    door = ops._front_ce
    monkeypatch.setattr(ops, "_front_ce", lambda *a: seen.append(a[1]) or door(*a))
    x = torch.randn(6, 5, generator=gen)
    y = torch.randint(0, 5, (6,), generator=gen)
    for dtype in (torch.float32, F64, torch.bfloat16):
        dct.cross_entropy(x.to(dtype).requires_grad_(), y).backward()
    assert seen == [np.dtype(np.float32), np.dtype(np.float64)]
    fast = run(dct.cross_entropy, x, y)
    monkeypatch.setattr(ops, "_front_ce", lambda *a: None)  # as with DIVCORE_FRONT=0
    same = run(dct.cross_entropy, x, y)
    for a, b in zip(fast[:2], same[:2]):
        same_bits(a, b)
    monkeypatch.setattr(ops, "_front_ce", door)
    for kw in ({}, {"reduction": "none", "label_smoothing": 0.3}, {"ignore_index": 2},
               {"reduction": "sum", "ignore_index": None}):
        for dtype in (torch.float32, F64):
            xt = x.detach().to(dtype).t().contiguous().t()  # strided classes too
            loss, grad = ops._plain_kernel(divcore, xt, y, kw.get("reduction", "mean"),
                                           kw.get("ignore_index", -100),
                                           kw.get("label_smoothing", 0.0), True)
            want = divcore.cross_entropy_and_grad(xt.numpy(), y.numpy(), **kw)
            same_bits(torch.from_numpy(loss), torch.from_numpy(np.asarray(want[0])))
            same_bits(torch.from_numpy(grad), torch.from_numpy(want[1]))


def test_plain_backward_hands_the_gradient_over(gen):
    """loss.backward(): the kernel's gradient becomes x.grad (no copy); a kept graph's
    backward, a second incoming gradient, hooks and accumulation all still add up."""
    x = torch.randn(8, 5, generator=gen, requires_grad=True)
    y = torch.randint(0, 5, (8,), generator=gen)
    ref = x.detach().clone().requires_grad_()
    F.cross_entropy(ref, y).backward()
    loss = dct.cross_entropy(x, y)
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    torch.testing.assert_close(x.grad, 2 * ref.grad)
    loss.backward()
    torch.testing.assert_close(x.grad, 3 * ref.grad)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()
    x.grad = None
    x.register_hook(lambda g: g * 2)
    dct.cross_entropy(x, y).backward()
    torch.testing.assert_close(x.grad, 2 * ref.grad)
    x.grad = None
    (dct.cross_entropy(x, y) * 0.5).backward()
    torch.testing.assert_close(x.grad, ref.grad)  # the hook's 2 times 0.5


def test_inplace_change_of_the_input_is_caught_in_a_graph_building_backward(gen):
    x = torch.randn(3, 4, generator=gen, dtype=F64)
    w = torch.ones(3, 4, dtype=F64, requires_grad=True)
    z = x * w
    loss = dct.cross_entropy(z, torch.tensor([0, 1, 2]))
    with torch.no_grad():
        z.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, w, create_graph=True)


def test_bfloat16_reaches_the_kernels_without_a_copy(monkeypatch, gen):
    """A bf16 tensor reaches divcore's numpy API as a view of its own memory (ml_dtypes'
    bfloat16), in the forward alone and with the gradient."""
    pytest.importorskip("ml_dtypes")
    seen = []

    class Spy:
        def __getattr__(self, name):
            real = getattr(divcore, name)

            def spy(logits, *a, **k):
                seen.append((name, logits.ctypes.data, logits.dtype.name))
                return real(logits, *a, **k)
            return spy

    monkeypatch.setattr(dct, "divcore", Spy())
    x = torch.randn(64, 100, generator=gen).to(torch.bfloat16).requires_grad_()
    y = torch.randint(0, 100, (64,), generator=gen)
    with torch.no_grad():
        dct.cross_entropy(x, y)
    dct.cross_entropy(x, y).backward()
    assert seen == [("cross_entropy", x.data_ptr(), "bfloat16"),
                    ("cross_entropy_and_grad", x.data_ptr(), "bfloat16")]
    assert x.grad.dtype == torch.bfloat16


def test_a_negative_view_is_read_by_its_values(gen):
    """z.conj().imag is a float tensor whose memory holds the negated values: the general
    path reads its values (not its memory), as torch does."""
    z = torch.randn(4, 3, generator=gen, dtype=torch.complex64)
    v = z.conj().imag
    assert v.is_neg()
    y = torch.tensor([0, 1, 2, 0])
    want = F.cross_entropy(v.resolve_neg(), y)
    torch.testing.assert_close(dct.cross_entropy(v, y), want)
    torch.testing.assert_close(dct.cross_entropy(v, y, target_type="labels"), want)
    vg = torch.randn(4, 3, generator=gen, requires_grad=True)
    w = torch._neg_view(vg)  # a differentiable negative view
    assert w.is_neg()
    dct.cross_entropy(w, y).backward()
    ref = (-vg.detach()).requires_grad_()
    F.cross_entropy(ref, y).backward()
    torch.testing.assert_close(vg.grad, -ref.grad)
