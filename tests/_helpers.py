"""Shared helpers for the divcore test-suite (imported by conftest.py and the test modules).

Nothing here is derived from divcore's own output: the oracle below is an independent,
straightforward float64 implementation of the semantics in SPEC.md and docs/design.md
(row by row, math.fsum), used to check the public API of *both* backends (the API layer
is shared, so comparing compiled with reference alone would not catch a bug in it).
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)

ALL_FUNCS = (
    "logsumexp",
    "log_softmax",
    "softmax",
    "cross_entropy",
    "kl_divergence",
    "entropy",
    "decompose",
)


# --------------------------------------------------------------------------- dtypes


def compute_dtype(dtype):
    """The dtype divcore computes in (and returns) for input `dtype` (SPEC §4)."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return np.dtype(np.float64)
    if dtype in (np.dtype(np.float32), np.dtype(np.float16)):
        return np.dtype(np.float32)
    if dtype.kind in "iub":
        return np.dtype(np.float64)
    raise TypeError(dtype)


def eps_of(dtype):
    return EPS32 if compute_dtype(dtype) == np.float32 else EPS64


# ---------------------------------------------------------------------- generators


def random_logits(rng, shape, dtype=np.float64, *, scale=3.0, offset=0.0, p_neginf=0.0,
                  p_nan=0.0):
    """Normal(offset, scale) logits with optional -inf / NaN sprinkled in."""
    x = rng.standard_normal(shape) * scale + offset
    if p_neginf:
        x[rng.random(shape) < p_neginf] = -np.inf
    if p_nan:
        x[rng.random(shape) < p_nan] = np.nan
    return x.astype(dtype)


def random_probs(rng, shape, axis=-1, *, p_zero=0.0, zero_where=None, sharp=2.0):
    """float64 probability vectors along `axis` (rows that would be all zero get a
    uniform distribution), optionally with exact zeros."""
    p = np.exp(rng.standard_normal(shape) * sharp)
    if p_zero:
        p[rng.random(shape) < p_zero] = 0.0
    if zero_where is not None:
        p[np.broadcast_to(zero_where, shape)] = 0.0
    s = p.sum(axis=axis, keepdims=True)
    empty = np.broadcast_to(s == 0, p.shape)
    fill = np.ones(shape)
    if zero_where is not None:
        # an all-zero row becomes uniform over its allowed entries (if it has any)
        allowed = ~np.broadcast_to(zero_where, shape)
        has_allowed = np.broadcast_to(allowed.any(axis=axis, keepdims=True), shape)
        fill = np.where(has_allowed & ~allowed, 0.0, 1.0)
    p = np.where(empty, fill, p)
    p = p / p.sum(axis=axis, keepdims=True)
    return p


def with_layout(a, layout):
    """The same values as `a` in another memory layout."""
    a = np.asarray(a)
    if layout == "C":
        return np.ascontiguousarray(a)
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        # every other element of a bigger array whose gaps hold NaN: a kernel that reads
        # the gaps produces NaN and fails the comparison.
        big = np.empty(tuple(2 * s + 1 for s in a.shape), dtype=a.dtype)
        if a.dtype.kind == "f":
            big.fill(np.nan)
        else:
            big.fill(7)
        sl = tuple(slice(1, 2 * s + 1, 2) for s in a.shape)
        big[sl] = a
        return big[sl]
    if layout == "reversed":
        rev = tuple(slice(None, None, -1) for _ in a.shape)
        return np.ascontiguousarray(a[rev])[rev]
    raise ValueError(layout)


# ---------------------------------------------------------------------- comparisons


def ulp_error(actual, exact, dtype=np.float64):
    """|actual - exact| in units of the spacing of `exact` rounded to `dtype`.

    `exact` may be an mpmath mpf (the difference is then taken in mpmath) or a float."""
    try:
        import mpmath
    except ImportError:  # pragma: no cover
        mpmath = None
    if mpmath is not None and isinstance(exact, mpmath.mpf):
        diff = float(abs(mpmath.mpf(float(actual)) - exact))
        ex = float(exact)
    else:
        diff = abs(float(actual) - float(exact))
        ex = float(exact)
    sp = float(np.spacing(np.abs(np.asarray(ex, dtype=dtype))))
    return diff / sp


