"""divcore.torch as a native PyTorch loss: second derivatives (gradgradcheck, against
torch's own losses), torch's layout, torch.func (grad, vmap, jacrev, per-sample
gradients), torch.library.opcheck of the registered ops, torch.compile(fullgraph=True)
without recompiles, and the nn.Module losses against torch.nn's."""
import math
import os
import zlib

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
func = pytest.importorskip("torch.func")

import divcore.torch as dct  # noqa: E402

F64 = torch.float64
KINDS = ["probs", "log_probs", "logits"]


@pytest.fixture
def gen(request):
    return torch.Generator().manual_seed(zlib.crc32(request.node.nodeid.encode()))


def randn(gen, *shape, scale=1.5):
    return (torch.randn(*shape, generator=gen, dtype=F64) * scale).requires_grad_()


def soft_target(gen, kind, *shape, dim=1):
    z = torch.randn(*shape, generator=gen, dtype=F64)
    t = {"probs": torch.softmax(z, dim), "log_probs": torch.log_softmax(z, dim),
         "logits": z * 2}[kind]
    return t.detach().requires_grad_()


def gradgradcheck(fn, *inputs):
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def close(a, b, rtol=1e-10, atol=1e-12):
    torch.testing.assert_close(a.detach().to(F64), b.detach().to(F64), rtol=rtol, atol=atol)


# ------------------------------------------------------------- second derivatives

@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_gradgradcheck_cross_entropy_labels(gen, reduction):
    x = randn(gen, 5, 4, 2)
    y = torch.tensor([[0, 3], [-100, 1], [2, 2], [1, -100], [3, 0]])
    w = torch.rand(4, generator=gen, dtype=F64) + 0.3
    gradgradcheck(lambda x: dct.cross_entropy(x, y, w, reduction=reduction,
                                              label_smoothing=0.15, temperature=1.4,
                                              base=2), x)


@pytest.mark.parametrize("kind", KINDS)
def test_gradgradcheck_cross_entropy_soft(gen, kind):
    x, t = randn(gen, 3, 5), soft_target(gen, kind, 3, 5)
    extra = ({"weight": torch.rand(5, generator=gen, dtype=F64) + 0.5,
              "label_smoothing": 0.2} if kind == "probs" else {"temperature": 0.8})
    gradgradcheck(lambda x, t: dct.cross_entropy(x, t, target_type=kind, validate=False,
                                                 **extra), x, t)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_gradgradcheck_kl(gen, kind, reverse):
    x, t = randn(gen, 3, 4, 2), soft_target(gen, kind, 3, 4, 2)
    gradgradcheck(lambda x, t: dct.kl_divergence(x, t, target_type=kind, reverse=reverse,
                                                 temperature=1.2, validate=False,
                                                 reduction="sum"), x, t)


@pytest.mark.parametrize("kind", KINDS + ["labels"])
def test_gradgradcheck_js(gen, kind):
    x = randn(gen, 4, 5)
    if kind == "labels":
        t = torch.tensor([0, 4, 2, 1])
        gradgradcheck(lambda x: dct.js_divergence(x, t, beta=0.3, reduction="none"), x)
        return
    t = soft_target(gen, kind, 4, 5)
    gradgradcheck(lambda x, t: dct.js_divergence(x, t, target_type=kind, beta=0.3,
                                                 temperature=0.9, validate=False), x, t)


@pytest.mark.parametrize("kind", ["logits", "log_probs", "probs"])
def test_gradgradcheck_entropy(gen, kind):
    z = randn(gen, 3, 6)
    # probabilities and log-probabilities are always validated: made from z, they stay on
    # the simplex under gradgradcheck's perturbations
    make = {"logits": lambda z: z, "log_probs": lambda z: torch.log_softmax(z, 1),
            "probs": lambda z: torch.softmax(z, 1)}[kind]
    gradgradcheck(lambda z: dct.entropy(make(z), input_type=kind, temperature=1.0 if
                                        kind != "logits" else 0.7, reduction="mean",
                                        base=3), z)


