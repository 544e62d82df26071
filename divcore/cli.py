"""The `divcore` command (also `python -m divcore`).

    divcore [demo] [--plot FILE.png]
        H(p,q) = H(p) + KL(p||q) on a few rows, the identical CE and KL gradients, forward
        vs reverse KL, bits vs nats; exit status 1 if one of its checks fails. --plot
        writes the forward vs reverse KL figure (needs matplotlib).
    divcore score LOGITS TARGET [options]
        cross-entropy, entropy, KL and JS of logits in a file against a target in a file.
        With labels it also reports perplexity, accuracy and the model's mean entropy.
    divcore topk LOGITS -k K -o OUT.npz [--temperature T]
        each row's K largest log-probabilities (a teacher's top-k, for distillation).
    divcore selfcheck [...]     divcore.selfcheck: checks of this installation
    divcore bench [--full ...]  a quick speed check against numpy / SciPy / PyTorch
    divcore --version           the version and the live backend

Errors are one line on stderr, never a traceback: exit status 1 for a file that is
missing or malformed and for a bad option value (--temperature abc, --reduction avg,
--base 1), 2 for a command line that cannot be read (an unknown option, a missing
argument).
"""
import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np

import divcore

INF = math.inf

# (what the row shows, logits, target, keywords for decompose)
DEMO_CASES = [
    ("hard label y=0", [2.0, 1.0, 0.1], 0, {}),
    ("soft target", [2.0, 1.0, 0.1], [0.7, 0.2, 0.1], {}),
    ("label smoothing 0.1", [2.0, 1.0, 0.1], 0, {"label_smoothing": 0.1}),
    ("teacher logits, T=2", [2.0, 1.0, 0.1], [1.5, 1.2, -0.3],
     {"target_type": "logits", "temperature": 2.0}),
    ("masked class, 0*log 0", [2.0, -INF, 0.5], [0.8, 0.0, 0.2], {}),
    ("confident and right", [40.0, 0.0, 0.0], 0, {}),
]
METRIC_CHOICES = ("cross_entropy", "kl_divergence", "entropy", "js_divergence", "all")
UNITS = {None: "nats", 2.0: "bits"}
# `divcore score --reduction none` prints at most this many rows (--out writes them all)
MAX_PRINTED_ROWS = 20


def _fmt(values):
    if np.ndim(values) == 0:
        return str(values)
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


# ---------------------------------------------------------------------------- demo

def _demo_decomposition():
    """The table of H(p,q), H(p), KL(p||q) for DEMO_CASES; True if CE = H + KL held."""
    print("q = softmax(logits / T), p = target;  H(p,q) = H(p) + KL(p||q)\n")
    head = f"{'case':<24}{'logits':<18}{'target':<18}{'H(p,q)':>13}{'H(p)':>13}" \
           f"{'KL(p||q)':>13}{'|CE-(H+KL)|':>13}"
    print(head)
    print("-" * len(head))
    ok = True
    for name, logits, target, kw in DEMO_CASES:
        d = divcore.decompose(np.array(logits), np.array(target), **kw)
        ce, h, kl = float(d.cross_entropy), float(d.entropy), float(d.kl_divergence)
        gap = abs(ce - (h + kl))
        ok &= gap <= 1e-12 * max(1.0, abs(ce))
        print(f"{name:<24}{_fmt(logits):<18}{_fmt(target):<18}"
              f"{ce:>13.6g}{h:>13.6g}{kl:>13.6g}{gap:>13.2g}")
    print("\nWith p fixed, H(p) is a constant: H(p,q) and KL(p||q) have the same minimiser")
    print("and the same gradient in the logits.  The last row's loss is ~2*exp(-40), kept")
    print("exact (not rounded to 0) by the log1p path.")
    print("CE = H + KL holds" if ok else "CE = H + KL FAILED for at least one row")
    return ok


