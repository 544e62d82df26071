"""divcore.torch: gradients checked by finite differences (torch.autograd.gradcheck, float64)
and values and gradients checked against torch's own losses, or against the same formula
written in torch operations and differentiated by autograd (Jensen-Shannon)."""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import divcore  # noqa: E402
import divcore.reference  # noqa: E402
import divcore.torch as dct  # noqa: E402

F64 = torch.float64


@pytest.fixture(params=["divcore", "reference"])
def backend(request, monkeypatch):
    """Run the bridge on the live backend and on the pure-Python reference."""
    if request.param == "reference":
        monkeypatch.setattr(dct, "divcore", divcore.reference)
        calls = []
        real = divcore.reference.cross_entropy_and_grad
        monkeypatch.setattr(divcore.reference, "cross_entropy_and_grad",
                            lambda *a, **k: calls.append(1) or real(*a, **k))
        dct.cross_entropy(torch.zeros(1, 2, requires_grad=True), torch.tensor([0]))
        assert calls, "the bridge does not run on the swapped-in backend"
        monkeypatch.setattr(divcore.reference, "cross_entropy_and_grad", real)
    return request.param


@pytest.fixture
def gen(request):
    import zlib
    return torch.Generator().manual_seed(zlib.crc32(request.node.nodeid.encode()))


def randn(gen, *shape, scale=2.0, requires_grad=True):
    return (torch.randn(*shape, generator=gen, dtype=F64) * scale).requires_grad_(
        requires_grad)


def probs(gen, *shape, requires_grad=False, axis=-1):
    return torch.softmax(torch.randn(*shape, generator=gen, dtype=F64) * 2,
                         axis).requires_grad_(requires_grad)


