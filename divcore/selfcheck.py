"""`divcore selfcheck` (also `python -m divcore.selfcheck`): check the compiled core
against the pure-Python reference on this machine.

Run it after installing a wheel on an unusual CPU, a new compiler or a new libm: it calls
every public function on generated inputs (random shapes, dtypes, layouts and keywords)
and on adversarial ones (±inf, NaN, ±0, subnormals, ±max, rows without a finite value,
huge offsets, rows across the kernels' block sizes) with both backends and compares:

  - results: the same type, dtype and shape, NaN and ±inf in the same places, values
    within a few ulp of the compute dtype scaled by the size of the terms
    (|logits|/T + log C);
  - errors: the same exception type and message.

Prints the number of cases tried, the largest error seen (as a fraction of the allowed
one) and each disagreement; exit status 0 when all agree, 1 on a disagreement, 2 when
the compiled core is not live (nothing to check). A few seconds with the defaults.
"""
import argparse
import math
import sys
import time
import warnings

import numpy as np

INF, NAN = math.inf, math.nan
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)
F64_TINY = float(np.finfo(np.float64).smallest_subnormal)
F32_MAX = float(np.finfo(np.float32).max)
F64_MAX = float(np.finfo(np.float64).max)
LOSSES = ("cross_entropy", "kl_divergence", "decompose", "js_divergence",
          "cross_entropy_and_grad", "kl_divergence_and_grad")
ROWWISE = ("logsumexp", "log_softmax", "softmax", "entropy")


class Case:
    """One call: function name, positional arguments, keywords, and the magnitude of the
    terms involved (for the tolerance)."""

    def __init__(self, fname, args, kwargs, scale, what):
        self.fname, self.args, self.kwargs, self.scale, self.what = fname, args, kwargs, scale, what

    def __repr__(self):
        shown = {k: (f"<array {v.dtype} {v.shape}>" if isinstance(v, np.ndarray) else v)
                 for k, v in self.kwargs.items()}
        shapes = [f"{a.dtype}{a.shape}" if isinstance(a, np.ndarray) else repr(a)
                  for a in self.args]
        return f"{self.fname}({', '.join(shapes)}, **{shown})  [{self.what}]"


# ---------------------------------------------------------------------- generation

def _scale(x, temperature=1.0):
    a = np.asarray(x, dtype=np.float64)
    fin = np.abs(a[np.isfinite(a)])
    top = float(fin.max()) if fin.size else 0.0
    return 1.0 + top / temperature + math.log(a.shape[-1] + 1 if a.ndim else 2)


def _probs(rng, shape, p_zero=0.2):
    p = np.exp(rng.standard_normal(shape) * 2)
    p[rng.random(shape) < p_zero] = 0.0
    p[..., 0] += (p.sum(-1) == 0)  # no all-zero row
    return p / p.sum(-1, keepdims=True)


def _layout(rng, a):
    """The same values in a random memory layout (strided, reversed, Fortran, swapped)."""
    kind = rng.integers(0, 5)
    if kind == 1 and a.ndim:
        big = np.full(tuple(2 * s + 1 for s in a.shape), np.nan, dtype=a.dtype)
        sl = tuple(slice(1, None, 2) for _ in a.shape)
        big[sl] = a
        return big[sl]
    if kind == 2:
        rev = tuple(slice(None, None, -1) for _ in a.shape)
        return np.ascontiguousarray(a[rev])[rev]
    if kind == 3:
        return np.asfortranarray(a)
    if kind == 4 and a.dtype.kind == "f":
        return a.astype(a.dtype.newbyteorder())
    return a