def _demo_gradients():
    """CE and KL gradients on a small batch: identical arrays, equal to the formula."""
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    target = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    ce, g_ce = divcore.cross_entropy_and_grad(logits, target)
    kl, g_kl = divcore.kl_divergence_and_grad(logits, target)
    # the formula, with numpy only: (softmax(z) - p) / N for the mean over N rows
    shifted = logits - logits.max(axis=1, keepdims=True)
    q = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    formula_gap = float(np.max(np.abs(g_ce - (q - target) / len(logits))))
    same = bool(np.array_equal(g_ce, g_kl))
    print("\nGradients with respect to the logits (2 rows, soft targets, mean):")
    print(f"  cross-entropy {float(ce):.6f}, KL {float(kl):.6f}: the values differ by H(p)")
    print(f"  dCE/dz == dKL/dz element for element: {same}")
    print(f"  max |dCE/dz - (softmax(z) - p)/N| = {formula_gap:.2g}")
    return same and formula_gap <= 1e-15


def _demo_directions():
    """Forward vs reverse KL: a 3-class example and the one-Gaussian-two-modes fit."""
    from . import _kl_fit

    p = np.array([0.6, 0.3, 0.1])
    logits = np.log(np.array([0.2, 0.3, 0.5]))
    forward = float(divcore.kl_divergence(logits, p))
    reverse = float(divcore.kl_divergence(logits, p, reverse=True))
    print("\nForward and reverse KL are different divergences:")
    print(f"  p = {_fmt(p)}, q = softmax(log [0.2, 0.3, 0.5]):  KL(p||q) = {forward:.6f},"
          f"  KL(q||p) = {reverse:.6f}")
    fwd, rev = _kl_fit.fit(reverse=False), _kl_fit.fit(reverse=True)
    centres = ", ".join(f"{c:g}" for c, _, _ in _kl_fit.MODES)
    print(f"  Fitting one Gaussian q to a target with two modes (at {centres}):")
    print(f"    forward KL(p||q): mu = {fwd.mu:+.2f}, sigma = {fwd.sigma:.2f}  "
          "mass-covering: one wide bump over both modes")
    print(f"    reverse KL(q||p): mu = {rev.mu:+.2f}, sigma = {rev.sigma:.2f}  "
          "mode-seeking: it sits on one mode")
    print("  Cross-entropy training minimises the forward direction.")
    return rev.sigma < fwd.sigma and abs(rev.mu) > abs(fwd.mu)


def _demo_units():
    """base=2 gives bits: the value in nats divided by ln 2."""
    logits, label = np.array([2.0, 1.0, 0.1]), 0
    nats = float(divcore.cross_entropy(logits, label))
    bits = float(divcore.cross_entropy(logits, label, base=2))
    print("\nUnits: base=None (e) gives nats, base=2 gives bits:")
    print(f"  cross_entropy = {nats:.6f} nats = {bits:.6f} bits (nats / ln 2 = "
          f"{nats / math.log(2):.6f})")
    return abs(bits - nats / math.log(2)) <= 1e-12 * bits


def demo(plot=None):
    """Print the demo; return 0 if every check held (1 if not, or if --plot failed)."""
    if plot is not None:
        from . import _plot
        try:
            _plot._pyplot()  # before the demo: a missing matplotlib fails at once
        except _plot.PlotUnavailable as exc:
            return _error("demo", str(exc))
    print(f"divcore {divcore.__version__}, backend: {divcore.backend()}")
    checks = {"CE = H + KL": _demo_decomposition(),
              "identical CE and KL gradients": _demo_gradients(),
              "forward KL covers, reverse KL seeks a mode": _demo_directions(),
              "bits = nats / ln 2": _demo_units()}
    failed = [name for name, ok in checks.items() if not ok]
    print("\nAll checks hold." if not failed else f"\nFAILED: {', '.join(failed)}")
    if plot is not None:
        from . import _plot
        try:
            _plot.plot_forward_reverse(plot)
        except (OSError, ValueError) as exc:  # a missing folder, an unknown image format
            return _error("demo", f"--plot {plot}: cannot write ({exc})")
        print(f"wrote {plot}")
    return 0 if not failed else 1