def gradcheck(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def close(a, b, rtol=1e-10, atol=1e-12):
    torch.testing.assert_close(a.detach().to(F64), b.detach().to(F64), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------ gradcheck

@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gradcheck_cross_entropy_labels(backend, gen, reduction):
    x = randn(gen, 6, 5)
    y = torch.tensor([0, 4, -100, 2, 1, 3])
    w = torch.rand(5, generator=gen, dtype=F64) + 0.2
    gradcheck(lambda x: dct.cross_entropy(x, y, weight=w, label_smoothing=0.1,
                                          temperature=1.7, reduction=reduction, base=2), x)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("kind", ["probs", "log_probs", "logits"])
def test_gradcheck_cross_entropy_soft_targets(backend, gen, reduction, kind):
    x = randn(gen, 4, 5)
    p = probs(gen, 4, 5)
    t = {"probs": p, "log_probs": p.log(), "logits": randn(gen, 4, 5)}[kind].detach()
    t.requires_grad_(True)
    extra = {"weight": torch.rand(5, generator=gen, dtype=F64) + 0.5,
             "label_smoothing": 0.2} if kind == "probs" else {"temperature": 0.7}
    gradcheck(lambda x, t: dct.cross_entropy(x, t, target_type=kind, validate=False,
                                             reduction=reduction, **extra), x, t)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", ["probs", "log_probs", "logits"])
def test_gradcheck_kl(backend, gen, reverse, kind):
    x = randn(gen, 3, 4, 2)  # class dim 1, torch's default
    p = probs(gen, 3, 4, 2, axis=1)
    t = {"probs": p, "log_probs": p.log(), "logits": randn(gen, 3, 4, 2)}[kind].detach()
    t.requires_grad_(True)
    gradcheck(lambda x, t: dct.kl_divergence(x, t, target_type=kind, reverse=reverse,
                                             temperature=1.3, validate=False,
                                             reduction="none"), x, t)


@pytest.mark.parametrize("beta", [0.5, 0.2])
@pytest.mark.parametrize("kind", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_gradcheck_js(backend, gen, beta, kind, reduction):
    x = randn(gen, 4, 6)
    p = probs(gen, 4, 6)
    t = {"probs": p, "log_probs": p.log(), "logits": randn(gen, 4, 6)}[kind].detach()
    t.requires_grad_(True)
    gradcheck(lambda x, t: dct.js_divergence(x, t, target_type=kind, beta=beta,
                                             temperature=0.8, validate=False,
                                             reduction=reduction, base=2), x, t)


def test_gradcheck_js_labels_and_mask(backend, gen):
    x = randn(gen, 4, 6)
    y = torch.tensor([0, 5, 2, 3])
    where = torch.ones(4, 6, dtype=torch.bool)
    where[:, 1] = False  # a masked class: no probability, no gradient
    gradcheck(lambda x: dct.js_divergence(x, y, where=where, reduction="sum"), x)
    x.grad = None
    dct.js_divergence(x, y, where=where).backward()
    assert torch.all(x.grad[:, 1] == 0)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gradcheck_bce(backend, gen, reduction):
    x = randn(gen, 3, 4)
    y = torch.rand(3, 4, generator=gen, dtype=F64).requires_grad_()
    w = (torch.rand(3, 1, generator=gen, dtype=F64) + 0.5).requires_grad_()
    pw = (torch.rand(4, generator=gen, dtype=F64) + 0.5).requires_grad_()
    gradcheck(lambda x, y, w, pw: dct.binary_cross_entropy(
        x, y, weight=w, pos_weight=pw, reduction=reduction, base=10), x, y, w, pw)


# ------------------------------------------------------------------ against torch

def _both(fn_ours, fn_torch, *inputs, grad_output=None):
    """Values and gradients of two functions of the same leaf tensors."""
    results = []
    for fn in (fn_ours, fn_torch):
        leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
        out = fn(*leaves)
        g = torch.ones_like(out) if grad_output is None else grad_output
        out.backward(g)
        results.append((out, [t.grad for t in leaves if t.requires_grad]))
    (a, ga), (b, gb) = results
    close(a, b)
    for u, v in zip(ga, gb):
        close(u, v)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_labels_matches_torch(gen, reduction, smoothing):
    x = randn(gen, 7, 5, 3)  # (N, C, d): class axis 1
    y = torch.randint(0, 5, (7, 3), generator=gen)
    y[::2, 1] = -100
    w = torch.rand(5, generator=gen, dtype=F64) + 0.2
    go = torch.randn(7, 3, generator=gen, dtype=F64) if reduction == "none" else None
    _both(lambda x: dct.cross_entropy(x, y, weight=w, label_smoothing=smoothing,
                                      reduction=reduction),
          lambda x: F.cross_entropy(x, y, weight=w, label_smoothing=smoothing,
                                    reduction=reduction), x, grad_output=go)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_probs_matches_torch(gen, reduction):
    x = randn(gen, 6, 4)
    p = probs(gen, 6, 4, requires_grad=True)
    w = torch.rand(4, generator=gen, dtype=F64) + 0.2
    go = torch.randn(6, generator=gen, dtype=F64) if reduction == "none" else None
    _both(lambda x, p: dct.cross_entropy(x, p, weight=w, label_smoothing=0.1,
                                         reduction=reduction),
          lambda x, p: F.cross_entropy(x, p, weight=w, label_smoothing=0.1,
                                       reduction=reduction), x, p, grad_output=go)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_kl_matches_torch_kl_div(gen, log_target, reduction):
    x = randn(gen, 5, 6)
    p = probs(gen, 5, 6)
    t = (p.log() if log_target else p).detach().requires_grad_()
    torch_reduction = {"none": "none", "sum": "sum", "mean": "batchmean"}[reduction]

    def theirs(x, t):
        out = F.kl_div(F.log_softmax(x, -1), t, reduction=torch_reduction,
                       log_target=log_target)
        return out.sum(-1) if reduction == "none" else out

    _both(lambda x, t: dct.kl_divergence(x, t, target_type="log_probs" if log_target
                                         else "probs", reduction=reduction),
          theirs, x, t)


def test_kl_teacher_logits_matches_torch(gen):
    x, t = randn(gen, 4, 7), randn(gen, 4, 7)
    _both(lambda x, t: dct.kl_divergence(x, t, target_type="logits", temperature=2.0),
          lambda x, t: F.kl_div(F.log_softmax(x / 2, -1), F.log_softmax(t / 2, -1),
                                reduction="batchmean", log_target=True), x, t)


def _torch_js(x, p, beta):
    """JS_β written in torch operations (autograd differentiates it)."""
    log_q = F.log_softmax(x, -1)
    q = log_q.exp()
    m = beta * p + (1 - beta) * q
    kl_pm = torch.where(p > 0, p * (p.log() - m.log()), torch.zeros_like(p)).sum(-1)
    kl_qm = (q * (log_q - m.log())).sum(-1)
    return beta * kl_pm + (1 - beta) * kl_qm


@pytest.mark.parametrize("beta", [0.5, 0.3])
def test_js_matches_torch_formula(gen, beta):
    x = randn(gen, 5, 6)
    p = probs(gen, 5, 6, requires_grad=True)
    go = torch.randn(5, generator=gen, dtype=F64)
    _both(lambda x, p: dct.js_divergence(x, p, beta=beta, reduction="none"),
          lambda x, p: _torch_js(x, p, beta), x, p, grad_output=go)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_bce_matches_torch(gen, reduction):
    x = randn(gen, 4, 5, scale=5.0)
    y = torch.rand(4, 5, generator=gen, dtype=F64).requires_grad_()
    w = torch.rand(4, 1, generator=gen, dtype=F64) + 0.5
    pw = torch.rand(5, generator=gen, dtype=F64) + 0.5
    go = torch.randn(4, 5, generator=gen, dtype=F64) if reduction == "none" else None
    _both(lambda x, y: dct.binary_cross_entropy(x, y, weight=w, pos_weight=pw,
                                                reduction=reduction),
          lambda x, y: F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw,
                                                          reduction=reduction),
          x, y, grad_output=go)


def test_bce_infinite_logits_with_matching_label():
    x = torch.tensor([np.inf, -np.inf], dtype=F64, requires_grad=True)
    loss = dct.binary_cross_entropy(x, torch.tensor([1.0, 0.0], dtype=F64), reduction="sum")
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(x.grad, torch.zeros(2, dtype=F64))


# -------------------------------------------------------- reductions and semantics

def test_value_equals_numpy_api(gen):
    x = randn(gen, 8, 5, requires_grad=False)
    y = torch.randint(0, 5, (8,), generator=gen)
    y[3] = 7  # ignored
    for reduction in ("none", "sum", "mean"):
        ours = dct.cross_entropy(x, y, ignore_index=7, reduction=reduction)
        ref = divcore.cross_entropy(x.numpy(), y.numpy(), ignore_index=7, reduction=reduction)
        np.testing.assert_array_equal(ours.numpy(), np.asarray(ref))


def test_fully_ignored_batch_is_nan_with_zero_gradient():
    x = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    loss = dct.cross_entropy(x, torch.tensor([-100, -100]))
    loss.backward()
    assert torch.isnan(loss)
    assert torch.equal(x.grad, torch.zeros(2, 3, dtype=F64))


@pytest.mark.parametrize("fn", [dct.cross_entropy, dct.kl_divergence, dct.js_divergence])
def test_empty_batch(fn):
    x = torch.zeros(0, 3, dtype=F64, requires_grad=True)
    t = torch.zeros(0, 3, dtype=F64, requires_grad=True)
    loss = fn(x, t, target_type="logits")
    loss.backward()
    assert torch.isnan(loss) and x.grad.shape == (0, 3) and t.grad.shape == (0, 3)


def test_ignored_rows_with_nan_logits_get_zero_gradient():
    x = torch.tensor([[np.nan, 1.0], [0.0, 1.0]], dtype=F64, requires_grad=True)
    loss = dct.cross_entropy(x, torch.tensor([-100, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.equal(x.grad[0], torch.zeros(2, dtype=F64))


def test_teacher_gets_no_gradient_unless_asked(gen):
    x, t = randn(gen, 3, 4), randn(gen, 3, 4, requires_grad=False)
    dct.kl_divergence(x, t, target_type="logits").backward()
    assert t.grad is None and x.grad is not None


def test_no_grad_anywhere_gives_plain_tensor(gen):
    x = randn(gen, 3, 4, requires_grad=False)
    out = dct.cross_entropy(x, torch.tensor([0, 1, 2]))
    assert out.grad_fn is None and not out.requires_grad
    with torch.no_grad():
        out = dct.cross_entropy(randn(gen, 3, 4), torch.tensor([0, 1, 2]))
    assert not out.requires_grad


def test_second_derivative_matches_torch(gen):
    """The Hessian of the loss, not zeros (the bridge before the custom ops gave 0)."""
    x = randn(gen, 3, 4)
    y = torch.tensor([0, 1, 2])
    ours = torch.autograd.functional.hessian(lambda x: dct.cross_entropy(x, y), x)
    theirs = torch.autograd.functional.hessian(lambda x: F.cross_entropy(x, y), x)
    assert theirs.abs().max() > 0.01
    close(ours, theirs)


def test_inplace_change_after_forward_is_caught(gen):
    x = randn(gen, 3, 4, requires_grad=False)
    t = randn(gen, 3, 4)
    loss = dct.kl_divergence(x, t, target_type="logits")
    with torch.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# --------------------------------------------------------- dtypes, layouts, devices

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_dtypes(gen, dtype):
    x64 = randn(gen, 6, 5, requires_grad=False)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    x = x64.to(dtype).requires_grad_()
    loss = dct.cross_entropy(x, y)
    loss.backward()
    assert loss.dtype == torch.float32  # float16 / bfloat16 computed and returned in float32
    assert x.grad.dtype == dtype
    ref = x.detach().to(F64).requires_grad_()
    F.cross_entropy(ref, y).backward()
    tol = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}[dtype]
    close(loss, F.cross_entropy(ref.detach(), y), rtol=1e-6, atol=1e-6)
    close(x.grad, ref.grad, rtol=tol, atol=tol)


def test_float32_stays_float32(gen):
    x = randn(gen, 4, 3).float().detach().requires_grad_()
    for fn, t in ((dct.js_divergence, torch.softmax(x.detach(), -1).flip(-1)),
                  (dct.binary_cross_entropy, torch.rand(4, 3, generator=gen))):
        x.grad = None
        out = fn(x, t)
        out.backward()
        assert out.dtype == torch.float32 and x.grad.dtype == torch.float32


def test_non_contiguous_tensors(gen):
    base = randn(gen, 10, 12, requires_grad=False)
    x = base[::2, 1::2].t().detach().requires_grad_()  # (6, 5), strided and transposed
    assert not x.is_contiguous()
    p = probs(gen, 10, 12).t()[::2, ::2]  # (6, 5), strided
    p = (p / p.sum(0, keepdim=True)).detach()  # columns are the distributions: axis=0
    _both(lambda x: dct.cross_entropy(x, p, dim=0),
          lambda x: F.cross_entropy(x.t(), p.t()), x)


def test_other_devices_are_refused():
    x = torch.zeros(2, 3, device="meta")
    with pytest.raises(TypeError, match="CPU only"):
        dct.cross_entropy(x, torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="CPU only"):
        dct.cross_entropy(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long, device="meta"))


def test_argument_errors():
    x = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    with pytest.raises(TypeError, match="torch.Tensor"):
        dct.cross_entropy(np.zeros((2, 3)), [0, 1])
    with pytest.raises(NotImplementedError, match="weight"):
        dct.cross_entropy(x, torch.tensor([0, 1]), weight=torch.ones(3, requires_grad=True))
    with pytest.raises(ValueError, match="reduction"):
        dct.cross_entropy(x, torch.tensor([0, 1]), reduction="batchmean")
    with pytest.raises(IndexError, match="row 1"):
        dct.cross_entropy(x, torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="sparse"):
        dct.cross_entropy(torch.zeros(2, 3).to_sparse(), torch.tensor([0, 1]))


def test_numpy_and_list_targets(gen):
    x = randn(gen, 3, 4)
    a = dct.cross_entropy(x, np.array([0, 1, 3]))
    b = dct.cross_entropy(x, [0, 1, 3])
    c = F.cross_entropy(x, torch.tensor([0, 1, 3]))
    close(a, c)
    close(b, c)


def test_import_divcore_does_not_import_torch():
    """divcore.torch is opt-in, and its `import torch` is the real torch, not itself."""
    code = ("import sys, divcore; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'dask' not in sys.modules, 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert dct.torch is torch and dct.torch.__name__ == "torch"