def test_gradgradcheck_bce(gen):
    x = randn(gen, 3, 4, scale=3.0)
    y = torch.rand(3, 4, generator=gen, dtype=F64).requires_grad_()
    w = (torch.rand(3, 1, generator=gen, dtype=F64) + 0.5).requires_grad_()
    pw = (torch.rand(4, generator=gen, dtype=F64) + 0.5).requires_grad_()
    gradgradcheck(lambda x, y, w, pw: dct.binary_cross_entropy_with_logits(
        x, y, w, "none", pw), x, y, w, pw)


def test_gradgradcheck_through_the_registered_op(gen):
    """torch.ops.divcore.* carries the same autograd formula (used by torch.compile)."""
    x, t = randn(gen, 3, 4), soft_target(gen, "logits", 3, 4)
    op = torch.ops.divcore.kl_divergence
    gradgradcheck(lambda x, t: op(x, t, None, 1, "logits", False, 1.5, "mean", None, True,
                                  None, True)[0], x, t)
    y = torch.tensor([1, 0, 3])
    gradgradcheck(lambda x: torch.ops.divcore.cross_entropy(
        x, y, None, None, 1, "labels", -100, 0.1, 1.0, "none", None, True, None, True)[0], x)


def test_hessian_vector_products_match_torch(gen):
    """A gradient-penalty step: d/dθ |∇_x loss|² through divcore equals torch's."""
    x = randn(gen, 6, 5)
    y = torch.randint(0, 5, (6,), generator=gen)
    teacher = torch.randn(6, 5, generator=gen, dtype=F64)
    results = []
    for ce, kl in ((dct.cross_entropy,
                    lambda x, t: dct.kl_divergence(x, t, target_type="logits",
                                                   temperature=2.0)),
                   (F.cross_entropy,
                    lambda x, t: F.kl_div(F.log_softmax(x / 2, 1), F.log_softmax(t / 2, 1),
                                          reduction="batchmean", log_target=True))):
        leaf = x.detach().clone().requires_grad_()
        loss = ce(leaf, y, label_smoothing=0.1) + kl(leaf, teacher)
        (g,) = torch.autograd.grad(loss, leaf, create_graph=True)
        (penalty,) = torch.autograd.grad(g.pow(2).sum(), leaf)
        results.append(penalty)
    assert results[1].abs().max() > 1e-3
    close(results[0], results[1])


# ---------------------------------------------------------------- torch's layout

@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_nc_d1_d2_matches_torch(gen, reduction, smoothing):
    x = randn(gen, 3, 5, 4, 2)
    y = torch.randint(0, 5, (3, 4, 2), generator=gen)
    y[0, 1, 1] = y[2, 3, 0] = 7
    w = torch.rand(5, generator=gen, dtype=F64) + 0.2
    results = []
    for fn in (dct.cross_entropy, F.cross_entropy):
        leaf = x.detach().clone().requires_grad_()
        out = fn(leaf, y, w, ignore_index=7, reduction=reduction, label_smoothing=smoothing)
        out.backward(torch.ones_like(out) if reduction != "none" else
                     torch.linspace(-1, 1, out.numel(), dtype=F64).reshape(out.shape))
        results.append((out, leaf.grad))
    close(results[0][0], results[1][0])
    close(results[0][1], results[1][1])


def test_class_dim_is_one_even_when_the_last_dim_has_the_same_size(gen):
    x = randn(gen, 4, 6, 6)  # numpy's default axis=-1 would be wrong here
    y = torch.randint(0, 6, (4, 6), generator=gen)
    close(dct.cross_entropy(x, y), F.cross_entropy(x, y))
    close(dct.cross_entropy(x[0, :, 0], y[0, 0]), F.cross_entropy(x[0, :, 0], y[0, 0]))


# ------------------------------------------------------------------- torch.func