def assert_ulp(actual, exact, max_ulp, dtype=np.float64, what=""):
    err = ulp_error(actual, exact, dtype)
    assert err <= max_ulp, (
        f"{what}: got {float(actual)!r}, exact {float(exact)!r}: {err:.2f} ulp > {max_ulp}"
    )


def assert_same_kind(a, b):
    """Same Python type (numpy scalar vs ndarray), dtype and shape."""
    assert type(a) is type(b), (type(a), type(b))
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    assert a_arr.dtype == b_arr.dtype, (a_arr.dtype, b_arr.dtype)
    assert a_arr.shape == b_arr.shape, (a_arr.shape, b_arr.shape)


def assert_allclose_nan(actual, expected, rtol, atol, msg=""):
    """assert_allclose that also requires infinities and NaNs in the same places."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, (a.shape, e.shape, msg)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"NaN positions {msg}")
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(e), err_msg=f"+inf {msg}")
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(e), err_msg=f"-inf {msg}")
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True, err_msg=msg)


# -------------------------------------------------------------------------- oracle
#
# A float64 row-by-row implementation of the semantics in SPEC §3/§4 and docs/design.md.


def _row_lse(r):
    if r.size == 0:
        return -math.inf
    if np.isnan(r).any() or np.isposinf(r).any():
        return math.nan
    if not np.isfinite(r).any():
        return -math.inf
    m = float(r.max())
    return m + math.log(math.fsum(np.exp(r - m).tolist()))


def _prep(x, axis, where, temperature=1.0):
    x = np.asarray(x).astype(np.float64)
    if where is None:
        m = np.ones(x.shape, dtype=bool)
    else:
        m = np.broadcast_to(np.asarray(where, dtype=bool), x.shape)
    x = np.moveaxis(x, axis, -1)
    m = np.moveaxis(m, axis, -1)
    lead = x.shape[:-1]
    c = x.shape[-1]
    x2 = x.reshape(-1, c) / temperature
    m2 = m.reshape(-1, c)
    xm = np.where(m2, x2, -np.inf)
    return xm, m2, lead, c


def _soft_prep(t, axis, c):
    t = np.moveaxis(np.asarray(t).astype(np.float64), axis, -1)
    return t.reshape(-1, c)


def _reduce(vals, denom, reduction, lead, out_dtype):
    vals = np.asarray(vals, dtype=np.float64)
    if reduction == "none":
        res = vals.reshape(lead)
        return res.astype(out_dtype)[()]
    total = math.fsum(vals.tolist()) if not np.isnan(vals).any() else math.nan
    if reduction == "sum":
        return out_dtype.type(total)
    d = math.fsum(np.asarray(denom, dtype=np.float64).tolist())
    return out_dtype.type(math.nan if d == 0 else total / d)


def _base_div(base):
    return 1.0 if base is None else math.log(base)


def oracle_logsumexp(x, axis=-1, keepdims=False, where=None):
    out_dtype = compute_dtype(np.asarray(x).dtype)
    xm, _, lead, _ = _prep(x, axis, where)
    vals = np.array([_row_lse(r) for r in xm]).reshape(lead)
    if keepdims:
        vals = np.expand_dims(vals, axis)
    return vals.astype(out_dtype)[()]


def oracle_log_softmax(x, axis=-1, temperature=1.0, where=None, exponentiate=False):
    x_arr = np.asarray(x)
    out_dtype = compute_dtype(x_arr.dtype)
    xm, _, lead, c = _prep(x_arr, axis, where, temperature)
    out = np.empty_like(xm)
    for i, r in enumerate(xm):
        lse = _row_lse(r)
        if math.isnan(lse) or lse == -math.inf:
            out[i] = math.nan
        else:
            out[i] = r - lse
    if exponentiate:
        out = np.exp(out)
    out = np.moveaxis(out.reshape(lead + (c,)), -1, axis)
    return out.astype(out_dtype)


def _label_row(r, m, y, w, ignore_index, eps):
    c = r.size
    if ignore_index is not None and y == ignore_index:
        return 0.0, 0.0, 0.0, 0.0
    if not 0 <= y < c:
        raise IndexError(f"label {y} out of range")
    W = np.ones(c) if w is None else np.asarray(w, dtype=np.float64)
    rw = float(W[y])
    lse = _row_lse(r)
    # target p' and its weighted entropy
    p = np.zeros(c)
    if eps < 1:
        p[y] += 1 - eps
    ceff = int(m.sum())
    if eps > 0 and ceff > 0:
        p = p + (eps / ceff) * m
    sel = p > 0
    h = -math.fsum((W[sel] * p[sel] * np.log(p[sel])).tolist())
    if math.isnan(lse) or lse == -math.inf:
        # no distribution: ce and kl are nan; so is h, except that without smoothing the
        # target is one-hot and design.md defines h as the constant 0.
        return math.nan, (0.0 if eps == 0 else math.nan), math.nan, rw
    if eps == 0:
        ce = rw * (lse - r[y])
    else:
        terms = []
        if eps < 1:
            terms.append((1 - eps) * rw * (lse - r[y]))
        terms.extend(((eps / ceff) * W[m] * (lse - r[m])).tolist())
        ce = math.fsum(terms)
    kl = ce - h if eps > 0 else ce
    if w is None and not math.isnan(kl):  # only a true KL is >= 0; weighted may be negative
        kl = max(kl, 0.0)
    return ce, h, kl, rw


def _soft_row(r, m, t, ttype, temperature, w, eps, reverse):
    c = r.size
    lse = _row_lse(r)
    if math.isnan(lse) or lse == -math.inf:
        return math.nan, math.nan, math.nan
    logq = r - lse
    with np.errstate(divide="ignore", invalid="ignore"):
        if ttype == "probs":
            p = t.copy()
            logp = np.log(p)
        elif ttype == "log_probs":
            logp = t.copy()
            p = np.exp(logp)
        elif ttype == "logits":
            tt = np.where(m, t / temperature, -np.inf)
            lt = _row_lse(tt)
            if math.isnan(lt) or lt == -math.inf:  # the target has no distribution
                return math.nan, math.nan, math.nan
            logp = tt - lt
            p = np.exp(logp)
        else:
            raise ValueError(ttype)
        if eps:
            ceff = int(m.sum())
            p = (1 - eps) * p + (eps / ceff) * m
            logp = np.log(p)
    W = np.ones(c) if w is None else np.asarray(w, dtype=np.float64)
    if reverse:
        q = np.exp(logq)
        sel = q > 0
        kl = math.fsum((q[sel] * (logq[sel] - logp[sel])).tolist())
        return None, None, max(kl, 0.0)
    sel = p > 0
    ce = math.fsum((W[sel] * p[sel] * (lse - r[sel])).tolist())
    h = -math.fsum((W[sel] * p[sel] * logp[sel]).tolist())
    if math.isinf(ce):
        kl = math.inf
    else:
        kl = math.fsum((W[sel] * p[sel] * (logp[sel] - logq[sel])).tolist())
        if w is None:  # only a true KL is >= 0; a weighted one may be negative
            kl = max(kl, 0.0)
    return ce, h, kl


def _losses(logits, target, axis, target_type, weight, ignore_index, label_smoothing,
            temperature, where, reverse):
    x_arr = np.asarray(logits)
    out_dtype = compute_dtype(x_arr.dtype)
    xm, m2, lead, c = _prep(x_arr, axis, where, temperature)
    t_arr = np.asarray(target)
    if target_type == "auto":
        target_type = "labels" if t_arr.dtype.kind in "iu" else "probs"
    n = xm.shape[0]
    ce = np.zeros(n)
    h = np.zeros(n)
    kl = np.zeros(n)
    if target_type == "labels":
        y = t_arr.reshape(-1)
        rw = np.zeros(n)
        for i in range(n):
            ce[i], h[i], kl[i], rw[i] = _label_row(
                xm[i], m2[i], int(y[i]), weight, ignore_index, label_smoothing
            )
        denom = rw
    else:
        t2 = _soft_prep(t_arr, axis, c)
        for i in range(n):
            ce[i], h[i], kl[i] = _soft_row(
                xm[i], m2[i], t2[i], target_type, temperature, weight, label_smoothing, reverse
            )
        denom = np.ones(n)
    return ce, h, kl, denom, lead, out_dtype


def oracle_cross_entropy(logits, target, axis=-1, target_type="auto", weight=None,
                         ignore_index=-100, label_smoothing=0.0, temperature=1.0, where=None,
                         reduction="mean", base=None, validate=True, _want="ce"):
    ce, h, kl, denom, lead, out_dtype = _losses(
        logits, target, axis, target_type, weight, ignore_index, label_smoothing,
        temperature, where, False,
    )
    b = _base_div(base)
    parts = {"ce": ce, "h": h, "kl": kl}
    if _want == "all":
        return tuple(_reduce(parts[k] / b, denom, reduction, lead, out_dtype)
                     for k in ("ce", "h", "kl"))
    return _reduce(parts[_want] / b, denom, reduction, lead, out_dtype)


def oracle_decompose(logits, target, **kw):
    return oracle_cross_entropy(logits, target, _want="all", **kw)


def oracle_kl_divergence(logits, target, axis=-1, target_type="auto", reverse=False,
                         temperature=1.0, where=None, reduction="mean", base=None,
                         validate=True):
    ce, h, kl, denom, lead, out_dtype = _losses(
        logits, target, axis, target_type, None, None, 0.0, temperature, where, reverse,
    )
    return _reduce(kl / _base_div(base), denom, reduction, lead, out_dtype)


def oracle_entropy(x, axis=-1, input_type="logits", temperature=1.0, where=None,
                   reduction="none", base=None):
    x_arr = np.asarray(x)
    out_dtype = compute_dtype(x_arr.dtype)
    if input_type == "logits":
        xm, m2, lead, c = _prep(x_arr, axis, where, temperature)
        vals = []
        for r in xm:
            lse = _row_lse(r)
            if math.isnan(lse) or lse == -math.inf:
                vals.append(math.nan)
                continue
            q = np.exp(r - lse)
            sel = q > 0
            vals.append(math.fsum((q[sel] * (lse - r[sel])).tolist()))
    else:
        xm, m2, lead, c = _prep(x_arr, axis, where, 1.0)
        raw = _soft_prep(x_arr, axis, c)
        vals = []
        for r, mk in zip(raw, m2):
            with np.errstate(divide="ignore", invalid="ignore"):
                if input_type == "probs":
                    p, lp = r, np.log(r)
                else:
                    p, lp = np.exp(r), r
            sel = mk & (p > 0)
            vals.append(-math.fsum((p[sel] * lp[sel]).tolist()))
    vals = np.asarray(vals) / _base_div(base)
    return _reduce(vals, np.ones(len(vals)), reduction, lead, out_dtype)


def oracle_softmax(x, axis=-1, temperature=1.0, where=None):
    return oracle_log_softmax(x, axis, temperature, where, exponentiate=True)


ORACLES = {
    "logsumexp": oracle_logsumexp,
    "log_softmax": oracle_log_softmax,
    "softmax": oracle_softmax,
    "cross_entropy": oracle_cross_entropy,
    "kl_divergence": oracle_kl_divergence,
    "entropy": oracle_entropy,
    "decompose": oracle_decompose,
}


def oracle(fname, args, kwargs):
    return ORACLES[fname](*args, **kwargs)


# ------------------------------------------------------------------------- cases


class Case:
    """One call of a public function, with what the comparison needs to know."""

    def __init__(self, fname, args, kwargs, dtype, scale, nrows, desc):
        self.fname = fname
        self.args = args
        self.kwargs = kwargs
        self.dtype = np.dtype(dtype)
        self.scale = scale
        self.nrows = nrows
        self.desc = desc

    def __repr__(self):
        return f"Case({self.fname}, {self.desc}, kwargs={sorted(self.kwargs)})"


DEFAULT_OPTIONS = dict(
    scale=3.0,
    offset=0.0,
    p_neginf=0.0,
    p_nan=0.0,
    where="none",          # "none" | "full" | "class"
    ttype="probs",         # labels | probs | log_probs | logits
    auto=False,            # pass target_type="auto" (or omit it) instead of the real type
    label_dtype="int64",
    ignore_index="default",  # "default" | an int
    p_ignore=0.0,
    weight=False,
    smoothing=None,
    temperature=None,
    reduction=None,
    base=None,
    reverse=None,
    validate=None,
    keepdims=None,
    input_type="logits",
    zero_masked_target=True,
    layout="C",
    tlayout="C",
    target_dtype="compute",  # "compute" | "float64"
)


def make_case(fname, dtype, shape, axis, seed, **options):
    """Build a valid call of `fname` (random data from `seed`).

    Keyword arguments left at None in `options` are not passed (the default is used)."""
    o = dict(DEFAULT_OPTIONS)
    unknown = set(options) - set(o)
    if unknown:
        raise TypeError(unknown)
    o.update(options)
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    ndim = len(shape)
    ax = axis % ndim
    c = shape[ax]
    lead = shape[:ax] + shape[ax + 1:]
    nrows = int(np.prod(lead)) if lead else 1
    cd = compute_dtype(dtype)
    kwargs = {}
    if axis != -1 or rng.random() < 0.5:
        kwargs["axis"] = axis

    x = random_logits(rng, shape, dtype, scale=o["scale"], offset=o["offset"],
                      p_neginf=o["p_neginf"], p_nan=o["p_nan"])

    where = None
    if o["where"] == "full":
        where = rng.random(shape) < 0.8
    elif o["where"] == "class":
        wshape = [1] * ndim
        wshape[ax] = c
        where = (rng.random(c) < 0.8).reshape(wshape)
    if where is not None:
        kwargs["where"] = where
    masked = np.isneginf(x.astype(np.float64))
    if where is not None:
        masked = masked | ~np.broadcast_to(where, shape)

    temperature = o["temperature"]
    t_eff = 1.0 if temperature is None else temperature
    finite = x[np.isfinite(x)].astype(np.float64)
    xmax = float(np.abs(finite).max()) if finite.size else 0.0
    scale = 1.0 + xmax / t_eff + math.log(c + 1)
    args = [x]

    def soft_target(ttype):
        tdtype = cd if o["target_dtype"] == "compute" else np.dtype(np.float64)
        if ttype == "logits":
            t = random_logits(rng, shape, dtype, scale=o["scale"], offset=o["offset"],
                              p_neginf=o["p_neginf"])
            return t, None
        p = random_probs(rng, shape, ax, p_zero=0.2,
                         zero_where=masked if o["zero_masked_target"] else None)
        if ttype == "probs":
            return p.astype(tdtype), p
        with np.errstate(divide="ignore"):
            return np.log(p).astype(tdtype), p

    if fname in ("logsumexp",):
        if o["keepdims"] is not None:
            kwargs["keepdims"] = o["keepdims"]
    elif fname in ("log_softmax", "softmax"):
        if temperature is not None:
            kwargs["temperature"] = temperature
    elif fname == "entropy":
        it = o["input_type"]
        if it != "logits":
            # probs / log_probs input is validated on its unmasked entries (design.md), so
            # every row keeps at least one unmasked class and no mass on masked ones.
            if where is not None:
                first = [slice(None)] * ndim
                first[ax] = slice(0, 1)
                where = where.copy()
                where[tuple(first)] = True
                kwargs["where"] = where
                masked = ~np.broadcast_to(where, shape)
            else:
                masked = None
            p = random_probs(rng, shape, ax, p_zero=0.2, zero_where=masked)
            xdtype = cd
            if it == "probs":
                x = p.astype(xdtype)
            else:
                with np.errstate(divide="ignore"):
                    x = np.log(p).astype(xdtype)
            args = [x]
            scale = 1.0 + math.log(c + 1)
            kwargs["input_type"] = it
        else:
            if rng.random() < 0.5:
                kwargs["input_type"] = "logits"
            if temperature is not None:
                kwargs["temperature"] = temperature
        if o["reduction"] is not None:
            kwargs["reduction"] = o["reduction"]
        if o["base"] is not None:
            kwargs["base"] = o["base"]
    elif fname in ("cross_entropy", "kl_divergence", "decompose"):
        ttype = o["ttype"]
        if ttype == "labels":
            labels = rng.integers(0, c, size=lead) if c > 0 else np.zeros(lead, np.int64)
            ii = o["ignore_index"]
            if fname != "kl_divergence":
                ign = -100 if ii == "default" else ii
                if ii != "default":
                    kwargs["ignore_index"] = ii
                if o["p_ignore"]:
                    labels = np.where(rng.random(lead) < o["p_ignore"], ign, labels)
            labels = np.asarray(labels).astype(o["label_dtype"])
            target = labels if lead else (int(labels) if rng.random() < 0.5 else labels[()])
        else:
            target, _ = soft_target(ttype)
            target = with_layout(target, o["tlayout"])
            if ttype == "logits":
                tf = target[np.isfinite(target)].astype(np.float64)
                if tf.size:
                    scale += float(np.abs(tf).max()) / t_eff
        args.append(target)
        if o["auto"] and ttype in ("labels", "probs"):
            if rng.random() < 0.5:
                kwargs["target_type"] = "auto"
        else:
            kwargs["target_type"] = ttype
        if fname != "kl_divergence":
            if o["weight"] and ttype in ("labels", "probs"):
                w = rng.uniform(0.1, 2.0, size=c)
                kwargs["weight"] = w.astype(cd) if rng.random() < 0.5 else w
                scale *= 2.0
            if o["smoothing"] is not None and ttype in ("labels", "probs"):
                kwargs["label_smoothing"] = o["smoothing"]
        else:
            if o["reverse"] is not None and ttype != "labels":
                kwargs["reverse"] = o["reverse"]
        if temperature is not None:
            kwargs["temperature"] = temperature
        if o["reduction"] is not None:
            kwargs["reduction"] = o["reduction"]
        if o["base"] is not None:
            kwargs["base"] = o["base"]
        if o["validate"] is not None:
            kwargs["validate"] = o["validate"]
    else:
        raise ValueError(fname)

    if o["base"] is not None and fname not in ("logsumexp", "log_softmax", "softmax"):
        scale *= max(1.0, 1.0 / abs(math.log(o["base"])))
    args[0] = with_layout(args[0], o["layout"])
    desc = (f"dtype={dtype}, shape={shape}, axis={axis}, seed={seed}, "
            + ", ".join(f"{k}={v!r}" for k, v in options.items()))
    return Case(fname, tuple(args), kwargs, dtype, scale, nrows, desc)


def tolerances(case, eps_mult32=16.0, rtol64=1e-12, atol64=1e-13):
    """(rtol, atol) for comparing two implementations' results of `case`."""
    cd = compute_dtype(case.dtype)
    if case.fname == "entropy" and case.kwargs.get("input_type", "logits") != "logits":
        cd = compute_dtype(case.args[0].dtype)
    if cd == np.float32:
        rtol, atol = eps_mult32 * EPS32, eps_mult32 * EPS32 * case.scale
    else:
        rtol, atol = rtol64, atol64 * case.scale
    if case.fname == "softmax":
        # softmax values: the error of exp(x - lse) is relative, about eps * |x - lse|.
        return rtol * case.scale, (1e-37 if cd == np.float32 else 1e-300)
    if case.kwargs.get("reduction") == "sum" or (
        case.fname == "entropy" and case.kwargs.get("reduction") == "sum"
    ):
        atol *= max(case.nrows, 1)
    return rtol, atol