# --------------------------------------------------------------------------- score

def _parse_base(text):
    if text.strip().lower() == "e":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)) or value == 1.0:
        raise argparse.ArgumentTypeError("the base must be a positive number other than 1")
    return value


def _parse_metrics(values):
    """--metric may be repeated or comma-separated; 'all' (the default) is every metric."""
    from ._score import METRICS

    chosen = []
    for value in values or ["all"]:
        for name in value.split(","):
            name = name.strip()
            if name not in METRIC_CHOICES:
                raise ValueError(f"unknown metric {name!r} (choose from "
                                 f"{', '.join(METRIC_CHOICES)})")
            for m in (METRICS if name == "all" else (name,)):
                if m not in chosen:
                    chosen.append(m)
    return tuple(chosen)


SCORE_EPILOG = """\
output: the metrics in the order cross_entropy, entropy, kl_divergence, js_divergence
(those chosen with --metric). --json prints strict JSON: a value that is NaN or +-inf
(no JSON number) is written as null. --out FILE writes one value per row and metric:
.npz one array per metric, named after it; .csv/.txt one column per metric in that order,
under a header line "# cross_entropy,entropy,..." (np.loadtxt skips it,
np.genfromtxt(FILE, names=True, delimiter=",") reads the names); .npy one metric: the
per-row array, several: stacked on a last axis in that order.

errors: one line on stderr. Exit status 1 for a missing or malformed file and for a bad
option value; 2 for a command line that cannot be read (unknown option, missing file
argument)."""


def _add_score_parser(commands):
    p = commands.add_parser(
        "score", help="losses of logits in a file against a target in a file",
        description=textwrap.fill(
            "Cross-entropy H(p,q), the target's entropy H(p), KL(p||q) and JS of the logits "
            "in LOGITS against the target in TARGET. Files: .npy (memory-mapped and read in "
            "blocks of rows when large), .npz (with --key / --target-key), .csv, .txt (a "
            "first row of column names, as pandas writes it, is skipped; so is pandas' "
            "index column).", 88),
        # the description and the epilog are printed as laid out here
        epilog=SCORE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logits", help="the model's raw scores (class axis: --axis)")
    p.add_argument("target", help="labels, probabilities, log-probabilities or logits, "
                                  "or a teacher's top-k file from `divcore topk`")
    p.add_argument("--key", help="the logits' array name in an .npz file")
    p.add_argument("--target-key", help="the target's array name in an .npz file")
    p.add_argument("--target-type", default="auto",
                   choices=("auto", "labels", "probs", "log_probs", "logits"),
                   help="what TARGET holds (auto: integers are labels, floats are "
                        "probabilities; from .csv/.txt, a target without the class axis "
                        "is read as labels)")
    p.add_argument("--metric", action="append", metavar="NAME",
                   help=f"one of {', '.join(METRIC_CHOICES)} (repeat or comma-separate; "
                        "default: all). entropy is the target's H(p)")
    p.add_argument("--axis", type=int, default=-1, help="the class axis (default -1)")
    p.add_argument("--reduction", default="mean", choices=("mean", "sum", "none"),
                   help="mean over rows (default), sum, or none: one value per row")
    p.add_argument("--base", type=_parse_base, default=None,
                   help="logarithm base: e (nats, default), 2 (bits), any positive b != 1")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="q = softmax(logits / T); also divides a logits target")
    p.add_argument("--ignore-index", type=int, default=-100,
                   help="rows whose label equals it count 0 and are left out of the mean "
                        "(default -100)")
    p.add_argument("--no-validate", dest="validate", action="store_false",
                   help="do not check that a probability target's rows are distributions")
    p.add_argument("--sum-tol", type=float, default=None, metavar="TOL",
                   help="how far a probability row's sum may be from 1 (default: max(sqrt "
                        "of the dtype's eps, 1e-4), which accepts probabilities stored with "
                        "6 decimals)")
    p.add_argument("--tail", default="bucket", choices=("bucket", "drop", "renormalize"),
                   help="with a top-k TARGET (an .npz of `indices` and `log_probs` written "
                        "by `divcore topk`): how the teacher's mass outside its k classes "
                        "counts (default bucket: one more class)")
    p.add_argument("--json", action="store_true",
                   help='print strict JSON, one key per metric: {"cross_entropy": 1.23, '
                        '...}; NaN and +-inf are null')
    p.add_argument("--out", metavar="FILE",
                   help="write the per-row values (.npy, .npz, .csv or .txt; columns in "
                        "the metric order above, see below)")
    p.add_argument("--block-rows", type=int, metavar="N",
                   help="rows per block (default: about 64 MiB of logits per block for a "
                        "large .npy file, else one block; also DIVCORE_SCORE_BLOCK_ROWS)")
    return p