def generated_cases(rng, count):
    """`count` random valid calls over every function, dtype, layout and keyword."""
    cases = []
    names = ROWWISE + LOSSES + ("binary_cross_entropy",)
    for k in range(count):
        fname = names[k % len(names)]
        dtype = np.dtype(("float16", "float32", "float64", "float64")[rng.integers(0, 4)])
        n, c = int(rng.integers(0, 5)), int(rng.choice([1, 2, 3, 7, 16, 33, 513]))
        x = rng.standard_normal((n, c)) * rng.choice([0.1, 1.0, 5.0, 40.0]) \
            + rng.choice([0.0, -50.0, 300.0])
        if rng.random() < 0.3:
            x[rng.random((n, c)) < 0.2] = -INF
        x = x.astype(dtype)
        kw = {}
        t = float(rng.choice([1.0, 1.0, 0.5, 3.0]))
        if rng.random() < 0.3 and fname != "binary_cross_entropy":
            kw["where"] = rng.random((n, c)) < 0.8
        if fname == "binary_cross_entropy":
            y = rng.random((n, c)).round(int(rng.integers(0, 2))).astype(dtype)
            if rng.random() < 0.5:
                kw["pos_weight"] = rng.uniform(0.1, 3.0, c)
            if rng.random() < 0.5:
                kw["weight"] = rng.uniform(0.1, 2.0, (n, c))
            kw["reduction"] = str(rng.choice(["none", "sum", "mean"]))
            cases.append(Case(fname, [_layout(rng, x), y], kw, 3.0 * _scale(x) * max(n * c, 1)
                              if kw["reduction"] == "sum" else 3.0 * _scale(x), "generated"))
            continue
        if fname in ROWWISE:
            if fname != "logsumexp":
                kw["temperature"] = t
            if fname == "entropy":
                kw["reduction"] = str(rng.choice(["none", "sum", "mean"]))
            cases.append(Case(fname, [_layout(rng, x)], kw, _scale(x, t) * max(n, 1), "generated"))
            continue
        ttype = str(rng.choice(["labels", "probs", "log_probs", "logits"]))
        if fname == "decompose" or fname.startswith("cross_entropy"):
            if ttype in ("labels", "probs") and rng.random() < 0.5:
                kw["weight"] = rng.uniform(0.1, 2.0, c)
            if ttype in ("labels", "probs") and rng.random() < 0.3:
                kw["label_smoothing"] = float(rng.choice([0.1, 0.5, 1.0]))
            if ttype == "labels" and rng.random() < 0.3:
                kw["ignore_index"] = int(rng.integers(0, c))
        if fname.startswith("kl_divergence") and ttype != "labels" and rng.random() < 0.5:
            kw["reverse"] = True
        if fname == "js_divergence":
            kw["beta"] = float(rng.choice([0.5, 0.1, 0.9, 0.0, 1.0]))
        if ttype == "labels":
            target = rng.integers(0, c, n)
        elif ttype == "logits":
            target = (rng.standard_normal((n, c)) * 3).astype(dtype)
        else:
            p = _probs(rng, (n, c)).astype(dtype if dtype != np.float16 else np.float32)
            with np.errstate(divide="ignore"):
                target = p if ttype == "probs" else np.log(p)
            kw["validate"] = False  # a float32 target may sum off 1 by more than √eps
        kw["target_type"] = ttype
        kw["temperature"] = t
        kw["reduction"] = str(rng.choice(["none", "sum", "mean"]))
        scale = _scale(x, t) * (2.0 if "weight" in kw else 1.0)
        if ttype == "logits":
            scale += _scale(target, t)
        if kw["reduction"] == "sum":
            scale *= max(n, 1)
        cases.append(Case(fname, [_layout(rng, x), target], kw, scale, "generated"))
    return cases


ADVERSARIAL_ROWS = [
    ("-inf entries", [0.0, -INF, 1.0, -INF]),
    ("all -inf", [-INF, -INF, -INF]),
    ("NaN", [1.0, NAN, 2.0]),
    ("+inf", [0.0, INF, 1.0]),
    ("+inf and -inf", [INF, -INF, 0.0]),
    ("±0", [0.0, -0.0, 0.0]),
    ("max", [F64_MAX, F64_MAX, 0.0]),
    ("-max", [-F64_MAX, 0.0, -F64_MAX]),
    ("float32 max", [F32_MAX, -F32_MAX, 1.0]),
    ("subnormals", [F64_TINY, -F64_TINY, F32_TINY, 0.0]),
    ("confident", [60.0, 0.0, 0.0, 0.0]),
    ("very confident", [800.0, 0.0, -800.0]),
    ("huge offset", [1e6, 1e6 + 1.0, 1e6 - 1.0]),
    ("negative offset", [-1e6, -1e6 + 2.0, -1e6 - 1.0]),
    ("one class", [3.5]),
    ("ties", [7.0] * 9),
    ("block edge 512", None),
    ("block edge 513", None),
    ("long row", None),
]


def _adversarial_row(name, values, dtype, rng):
    if values is None:
        c = {"block edge 512": 512, "block edge 513": 513, "long row": 4099}[name]
        values = rng.standard_normal(c) * 4
        values[rng.integers(0, c)] = 30.0
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float64).astype(dtype)