def test_per_sample_gradients_equal_a_loop(gen):
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                torch.nn.Linear(8, 3)).double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    xs = torch.randn(5, 4, generator=gen, dtype=F64)
    ys = torch.randint(0, 3, (5,), generator=gen)
    teacher = torch.randn(5, 3, generator=gen, dtype=F64)

    def loss(params, x, y, t):
        out = func.functional_call(model, params, (x.unsqueeze(0),))
        return (dct.cross_entropy(out, y.unsqueeze(0), label_smoothing=0.1)
                + dct.kl_divergence(out, t.unsqueeze(0), target_type="logits"))

    per_sample = func.vmap(func.grad(loss), in_dims=(None, 0, 0, 0))(params, xs, ys, teacher)
    for i in range(5):
        model.zero_grad()
        loss(dict(model.named_parameters()), xs[i], ys[i], teacher[i]).backward()
        for name, p in model.named_parameters():
            close(per_sample[name][i], p.grad)


def test_jacrev_and_hessian_match_torch(gen):
    x = randn(gen, 3, 4).detach()
    y = torch.tensor([0, 3, 1])
    close(func.jacrev(lambda x: dct.cross_entropy(x, y, reduction="none"))(x),
          func.jacrev(lambda x: F.cross_entropy(x, y, reduction="none"))(x))
    close(func.jacrev(func.grad(lambda x: dct.cross_entropy(x, y)))(x),
          func.jacrev(func.grad(lambda x: F.cross_entropy(x, y)))(x))
    p = torch.softmax(torch.randn(3, 4, generator=gen, dtype=F64), 1)
    close(func.grad(lambda p: dct.kl_divergence(x, p))(p),
          func.grad(lambda p: F.kl_div(F.log_softmax(x, 1), p, reduction="batchmean"))(p))


def test_vmap_of_the_loss(gen):
    x = randn(gen, 4, 3, 5).detach()
    y = torch.randint(0, 5, (4, 3), generator=gen)
    got = func.vmap(lambda x, y: dct.cross_entropy(x, y))(x, y)
    close(got, torch.stack([F.cross_entropy(x[i], y[i]) for i in range(4)]))


# --------------------------------------------------------------- registered ops

def _opcheck(op, *args):
    result = torch.library.opcheck(op, args)
    assert set(result.values()) == {"SUCCESS"}, result


def test_opcheck(gen):
    x, x3 = randn(gen, 4, 5), randn(gen, 2, 5, 3)
    y = torch.tensor([0, 4, -100, 2])
    p = soft_target(gen, "probs", 4, 5)
    w = torch.rand(5, generator=gen, dtype=F64) + 0.5
    where = torch.ones(4, 5, dtype=torch.bool)
    where[:, 2] = False
    ops = torch.ops.divcore
    _opcheck(ops.cross_entropy.default, x, y, w, None, 1, "labels", -100, 0.1, 1.5,
             "mean", None, True, None, True)
    _opcheck(ops.cross_entropy.default, x3, torch.randint(0, 5, (2, 3), generator=gen),
             None, None, 1, "labels", -100, 0.0, 1.0, "none", 2.0, True, None, False)
    _opcheck(ops.cross_entropy.default, x, p, w, None, 1, "probs", -100, 0.0, 1.0,
             "sum", None, False, None, True)
    _opcheck(ops.kl_divergence.default, x, p, None, 1, "probs", True, 1.0, "mean", None,
             True, 1e-3, True)
    _opcheck(ops.js_divergence.default, x, p, None, 1, "probs", 0.4, 1.0, "none", None,
             False, None)
    _opcheck(ops.entropy.default, x, None, where, 1, "logits", 2.0, "mean", None, None)
    _opcheck(ops.binary_cross_entropy.default, x, torch.rand(4, 5, dtype=F64),
             w, None, "none", None)


# ------------------------------------------------------------------ torch.compile