def _check_temperature(temperature):
    """--temperature of `score` and `topk`: a finite number > 0 (a one-line error else)."""
    from . import _score

    if not (temperature > 0 and math.isfinite(temperature)):
        raise _score.ScoreError(f"--temperature must be a finite number > 0, got {temperature}")


def score_command(args):
    from . import _score

    try:
        metrics = _parse_metrics(args.metric)
        _check_temperature(args.temperature)
        if args.sum_tol is not None and not args.sum_tol >= 0:
            raise _score.ScoreError(f"--sum-tol must be a number >= 0, got {args.sum_tol}")
        logits = _score.load_array(args.logits, args.key, "logits")
        target = None if args.target_key else _score.load_topk(args.target)
        if target is not None:  # a `divcore topk` file: a sparse teacher
            target_type = "topk"
            if args.tail == "drop" and not args.metric:  # JS needs two distributions
                metrics = tuple(m for m in metrics if m != "js_divergence")
        else:
            if args.tail != "bucket":
                raise _score.ScoreError("--tail applies to a top-k target (an .npz file "
                                        "written by `divcore topk`)")
            target = _score.load_array(args.target, args.target_key, "target")
            target_type = _score.resolve_target_type(
                logits, target, args.target_type, _score.is_text_file(args.target))
        if target_type == "labels":
            target = _score.as_labels(target, args.target, logits.ndim)
        reduced, per_row = _score.score(
            logits, target, metrics=metrics, axis=args.axis, target_type=target_type,
            reduction=args.reduction, base=args.base, temperature=args.temperature,
            ignore_index=args.ignore_index, validate=args.validate, sum_tol=args.sum_tol,
            block_rows=args.block_rows, label_stats=not args.metric, tail=args.tail)
        if args.out:
            _score.write_per_row(args.out, per_row)
    except (_score.ScoreError, ValueError) as exc:
        return _error("score", str(exc))
    except MemoryError:
        return _error("score", "out of memory (try a smaller --block-rows)")
    if args.json:
        print(json.dumps({m: _json_value(v) for m, v in reduced.items()}, allow_nan=False))
    else:
        _print_score_table(args, logits, target, target_type, reduced, per_row)
    return 0


def _json_value(value):
    """A float, or nested lists for reduction='none'; None (JSON null) for nan and ±inf,
    which strict JSON has no number for (json.dumps would write NaN / Infinity, which
    JSON parsers other than Python's reject)."""
    if isinstance(value, np.ndarray):
        return _json_value(value.tolist())
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    value = float(value)
    return value if math.isfinite(value) else None