# ------------------------------------------------------------------ finite differences


def fd_gradient(f, x, h):
    """Five-point central differences of the scalar function `f` at the float64 array `x`
    (truncation error O(h^4), rounding error O(eps·|f|/h)). Non-finite entries get 0: a
    -inf logit stays -inf when perturbed, so the function does not depend on it."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        if not np.isfinite(x[idx]):
            continue
        vals = []
        for k in (-2, -1, 1, 2):
            xk = x.copy()
            xk[idx] += k * h
            vals.append(float(f(xk)))
        g[idx] = (vals[0] - 8.0 * vals[1] + 8.0 * vals[2] - vals[3]) / (12.0 * h)
    return g


# --------------------------------------------------------------------------- SIMD levels

SIMD_LEVELS = ("baseline", "avx2", "avx512")

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def run_at_simd_level(level, script):
    """Run the Python source `script` in a subprocess whose compiled core is capped at
    instruction set `level` (DIVCORE_SIMD: the level is chosen once per process, so each one
    needs its own), with tests/ importable. The script prints one JSON object whose "simd"
    is divcore._core.simd_path(); that object is returned. Skips the calling test where this
    CPU lacks the level."""
    env = dict(os.environ, DIVCORE_SIMD=level)
    env.pop("DIVCORE_BACKEND", None)
    source = f"import sys; sys.path.insert(0, {TESTS_DIR!r})\n" + script
    done = subprocess.run([sys.executable, "-c", source], env=env, capture_output=True,
                          text=True, check=True)
    got = json.loads(done.stdout)
    if level != "baseline" and got["simd"] != level:
        pytest.skip(f"this CPU has no {level} (got {got['simd']})")
    assert got["simd"] == level
    return got