def _compiled_training_run(backend):
    """A few steps of a compiled loss on fresh values: one graph, no graph break, no
    recompilation (error_on_recompile turns one into an error)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 4))
    ref = [p.detach().clone() for p in model.parameters()]

    def loss_fn(model, x, y, teacher):
        out = model(x)
        return (dct.cross_entropy(out, y, label_smoothing=0.1)
                + dct.kl_divergence(out, teacher, target_type="logits", temperature=2.0))

    compiled = torch.compile(loss_fn, fullgraph=True, backend=backend)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for _ in range(4):
            x = torch.randn(8, 6, generator=gen)
            y = torch.randint(0, 4, (8,), generator=gen)
            teacher = torch.randn(8, 4, generator=gen)
            model.zero_grad()
            loss = compiled(model, x, y, teacher)
            loss.backward()
            grads = [p.grad.clone() for p in model.parameters()]
            model.zero_grad()
            expected = loss_fn(model, x, y, teacher)
            expected.backward()
            close(loss, expected, rtol=1e-5, atol=1e-6)
            for g, p in zip(grads, model.parameters()):
                close(g, p.grad, rtol=1e-5, atol=1e-6)
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"] and not counters["recompiles"]
    assert any(not torch.equal(p.detach(), r) for p, r in zip(model.parameters(), ref))


def test_compile_fullgraph_training_step():
    _compiled_training_run("aot_eager")  # fake kernels + registered autograd, traced


@pytest.mark.skipif(not os.environ.get("DIVCORE_SLOW_TESTS"), reason="slow (inductor)")
def test_compile_fullgraph_training_step_inductor():
    _compiled_training_run("inductor")


# ------------------------------------------------------------ modules, dtypes

def test_modules_match_torch_nn(gen):
    x = randn(gen, 6, 4, 3)
    y = torch.randint(0, 4, (6, 3), generator=gen)
    w = torch.rand(4, generator=gen, dtype=F64) + 0.2
    close(dct.CrossEntropyLoss(w, label_smoothing=0.1)(x, y),
          torch.nn.CrossEntropyLoss(w, label_smoothing=0.1)(x, y))
    pw = torch.rand(3, generator=gen, dtype=F64) + 0.5
    t = torch.rand(6, 4, 3, generator=gen, dtype=F64)
    close(dct.BCEWithLogitsLoss(pos_weight=pw, reduction="sum")(x, t),
          torch.nn.BCEWithLogitsLoss(pos_weight=pw, reduction="sum")(x, t))
    p = torch.softmax(torch.randn(6, 4, 3, generator=gen, dtype=F64), 1)
    close(dct.KLDivergenceLoss(reduction="sum")(x, p),
          torch.nn.KLDivLoss(reduction="sum")(F.log_softmax(x, 1), p))
    close(dct.EntropyLoss()(x),
          torch.distributions.Categorical(logits=x.movedim(1, -1)).entropy().mean())
    assert "weight" in dict(dct.CrossEntropyLoss(w).named_buffers())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_every_loss(gen, dtype):
    x = (torch.randn(4, 5, generator=gen) * 2).to(dtype).requires_grad_()
    t = torch.softmax(torch.randn(4, 5, generator=gen), 1)
    for fn in (lambda x: dct.cross_entropy(x, torch.tensor([0, 1, 2, 3])),
               lambda x: dct.kl_divergence(x, t), lambda x: dct.js_divergence(x, t),
               lambda x: dct.entropy(x, reduction="sum"),
               lambda x: dct.binary_cross_entropy_with_logits(x, t)):
        x.grad = None
        loss = fn(x)
        loss.backward()
        assert loss.dtype == torch.float32 and x.grad.dtype == dtype
        ref = x.detach().float().requires_grad_()
        fn(ref).backward()
        close(x.grad, ref.grad, rtol=1e-2, atol=1e-2)


def test_torch_page_examples_run(monkeypatch):
    """docs/torch.md's examples (torch.compile with the quicker aot_eager backend)."""
    import functools
    import re

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "docs", "torch.md")
    if not os.path.isfile(path):
        pytest.skip("no docs/ (not a checkout)")
    with open(path, encoding="utf-8") as f:
        blocks = re.findall(r"^```python\n(.*?)^```", f.read(), re.S | re.M)
    assert len(blocks) >= 4
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile,
                                                            backend="aot_eager"))
    for i, code in enumerate(blocks):
        exec(compile(code, f"torch.md[{i}]", "exec"), {"__name__": "__docs__"})


# ------------------- the closed forms (create_graph) against divcore's fused kernels

def _grads(fn, leaves, create_graph):
    out = fn(*leaves)
    go = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    return torch.autograd.grad(out, leaves, go, create_graph=create_graph)


def _teacher(*shape):
    return torch.arange(float(math.prod(shape)), dtype=F64).reshape(shape).sin() * 4