def adversarial_cases(rng):
    """Every function on rows made of special values, in both compute dtypes."""
    cases = []
    for dtype in (np.float32, np.float64):
        for name, values in ADVERSARIAL_ROWS:
            row = _adversarial_row(name, values, dtype, rng)
            c = row.shape[0]
            x = np.stack([row, row[::-1].copy()])
            scale = _scale(x)
            what = f"adversarial {name}, {np.dtype(dtype).name}"
            for f in ROWWISE:
                cases.append(Case(f, [x], {}, scale * 2, what))
            top = int(np.nanargmax(np.where(np.isnan(x.astype(np.float64)), -INF, x), axis=-1)[0])
            labels = np.array([top, c - 1])
            probs = _probs(rng, (2, c)).astype(dtype)
            for f in LOSSES:
                for target, ttype in ((labels, "labels"), (probs, "probs"), (x[::-1], "logits")):
                    kw = {"target_type": ttype, "reduction": "none", "validate": False}
                    cases.append(Case(f, [x, target], kw, scale * 2, what + f", {ttype}"))
            y = (rng.random(x.shape) < 0.5).astype(dtype)
            cases.append(Case("binary_cross_entropy", [x, y], {"reduction": "none"}, scale,
                              what))
    return cases


def bad_input_cases():
    """Calls that must raise, with the same error from both backends."""
    x = np.zeros((3, 4))
    return [
        Case("cross_entropy", [x, np.array([0, 4, 1])], {"validate": False}, 1, "label past C"),
        Case("cross_entropy", [x, np.array([0, -1, 1])], {}, 1, "negative label"),
        Case("cross_entropy", [np.zeros(4), 2**62], {}, 1, "huge label, one row"),
        Case("kl_divergence", [x, np.array([0, 1, 2**40])], {}, 1, "huge label"),
        Case("cross_entropy", [x, np.full((3, 4), 0.3)], {}, 1, "probabilities off 1"),
        Case("js_divergence", [x, -np.full((3, 4), 0.25)], {}, 1, "negative probabilities"),
        Case("logsumexp", [x + 0j], {}, 1, "complex"),
        Case("softmax", [x], {"where": np.ones((3, 5), bool)}, 1, "where shape"),
    ]


# ------------------------------------------------------------------- known issues

def _largest(case):
    arrays = [np.asarray(a, dtype=np.float64) for a in case.args if isinstance(a, np.ndarray)]
    finite = [np.abs(a[np.isfinite(a)]) for a in arrays]
    return max([float(f.max()) for f in finite if f.size] + [0.0])


# Disagreements understood and reported, not yet fixed: (what, which cases). They are
# counted and shown apart, and fail the check only with --strict. Remove an entry when
# its fix lands (docs/RELIABILITY.md, "Known issues").
KNOWN_ISSUES = [
    (("float32 soft-target kernels take M - x in float32: +inf for logits near "
      "±FLT_MAX where the loss itself (~1e38) is finite"),
     lambda case: getattr(case.args[0], "dtype", None) == np.float32
     and _largest(case) > F32_MAX / 2
     and case.fname in LOSSES),
]


def known_issue(case):
    """The KNOWN_ISSUES entry that explains a disagreement of this case, or None."""
    for what, applies in KNOWN_ISSUES:
        try:
            if case.args and applies(case):
                return what
        except (TypeError, ValueError, IndexError):  # arguments no predicate understands
            continue
    return None


# ---------------------------------------------------------------------- comparison

def _call(module, case):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return "ok", getattr(module, case.fname)(*case.args, **case.kwargs)
    except Exception as exc:  # noqa: BLE001 - compared between the two backends
        return "error", (type(exc).__name__, str(exc))


def _leaves(value):
    """A result as a list of arrays/scalars (tuples such as (loss, grad) flattened)."""
    if isinstance(value, tuple):
        return [leaf for part in value for leaf in _leaves(part)]
    return [value]


def _tolerance(dtype, case):
    eps = float(np.finfo(np.float32 if dtype == np.float32 else np.float64).eps)
    if dtype == np.float32:
        rtol, atol = 16 * eps, 16 * eps * case.scale
    else:
        rtol, atol = 1e-12, 1e-13 * case.scale
    if case.fname == "softmax":
        rtol, atol = rtol * case.scale, 0.0
    return rtol, atol