def _print_score_table(args, logits, target, target_type, reduced, per_row):
    if target_type == "topk":
        kind = f"a top-k teacher (k = {target.k}, tail {args.tail})"
        shape, dtype = np.shape(target.indices), "TopK"
    else:
        kind = target_type if target_type != "auto" else (
            "labels" if target.dtype.kind in "iu" else "probs")
        shape, dtype = tuple(target.shape), target.dtype
    units = UNITS[args.base] if args.base in UNITS else f"log base {args.base:g}"
    print(f"logits  {args.logits}  {tuple(logits.shape)} {logits.dtype}, class axis "
          f"{args.axis}")
    print(f"target  {args.target}  {tuple(shape)} {dtype}, read as {kind}")
    first = next(iter(per_row.values()))
    n_rows = first.size
    if args.reduction == "none":
        print(f"per-row values in {units}, {n_rows} rows\n")
        names = list(per_row)
        print(f"{'row':>8}" + "".join(f"{m:>16}" for m in names))
        flat = {m: v.reshape(-1) for m, v in per_row.items()}
        for i in range(min(n_rows, MAX_PRINTED_ROWS)):
            print(f"{i:>8}" + "".join(f"{flat[m][i]:>16.8g}" for m in names))
        if n_rows > MAX_PRINTED_ROWS:
            print(f"... {n_rows - MAX_PRINTED_ROWS} more rows (--out FILE writes them all)")
        return
    ignored = ""
    if kind == "labels" and args.ignore_index is not None:
        n_ignored = int(np.count_nonzero(np.asarray(target) == args.ignore_index))
        if n_ignored:
            ignored = f" ({n_ignored} ignored)"
    print(f"{args.reduction} over {n_rows} rows{ignored}, in {units}\n")
    print(f"{'metric':<16}{'value':>16}")
    print("-" * 32)
    for m, value in reduced.items():
        print(f"{m:<16}{value:>16.8g}")
    if args.out:
        print(f"\nper-row values written to {args.out}")


# ---------------------------------------------------------------------------- topk

def _add_topk_parser(commands):
    p = commands.add_parser(
        "topk", help="each row's k largest log-probabilities, into an .npz",
        description=textwrap.fill(
            "Each row's K largest log softmax(LOGITS / T), best first (ties: the lower "
            "index), as divcore.row_stats computes them: a teacher's top-k for "
            "distillation. LOGITS (.npy, memory-mapped and read a block of rows at a time; "
            "also .npz, .csv, .txt) has its classes on --axis. OUT.npz holds `indices` "
            "(int64, rows x K) and `log_probs` (float32, rows x K).", 88))
    p.add_argument("logits", help="the teacher's raw scores")
    p.add_argument("-k", type=int, required=True, help="how many classes per row")
    p.add_argument("-o", "--out", required=True, metavar="OUT.npz", help="the output file")
    p.add_argument("--key", help="the logits' array name in an .npz file")
    p.add_argument("--axis", type=int, default=-1, help="the class axis (default -1)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="log-probabilities of softmax(logits / T)")
    p.add_argument("--block-rows", type=int, metavar="N",
                   help="rows per block (default: about 64 MiB of logits per block for a "
                        "large .npy file; also DIVCORE_SCORE_BLOCK_ROWS)")
    return p


def topk_command(args):
    from . import _score

    try:
        _check_temperature(args.temperature)
        logits = _score.load_array(args.logits, args.key, "logits")
        indices, log_probs = _score.topk(logits, args.k, axis=args.axis,
                                         temperature=args.temperature,
                                         block_rows=args.block_rows)
        _score.write_topk(args.out, indices, log_probs)
    except (_score.ScoreError, ValueError) as exc:
        return _error("topk", str(exc))
    except MemoryError:
        return _error("topk", "out of memory (try a smaller --block-rows)")
    print(f"top-{args.k} of {indices.size // max(args.k, 1) if args.k else 0} rows "
          f"written to {args.out}")
    return 0


# ------------------------------------------------------------- selfcheck and bench

def selfcheck_command(argv):
    """`divcore selfcheck ARGS`: divcore.selfcheck.main(ARGS), imported only when asked."""
    try:
        selfcheck = importlib.import_module("divcore.selfcheck")
    except ModuleNotFoundError as exc:
        if exc.name != "divcore.selfcheck":
            raise  # selfcheck exists but one of its own imports is missing: show it
        return _error("selfcheck", "this build of divcore has no divcore.selfcheck module")
    return selfcheck.main(argv)


def _add_bench_parser(commands):
    p = commands.add_parser(
        "bench", help="a quick speed check against numpy, SciPy and PyTorch",
        description="Times a few divcore calls against numpy, SciPy and PyTorch (those "
                    "installed) on one array; prints medians, GB/s and ratios. --full runs "
                    "benchmarks/bench.py from a source checkout (further arguments go to it).")
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--classes", type=int, default=8192)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--repeat", type=int, default=5, help="repeats; the median is shown")
    p.add_argument("--full", action="store_true",
                   help="run benchmarks/bench.py (source checkouts only)")
    return p