CASES = {
    "ce labels, weight, smoothing, ignore, where, T, bits": lambda x, w, m, r: dct.cross_entropy(
        x, torch.tensor([[0, 3, -100], [2, 0, 4], [-100, 1, 1], [3, 4, 0]]), w,
        label_smoothing=0.2, temperature=0.7, where=m, base=2, reduction=r),
    "ce probs, weight, smoothing": lambda x, w, m, r: dct.cross_entropy(
        x, torch.softmax(_teacher(4, 5, 3), 1), w, label_smoothing=0.1, reduction=r),
    "kl teacher logits, where": lambda x, w, m, r: dct.kl_divergence(
        x, _teacher(4, 5, 3), target_type="logits", temperature=1.5, where=m, reduction=r),
    "kl reverse probs": lambda x, w, m, r: dct.kl_divergence(
        x, torch.softmax(_teacher(4, 5, 3) / 4, 1), reverse=True, reduction=r),
}


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_closed_forms_equal_the_fused_kernels(gen, case, reduction):
    """The gradient a graph-building backward computes in torch operations equals the one
    divcore's fused kernel computes (the plain backward), option by option."""
    x = randn(gen, 4, 5, 3)
    w = torch.rand(5, generator=gen, dtype=F64) + 0.3
    m = torch.ones(4, 5, 3, dtype=torch.bool)
    m[:, 1, 0] = False
    m[2, 4, :] = False

    def fn(x):
        return CASES[case](x, w, m, reduction)

    (kernel,) = _grads(fn, [x], False)
    (closed,) = _grads(fn, [x], True)
    assert closed.requires_grad
    close(closed, kernel)


def test_ignored_nan_rows_stay_out_of_second_derivatives():
    x = torch.tensor([[float("nan"), 1.0], [0.0, 1.0]], dtype=F64, requires_grad=True)
    loss = dct.cross_entropy(x, torch.tensor([-100, 1]))
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    (h,) = torch.autograd.grad(g[1, 0], x)
    assert torch.equal(g[0], torch.zeros(2, dtype=F64)) and torch.isfinite(h).all()


def test_sum_tol_reaches_the_numpy_call():
    p = torch.tensor([[0.5, 0.5 + 1e-3]], dtype=F64)  # beyond the default tolerance
    with pytest.raises(ValueError):
        dct.entropy(p, input_type="probs")
    close(dct.entropy(p, input_type="probs", sum_tol=1e-2),
          -(p * p.log()).sum(1))
    x = torch.zeros(1, 2, dtype=F64, requires_grad=True)
    with pytest.raises(ValueError):
        dct.kl_divergence(x, p)
    dct.kl_divergence(x, p, sum_tol=1e-2).backward()
    assert torch.isfinite(x.grad).all()


def test_large_gradient_handed_over_accumulates_correctly(gen):
    """A large loss's backward hands the saved gradient over without a pass over memory;
    accumulating it over repeated backward calls must still add, not alias."""
    x = torch.randn(300, 256, generator=gen).requires_grad_()  # >= 65536 elements
    y = torch.randint(0, 256, (300,), generator=gen)
    loss = dct.cross_entropy(x, y)
    for _ in range(3):
        loss.backward(retain_graph=True)
    loss.backward()
    ref = x.detach().clone().requires_grad_()
    F.cross_entropy(ref, y).backward()
    close(x.grad, 4 * ref.grad, rtol=1e-5, atol=1e-8)
    x.grad = None
    (dct.cross_entropy(x, y) * 3).backward()  # an incoming gradient other than 1
    close(x.grad, 3 * ref.grad, rtol=1e-5, atol=1e-8)


def test_vmap_rule_of_the_registered_op(gen):
    x = randn(gen, 3, 4, 5).detach()
    y = torch.randint(0, 5, (3, 4), generator=gen)
    args = (None, None, 1, "labels", -100, 0.0, 1.0, "mean", None, True, None, False)
    got = torch.vmap(lambda x, y: torch.ops.divcore.cross_entropy(x, y, *args)[0])(x, y)
    close(got, torch.stack([F.cross_entropy(x[i], y[i]) for i in range(3)]))