def compare(case, got, want):
    """(largest error as a fraction of the allowed one, a description of a disagreement
    or None)."""
    if got[0] != want[0]:
        return math.inf, f"compiled {got[0]} {got[1]!r}, reference {want[0]} {want[1]!r}"
    if got[0] == "error":
        same_words = got[1][0] == want[1][0] and (
            got[1][1] == want[1][1] or "sums to" in got[1][1])  # a quoted sum may differ
        return 0.0, None if same_words else f"errors differ: {got[1]!r} vs {want[1]!r}"
    a_leaves, b_leaves = _leaves(got[1]), _leaves(want[1])
    if len(a_leaves) != len(b_leaves):
        return math.inf, f"{len(a_leaves)} results vs {len(b_leaves)}"
    worst = 0.0
    for a, b in zip(a_leaves, b_leaves):
        if type(a) is not type(b):
            return math.inf, f"type {type(a).__name__} vs {type(b).__name__}"
        aa, bb = np.asarray(a), np.asarray(b)
        if aa.dtype != bb.dtype or aa.shape != bb.shape:
            return math.inf, f"{aa.dtype}{aa.shape} vs {bb.dtype}{bb.shape}"
        a64, b64 = aa.astype(np.float64), bb.astype(np.float64)
        # a value within rounding of the dtype's overflow on one side, ±inf on the other:
        # the same result (e.g. a loss of DBL_MAX·Σp with Σp = 1 ± 1 ulp)
        if aa.dtype.kind == "f":
            half_max = float(np.finfo(aa.dtype).max) / 2
            edge = ((np.isinf(a64) & (np.abs(b64) >= half_max))
                    | (np.isinf(b64) & (np.abs(a64) >= half_max))) & (np.sign(a64) == np.sign(b64))
            if edge.any():
                a64, b64 = np.where(edge, np.sign(a64) * math.inf, a64), \
                    np.where(edge, np.sign(b64) * math.inf, b64)
        for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
            if not np.array_equal(test(a64), test(b64)):
                return math.inf, f"{name} in different places: {a64!r} vs {b64!r}"
        fin = np.isfinite(a64)
        if fin.any():
            rtol, atol = _tolerance(aa.dtype, case)
            allowed = atol + rtol * np.abs(b64[fin])
            err = np.abs(a64[fin] - b64[fin])
            ratio = float(np.max(np.where(allowed > 0, err / np.where(allowed > 0, allowed, 1),
                                          np.where(err > 0, math.inf, 0.0))))
            worst = max(worst, ratio)
            if ratio > 1.0:
                k = int(np.argmax(err - allowed))
                return ratio, (f"value {a64[fin][k]!r} vs {b64[fin][k]!r} "
                               f"(|diff| {err[k]:.3g} > allowed {allowed[k]:.3g})")
    return worst, None


def run(compiled, reference, cases, out=None, verbose=False, strict=False):
    """Every case on both modules; returns (disagreements, known ones, worst ratio)."""
    out = sys.stdout if out is None else out
    bad, known, worst = 0, 0, 0.0
    for case in cases:
        with np.errstate(all="ignore"):
            ratio, problem = compare(case, _call(compiled, case), _call(reference, case))
        issue = known_issue(case) if problem is not None else None
        if problem is None:
            worst = max(worst, ratio)
            if verbose:
                print(f"ok {ratio:8.3f}  {case!r}", file=out)
        elif issue is not None and not strict:
            known += 1
            if verbose:
                print(f"KNOWN    {case!r}\n         {problem}\n         ({issue})", file=out)
        else:
            bad += 1
            print(f"DISAGREE {case!r}\n         {problem}", file=out)
    return bad, known, worst


def main(argv=None):
    """Entry point of `divcore selfcheck`; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="divcore selfcheck",
        description="Compare divcore's compiled core with its pure-Python reference on "
                    "generated and adversarial inputs; exit 1 on any disagreement.")
    parser.add_argument("--cases", type=int, default=1000,
                        help="generated cases (default 1000; adversarial ones are added)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (default: a new one, printed)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case")
    parser.add_argument("--strict", action="store_true",
                        help="count the known, reported disagreements as failures too")
    args = parser.parse_args(argv)

    import divcore
    import divcore.reference

    if divcore.backend() != "compiled":
        print(f"divcore selfcheck: the compiled core is not live (backend "
              f"{divcore.backend()!r}); nothing to check")
        return 2
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    cases = generated_cases(rng, max(args.cases, 0)) + adversarial_cases(rng) + bad_input_cases()
    start = time.perf_counter()
    bad, known, worst = run(divcore, divcore.reference, cases, verbose=args.verbose,
                            strict=args.strict)
    seconds = time.perf_counter() - start
    from divcore import _kernels  # the live backend module
    simd = _kernels.simd_path() if hasattr(_kernels, "simd_path") else "?"
    print(f"divcore selfcheck: divcore {divcore.__version__}, simd {simd}, "
          f"{divcore.get_num_threads()} thread(s), seed {seed}")
    print(f"  {len(cases)} cases ({max(args.cases, 0)} generated, "
          f"{len(cases) - max(args.cases, 0)} adversarial or bad input) in {seconds:.1f} s; "
          f"largest error {worst:.3g} of the allowed")
    if known:
        print(f"  {known} known disagreement(s), reported and not yet fixed "
              "(--verbose shows them, --strict fails on them)")
    print(f"  {bad} disagreement(s): {'FAIL' if bad else 'OK'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