def full_benchmark_path():
    """benchmarks/bench.py of the source checkout divcore is imported from, or None."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(divcore.__file__)))
    path = os.path.join(checkout, "benchmarks", "bench.py")
    return path if os.path.isfile(path) else None


def bench_command(args, passthrough):
    if args.full:
        path = full_benchmark_path()
        if path is None:
            return _error("bench", "--full runs benchmarks/bench.py, which is only in the "
                                   "source tree (run it from a checkout of divcore)")
        return subprocess.call([sys.executable, path, *passthrough])
    if passthrough:
        return _error("bench", f"unrecognized arguments: {' '.join(passthrough)}")
    if args.rows < 1 or args.classes < 1 or args.repeat < 1:
        return _error("bench", "--rows, --classes and --repeat must be at least 1")
    from . import _bench

    _bench.run(rows=args.rows, classes=args.classes, dtype=args.dtype, repeat=args.repeat)
    return 0


# ---------------------------------------------------------------------------- main

def _error(command, message):
    print(f"divcore {command}: error: {message}", file=sys.stderr)
    return 1


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage block): exit status 1 for a bad
    option value (an invalid number or choice), 2 for a command line it cannot read."""

    def error(self, message):
        # argparse words a bad value "argument --x: invalid ..." (or our type function's
        # message), and a missing one "argument --x: expected one argument"
        bad_value = message.startswith("argument -") and ": expected " not in message
        self.exit(1 if bad_value else 2,
                  f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _OneLineParser(
        prog="divcore",
        description="Cross-entropy, KL divergence and entropy on raw logits. "
                    "With no command: the demo.")
    parser.add_argument("--version", action="version",
                        version=f"divcore {divcore.__version__} ({divcore.backend()} backend)")
    commands = parser.add_subparsers(dest="command", parser_class=_OneLineParser,
                                     metavar="{demo,score,topk,selfcheck,bench}")
    demo_parser = commands.add_parser(
        "demo", help="H(p,q) = H(p) + KL(p||q), gradients, forward vs reverse KL (default)")
    demo_parser.add_argument("--plot", metavar="FILE.png",
                             help="write the forward vs reverse KL figure (needs matplotlib)")
    _add_score_parser(commands)
    _add_topk_parser(commands)
    commands.add_parser("selfcheck", add_help=False,
                        help="check this installation (divcore selfcheck --help)")
    _add_bench_parser(commands)
    return parser


def main(argv=None):
    """Entry point of the `divcore` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["selfcheck"]:  # its options are selfcheck's own: pass them on as they are
        return selfcheck_command(argv[1:])
    parser = build_parser()
    passthrough = []
    if argv[:1] == ["bench"] and "--full" in argv:
        # everything but --full goes to benchmarks/bench.py
        passthrough = [a for a in argv[1:] if a != "--full"]
        argv = ["bench", "--full"]
    args = parser.parse_args(argv)
    try:
        if args.command == "score":
            return score_command(args)
        if args.command == "topk":
            return topk_command(args)
        if args.command == "bench":
            return bench_command(args, passthrough)
        return demo(plot=getattr(args, "plot", None))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`divcore demo | head`): stop quietly; point stdout at
        # devnull so that the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
