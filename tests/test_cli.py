"""The `divcore` command: score, demo (--plot), selfcheck and bench.

`divcore score` is checked against a float64 numpy/SciPy oracle written here from the
formulas (not against divcore's own output), on every file type and option; the blockwise
path must give bit-identical numbers to one call. Errors must be one line on stderr with a
non-zero exit, never a traceback.
"""
import json
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import divcore
import divcore.reference
from divcore import _kl_fit, _score, cli

special = pytest.importorskip("scipy.special")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------- oracle

def oracle(logits, target, kind, *, axis=-1, temperature=1.0, base=None, ignore_index=-100):
    """Per-row CE, H(p), KL(p||q), JS (β = ½) in float64 from the formulas, and the mask
    of rows that count in the mean."""
    z = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1) / temperature
    log_q = special.log_softmax(z, axis=-1)
    kept = np.ones(z.shape[:-1], dtype=bool)
    if kind == "labels":
        labels = np.asarray(target).astype(np.int64)
        kept = labels != ignore_index
        p = np.zeros_like(z)
        idx = np.nonzero(kept)
        p[idx + (labels[kept],)] = 1.0
    else:
        t = np.moveaxis(np.asarray(target, dtype=np.float64), axis, -1)
        p = {"probs": t, "log_probs": np.exp(t),
             "logits": special.softmax(t / temperature, axis=-1)}[kind]
    q = np.exp(log_q)
    ce = -np.sum(p * log_q, axis=-1)
    h = -np.sum(special.xlogy(p, p), axis=-1)
    kl = np.sum(special.rel_entr(p, q), axis=-1)
    m = 0.5 * (p + q)
    js = 0.5 * np.sum(special.rel_entr(p, m), axis=-1) + 0.5 * np.sum(special.rel_entr(q, m),
                                                                       axis=-1)
    scale = 1.0 if base is None else math.log(base)
    rows = {"cross_entropy": ce, "entropy": h, "kl_divergence": kl, "js_divergence": js}
    rows = {k: np.where(kept, v, 0.0) / scale for k, v in rows.items()}
    return rows, kept


def oracle_reduced(rows, kept, reduction):
    if reduction == "sum":
        return {k: float(np.sum(v)) for k, v in rows.items()}
    return {k: float(np.sum(v) / np.count_nonzero(kept)) for k, v in rows.items()}


# ------------------------------------------------------------------------ helpers

def make_problem(rng, kind, shape=(40, 6), dtype=np.float64, axis=-1):
    logits = (2.0 * rng.standard_normal(shape)).astype(dtype)
    moved = np.moveaxis(logits, axis, -1)
    if kind == "labels":
        target = rng.integers(0, moved.shape[-1], size=moved.shape[:-1])
        target.reshape(-1)[::7] = -100  # some ignored rows
        return logits, target
    t = 1.5 * rng.standard_normal(moved.shape)
    if kind == "probs":
        t = special.softmax(t, axis=-1)
    elif kind == "log_probs":
        t = special.log_softmax(t, axis=-1)
    return logits, np.moveaxis(t.astype(dtype), -1, axis)


def save(tmp_path, name, array, fmt):
    """Write `array` as tmp_path/name.<fmt>; returns (path, extra CLI args)."""
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "npy":
        np.save(path, array)
    elif fmt == "npz":
        np.savez(path, other=np.zeros(3), **{name: array})
        return str(path), [f"--{'key' if name == 'logits' else 'target-key'}", name]
    elif fmt == "csv":
        np.savetxt(path, array, delimiter=",", fmt="%.17g")
    elif fmt == "txt":
        np.savetxt(path, array, fmt="%.17g")
    return str(path), []


def run_main(capsys, argv):
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, argv):
    status, out, err = run_main(capsys, argv + ["--json"])
    assert status == 0, err
    return json.loads(out)


def run_module(*args, env=None):
    """`python -m divcore ARGS` in a fresh process, from the repository root."""
    return subprocess.run([sys.executable, "-m", "divcore", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env=None if env is None else {**os.environ, **env})


# -------------------------------------------------------------------------- score

@pytest.mark.parametrize("fmt", ["npy", "npz", "csv", "txt"])
@pytest.mark.parametrize("kind", ["labels", "probs", "log_probs", "logits"])
def test_score_json_matches_oracle(tmp_path, capsys, rng, fmt, kind):
    logits, target = make_problem(rng, kind)
    lpath, largs = save(tmp_path, "logits", logits, fmt)
    tpath, targs = save(tmp_path, "target", target, fmt)
    type_args = [] if kind in ("labels", "probs") else ["--target-type", kind]
    got = run_json(capsys, ["score", lpath, tpath, *largs, *targs, *type_args])
    rows, kept = oracle(logits, target, kind)
    want = oracle_reduced(rows, kept, "mean")
    extra = ["perplexity", "accuracy", "model_entropy"] if kind == "labels" else []
    assert list(got) == ["cross_entropy", "entropy", "kl_divergence", "js_divergence"] + extra
    for metric in want:
        np.testing.assert_allclose(got[metric], want[metric], rtol=1e-10, atol=1e-13,
                                   err_msg=metric)


@pytest.mark.parametrize("options", [
    {"temperature": 2.5},
    {"base": 2.0},
    {"base": 10.0, "temperature": 0.5},
    {"axis": 0},
    {"reduction": "sum"},
])
@pytest.mark.parametrize("kind", ["labels", "logits"])
def test_score_options(tmp_path, capsys, rng, kind, options):
    axis = options.get("axis", -1)
    logits, target = make_problem(rng, kind, shape=(6, 30) if axis == 0 else (30, 6),
                                  axis=axis)
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    argv = ["score", lpath, tpath, "--target-type", kind]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    got = run_json(capsys, argv)
    rows, kept = oracle(logits, target, kind, axis=axis,
                        temperature=options.get("temperature", 1.0),
                        base=options.get("base"))
    want = oracle_reduced(rows, kept, options.get("reduction", "mean"))
    for metric in want:
        np.testing.assert_allclose(got[metric], want[metric], rtol=1e-10, atol=1e-13,
                                   err_msg=metric)


def test_score_ignore_index_and_metric_choice(tmp_path, capsys, rng):
    logits, target = make_problem(rng, "labels")
    target[target == -100] = 0
    target[::5] = 3  # class 3 is the "ignored" label now
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    got = run_json(capsys, ["score", lpath, tpath, "--ignore-index", "3",
                            "--metric", "js_divergence", "--metric", "cross_entropy"])
    assert list(got) == ["js_divergence", "cross_entropy"]
    rows, kept = oracle(logits, target, "labels", ignore_index=3)
    assert np.count_nonzero(~kept) >= 8
    want = oracle_reduced(rows, kept, "mean")
    for metric in got:
        np.testing.assert_allclose(got[metric], want[metric], rtol=1e-10)
    got = run_json(capsys, ["score", lpath, tpath, "--metric", "kl_divergence,entropy",
                            "--ignore-index", "3"])
    assert list(got) == ["kl_divergence", "entropy"]


def test_score_one_row_from_text_files(tmp_path, capsys):
    """A text file cannot hold a 0-d label: one number for one row of logits is it."""
    (tmp_path / "row.txt").write_text("2 1 0.1\n")
    (tmp_path / "label.txt").write_text("2\n")
    got = run_json(capsys, ["score", str(tmp_path / "row.txt"), str(tmp_path / "label.txt")])
    rows, kept = oracle(np.array([[2.0, 1.0, 0.1]]), np.array([2]), "labels")
    for metric, value in oracle_reduced(rows, kept, "mean").items():
        np.testing.assert_allclose(got[metric], value, rtol=1e-12, atol=1e-15)


def test_score_float32_and_reduction_none(tmp_path, capsys, rng):
    logits, target = make_problem(rng, "probs", dtype=np.float32)
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    got = run_json(capsys, ["score", lpath, tpath, "--reduction", "none"])
    rows, _ = oracle(logits, target.astype(np.float64), "probs")
    for metric, values in rows.items():
        assert len(got[metric]) == len(logits)
        np.testing.assert_allclose(got[metric], values, rtol=2e-5, atol=2e-6, err_msg=metric)
    status, out, _ = run_main(capsys, ["score", lpath, tpath, "--reduction", "none"])
    assert status == 0 and "more rows" in out  # 40 rows, 20 printed


@pytest.mark.parametrize("suffix", ["npy", "npz", "csv", "txt"])
def test_score_out_writes_per_row_values(tmp_path, capsys, rng, suffix):
    logits, target = make_problem(rng, "labels")
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    out = tmp_path / f"per_row.{suffix}"
    status, stdout, err = run_main(capsys, ["score", lpath, tpath, "--out", str(out)])
    assert status == 0, err
    assert str(out) in stdout
    rows, _ = oracle(logits, target, "labels")
    names = list(rows)
    if suffix == "npz":
        with np.load(out) as saved:
            got = {m: saved[m] for m in names}
    elif suffix == "npy":
        stacked = np.load(out)
        assert stacked.shape == (len(logits), len(names))
        got = {m: stacked[:, i] for i, m in enumerate(names)}
    else:
        delimiter = "," if suffix == "csv" else None
        with open(out) as f:
            header = f.readline()
        assert header.startswith("# ")
        assert header[2:].strip().replace(" ", ",").split(",") == names
        # the header is a comment: np.loadtxt reads the numbers as they are, and
        # np.genfromtxt(names=True) the named columns
        table = np.loadtxt(out, delimiter=delimiter)
        got = {m: table[:, i] for i, m in enumerate(names)}
        named = np.genfromtxt(out, names=True, delimiter=delimiter)
        assert list(named.dtype.names) == names
        for m in names:
            np.testing.assert_array_equal(named[m], got[m])
    for m in names:
        np.testing.assert_allclose(got[m], rows[m], rtol=1e-10, atol=1e-13, err_msg=m)


def test_score_out_one_metric_npy_has_the_row_shape(tmp_path, capsys, rng):
    logits = rng.standard_normal((4, 5, 3))
    target = rng.integers(0, 3, size=(4, 5))
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    out = tmp_path / "ce.npy"
    assert cli.main(["score", lpath, tpath, "--metric", "cross_entropy",
                     "--out", str(out)]) == 0
    rows, _ = oracle(logits, target, "labels")
    saved = np.load(out)
    assert saved.shape == (4, 5)
    np.testing.assert_allclose(saved, rows["cross_entropy"], rtol=1e-10)


@pytest.mark.parametrize("kind,axis", [("labels", -1), ("probs", -1), ("logits", 0),
                                       ("labels", 1)])
def test_blockwise_is_identical_to_one_call(tmp_path, capsys, rng, kind, axis):
    shape = {-1: (203, 9), 0: (9, 203), 1: (5, 9, 41)}[axis]
    logits, target = make_problem(rng, kind, shape=shape, dtype=np.float32, axis=axis)
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    base = ["score", lpath, tpath, "--target-type", kind, "--axis", str(axis)]
    whole = run_json(capsys, base + ["--out", str(tmp_path / "whole.npz")])
    blocks = run_json(capsys, base + ["--block-rows", "2" if axis == 1 else "7",
                                      "--out", str(tmp_path / "blocks.npz")])
    assert blocks == whole  # bit-identical
    with np.load(tmp_path / "whole.npz") as a, np.load(tmp_path / "blocks.npz") as b:
        for m in a.files:
            np.testing.assert_array_equal(a[m], b[m])
    rows, kept = oracle(logits, target, kind, axis=axis)
    want = oracle_reduced(rows, kept, "mean")
    for m in want:
        np.testing.assert_allclose(whole[m], want[m], rtol=3e-5, atol=1e-6, err_msg=m)


def test_large_npy_is_memory_mapped_and_blocked(tmp_path, rng, monkeypatch):
    """A .npy larger than the block budget is read as a memmap, one block at a time."""
    logits, target = make_problem(rng, "labels", shape=(300, 8))
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    mapped = _score.load_array(lpath)
    assert isinstance(mapped, np.memmap)
    assert _score.block_rows_for(mapped) is None  # small: one call
    monkeypatch.setattr(_score, "DEFAULT_BLOCK_BYTES", 64 * 8 * 8)  # 64 rows a block
    assert _score.block_rows_for(mapped) == 64
    assert _score.block_rows_for(np.asarray(logits)) is None  # in memory: never cut
    seen = []
    real_decompose = divcore.decompose

    def counting_decompose(x, *args, **kw):
        seen.append(len(x))
        return real_decompose(x, *args, **kw)

    monkeypatch.setattr(divcore, "decompose", counting_decompose)
    reduced, _ = _score.score(mapped, target, metrics=("cross_entropy",))
    assert seen == [64, 64, 64, 64, 44]
    rows, kept = oracle(logits, target, "labels")
    np.testing.assert_allclose(reduced["cross_entropy"],
                               oracle_reduced(rows, kept, "mean")["cross_entropy"], rtol=1e-10)


def test_block_rows_environment_variable(tmp_path, rng):
    logits, target = make_problem(rng, "probs", shape=(50, 5))
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    one = run_module("score", lpath, tpath, "--json")
    env = run_module("score", lpath, tpath, "--json", env={_score.BLOCK_ROWS_ENV: "3"})
    assert one.returncode == 0 and env.returncode == 0, one.stderr + env.stderr
    assert json.loads(env.stdout) == json.loads(one.stdout)
    bad = run_module("score", lpath, tpath, env={_score.BLOCK_ROWS_ENV: "many"})
    assert bad.returncode == 1 and _score.BLOCK_ROWS_ENV in bad.stderr


def test_progress_bar_only_on_a_terminal():
    class Terminal:
        def __init__(self, tty):
            self.text, self.tty = "", tty

        def isatty(self):
            return self.tty

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    shown = Terminal(True)
    bar = _score.Progress(10, stream=shown)
    bar.update(5)
    bar.update(10)
    bar.close()
    assert "5/10 rows" in shown.text and "10/10 rows" in shown.text
    assert shown.text.startswith("\r") and shown.text.endswith("\n")
    hidden = Terminal(False)
    bar = _score.Progress(10, stream=hidden)
    bar.update(10)
    bar.close()
    assert hidden.text == ""


def test_table_output(tmp_path, capsys, rng):
    logits, target = make_problem(rng, "labels")
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    status, out, _ = run_main(capsys, ["score", lpath, tpath, "--base", "2"])
    assert status == 0
    rows, kept = oracle(logits, target, "labels", base=2.0)
    want = oracle_reduced(rows, kept, "mean")
    assert "read as labels" in out and "in bits" in out
    assert f"({np.count_nonzero(~kept)} ignored)" in out
    for metric, value in want.items():
        line = next(row for row in out.splitlines() if row.startswith(metric))
        assert math.isclose(float(line.split()[-1]), value, rel_tol=1e-7, abs_tol=1e-12)


# ------------------------------------------------------------------------- errors

def write_bytes(path, data):
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def good_files(tmp_path, rng):
    logits, target = make_problem(rng, "labels", shape=(10, 4))
    return (save(tmp_path, "logits", logits, "npy")[0],
            save(tmp_path, "target", target, "npy")[0])


@pytest.mark.parametrize("case", [
    "missing", "malformed_npy", "truncated_npy", "malformed_csv", "empty_csv", "bad_npz",
    "npz_needs_key", "npz_wrong_key", "unknown_suffix", "wrong_shape", "label_out_of_range",
    "not_probabilities", "axis", "temperature", "out_suffix", "object_array", "key_on_npy",
    "fractional_labels",
])
def test_errors_are_one_line(tmp_path, capsys, rng, good_files, case):
    logits, target = good_files
    argv = {
        "missing": ["score", str(tmp_path / "nope.npy"), target],
        "malformed_npy": ["score", write_bytes(tmp_path / "bad.npy", b"not numpy"), target],
        "truncated_npy": ["score", write_bytes(tmp_path / "cut.npy",
                                               open(logits, "rb").read()[:140]), target],
        "malformed_csv": ["score", write_bytes(tmp_path / "bad.csv", b"1,2,x\n3,4,5\n"),
                          target],
        "empty_csv": ["score", write_bytes(tmp_path / "empty.csv", b""), target],
        "bad_npz": ["score", write_bytes(tmp_path / "bad.npz", b"PK not a zip"), target],
        "npz_needs_key": ["score", save(tmp_path, "logits", np.ones((10, 4)), "npz")[0],
                          target],
        "npz_wrong_key": ["score", save(tmp_path, "logits", np.ones((10, 4)), "npz")[0],
                          target, "--key", "nothing"],
        "unknown_suffix": ["score", write_bytes(tmp_path / "x.parquet", b"1"), target],
        "wrong_shape": ["score", logits, save(tmp_path, "t2", np.zeros(9, int), "npy")[0]],
        "label_out_of_range": ["score", logits,
                               save(tmp_path, "t3", np.full(10, 4), "npy")[0]],
        "not_probabilities": ["score", logits, logits],
        "axis": ["score", logits, target, "--axis", "5"],
        "temperature": ["score", logits, target, "--temperature", "0"],
        "out_suffix": ["score", logits, target, "--out", str(tmp_path / "x.bin")],
        "object_array": ["score", save(tmp_path, "obj", np.array([1, 2], dtype="U1"),
                                       "npy")[0], target],
        "key_on_npy": ["score", logits, target, "--key", "logits"],
        "fractional_labels": ["score", logits,
                              write_bytes(tmp_path / "t.csv", b"0\n1\n2\n0.5\n1\n1\n1\n1\n1\n1\n")],
    }[case]
    status, out, err = run_main(capsys, argv)
    assert status == 1
    assert out == ""
    assert err.startswith("divcore score: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_errors_in_a_process_have_no_traceback(tmp_path, good_files):
    logits, target = good_files
    for argv in (["score", str(tmp_path / "missing.npy"), target],
                 ["score", write_bytes(tmp_path / "bad.npy", b"\x93NUMPY garbage"), target]):
        result = run_module(*argv)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, \
            result.stderr
    usage = run_module("score", logits)  # argparse: a usage line, exit status 2
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


# ------------------------------------------------ issue 12: headers, JSON, options, hints

def _pandas_csv(array, columns=None, index=True):
    """`array` as pandas' DataFrame.to_csv (or Series.to_csv) writes it: a header row of
    column names (default 0, 1, ...), with the index column first (its name empty)."""
    array = np.asarray(array)
    table = array.reshape(len(array), -1)
    names = [str(c) for c in (columns if columns is not None else range(table.shape[1]))]
    lines = [",".join(([""] if index else []) + names)]
    for i, row in enumerate(table):
        values = [repr(float(v)) if array.dtype.kind == "f" else str(int(v)) for v in row]
        lines.append(",".join(([str(i)] if index else []) + values))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("kind", ["labels", "probs"])
@pytest.mark.parametrize("index", [True, False], ids=["with_index", "no_index"])
def test_score_reads_csv_with_a_header_row(tmp_path, capsys, rng, kind, index):
    logits, target = make_problem(rng, kind, shape=(12, 4))
    lpath = tmp_path / "logits.csv"
    lpath.write_text(_pandas_csv(logits, columns=list("abcd"), index=index))
    tpath = tmp_path / "target.csv"
    # labels: a named Series; probabilities: a DataFrame with named columns
    tpath.write_text(_pandas_csv(target, columns=["label"] if kind == "labels"
                                 else ["p0", "p1", "p2", "p3"], index=index))
    got = run_json(capsys, ["score", str(lpath), str(tpath)])
    want = oracle_reduced(*oracle(logits, target, kind), "mean")
    for m in want:
        assert got[m] == pytest.approx(want[m], rel=1e-12, abs=1e-14), m


def test_score_csv_header_and_comments_before_it(tmp_path, capsys, rng):
    logits, target = make_problem(rng, "labels", shape=(6, 3))
    lpath = tmp_path / "logits.csv"
    lpath.write_text("# written by hand\n\n" + _pandas_csv(logits, columns=["x", "y", "z"],
                                                           index=False))
    tpath = tmp_path / "labels.npy"
    np.save(tpath, target)
    got = run_json(capsys, ["score", str(lpath), str(tpath)])
    want = oracle_reduced(*oracle(logits, target, "labels"), "mean")
    assert got["cross_entropy"] == pytest.approx(want["cross_entropy"], rel=1e-12)


def test_score_json_is_strict_with_null_for_nan(tmp_path, capsys, rng):
    logits, target = make_problem(rng, "labels", shape=(5, 3))
    logits[2, 1] = np.nan  # row 2 has no value: nan, and so has the mean
    target[:] = np.abs(target) % 3
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")

    def strict(text):
        def refuse(constant):
            raise AssertionError(f"not strict JSON: {constant}")
        return json.loads(text, parse_constant=refuse)

    for reduction in ("mean", "none"):
        status, out, err = run_main(capsys, ["score", lpath, tpath, "--json",
                                             "--reduction", reduction])
        assert status == 0, err
        got = strict(out)
        if reduction == "mean":
            assert all(got[m] is None for m in ("cross_entropy", "kl_divergence"))
            continue
        rows, _ = oracle(logits, target, "labels")
        for m, values in got.items():
            # H(p) of a label is 0 whatever the logits; the others are nan there
            assert values[2] is None if m != "entropy" else values[2] == 0.0
            others = [v for i, v in enumerate(values) if i != 2]
            np.testing.assert_allclose(others, np.delete(rows[m], 2), rtol=1e-12, atol=1e-14)


def test_score_json_infinity_is_null(tmp_path, capsys):
    # target mass on a -inf logit: cross-entropy +inf
    lpath = tmp_path / "logits.npy"
    np.save(lpath, np.array([[0.0, -np.inf, 1.0]]))
    tpath = tmp_path / "target.npy"
    np.save(tpath, np.array([[0.25, 0.5, 0.25]]))
    status, out, err = run_main(capsys, ["score", str(lpath), str(tpath), "--json"])
    assert status == 0, err
    assert json.loads(out)["cross_entropy"] is None
    assert "Infinity" not in out and "NaN" not in out


def run_argv(capsys, argv):
    """cli.main(argv) whether it returns a status or argparse exits."""
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("option", [
    ["--temperature", "abc"], ["--temperature", "0"], ["--temperature", "nan"],
    ["--reduction", "avg"], ["--base", "1"], ["--base", "x"], ["--base", "-2"],
    ["--axis", "x"], ["--axis", "3"], ["--ignore-index", "1.5"], ["--metric", "bogus"],
    ["--target-type", "prob"], ["--block-rows", "0"], ["--block-rows", "many"],
])
def test_bad_option_values_are_one_line_with_status_1(capsys, good_files, option):
    logits, target = good_files
    status, out, err = run_argv(capsys, ["score", logits, target, *option])
    assert status == 1, (status, err)
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("divcore score: error: ") and "Traceback" not in err, err


@pytest.mark.parametrize("argv", [
    ["score"], ["score", "only_logits.npy"], ["score", "a.npy", "b.npy", "--bogus"],
    ["score", "a.npy", "b.npy", "--axis"], ["bogus"],
])
def test_unreadable_command_lines_are_one_line_with_status_2(capsys, argv):
    status, out, err = run_argv(capsys, argv)
    assert status == 2 and out == "" and err.count("\n") == 1, (status, err)
    assert err.startswith("divcore") and "error: " in err and "--help" in err


def test_negative_float_target_error_names_the_cli_flags(tmp_path, rng):
    # log-probabilities given without --target-type: the error must give the command
    # line's flags, not the library's keywords, and the target type before --no-validate
    logits, target = make_problem(rng, "log_probs", shape=(8, 5))
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    result = run_module("score", lpath, tpath)
    err = result.stderr
    assert result.returncode == 1 and err.count("\n") == 1, err
    assert "--target-type log_probs" in err and "--target-type logits" in err, err
    assert "target_type" not in err and "validate=" not in err, err
    if "--no-validate" in err:
        assert err.index("--target-type log_probs") < err.index("--no-validate"), err
    # and the advice gives the right numbers
    done = run_module("score", lpath, tpath, "--target-type", "log_probs", "--json")
    assert done.returncode == 0, done.stderr
    want = oracle_reduced(*oracle(logits, target, "log_probs"), "mean")
    got = json.loads(done.stdout)
    for m in want:
        assert got[m] == pytest.approx(want[m], rel=1e-12, abs=1e-14), m


@pytest.mark.parametrize("message, want", [
    ("it has a negative or NaN entry (pass validate=False to skip this check)",
     "it has a negative or NaN entry (pass --no-validate to skip this check)"),
    ("pass target_type='log_probs' or 'logits' first; validate=False skips the check",
     "pass --target-type log_probs or --target-type logits first; --no-validate skips the "
     "check"),
    ('target_type="log_probs", "logits" or validate=False',
     "--target-type log_probs, --target-type logits or --no-validate"),
    ("use target_type=logits with temperature=2.0 and axis=0",
     "use --target-type logits with --temperature 2.0 and --axis 0"),
    ("ignore_index=-100 and reduction='none'", "--ignore-index -100 and --reduction none"),
    ("weight=None has no flag; label_smoothing=0.1 neither",
     "weight=None has no flag; label_smoothing=0.1 neither"),
    ("sums to 0.99 (|sum - 1| > 1.5e-08)", "sums to 0.99 (|sum - 1| > 1.5e-08)"),
])
def test_command_line_words(message, want):
    assert _score.command_line_words(message) == want


# --------------------------------------------------------------------------- demo

def test_demo_is_the_default_and_passes(capsys):
    for argv in ([], ["demo"]):
        status, out, _ = run_main(capsys, argv)
        assert status == 0
        assert "CE = H + KL holds" in out
        assert "dCE/dz == dKL/dz element for element: True" in out
        assert "All checks hold." in out


def test_demo_in_a_process():
    result = run_module()
    assert result.returncode == 0, result.stderr
    assert "All checks hold." in result.stdout
    version = run_module("--version")
    assert version.returncode == 0 and divcore.__version__ in version.stdout


def test_demo_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "kl.png"
    status, out, err = run_main(capsys, ["demo", "--plot", str(path)])
    assert status == 0, err
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert f"wrote {path}" in out


@pytest.mark.parametrize("name", ["missing_folder/kl.png", "kl.unknown_format"])
def test_demo_plot_unwritable_is_one_line(tmp_path, capsys, name):
    pytest.importorskip("matplotlib")
    status, _, err = run_main(capsys, ["demo", "--plot", str(tmp_path / name)])
    assert status == 1
    assert err.startswith("divcore demo: error: --plot") and err.count("\n") == 1


def test_demo_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    status, out, err = run_main(capsys, ["demo", "--plot", str(tmp_path / "x.png")])
    assert status == 1 and out == ""
    assert "matplotlib" in err and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()


def test_kl_fits_cover_and_seek():
    """Forward KL over an exponential family matches moments: q's mean and variance on the
    grid equal p's. Reverse KL sits on one well-separated mode, with that mode's width."""
    x = _kl_fit.GRID
    p = special.softmax(_kl_fit.target_logits())
    forward = _kl_fit.fit(reverse=False)
    q = special.softmax(forward.model_logits)
    np.testing.assert_allclose(q @ x, p @ x, atol=1e-3)
    np.testing.assert_allclose(q @ x ** 2, p @ x ** 2, rtol=1e-3)
    reverse = _kl_fit.fit(reverse=True)
    centre, width, weight = _kl_fit.MODES[1]
    assert abs(reverse.mu - centre) < 1e-2 and abs(reverse.sigma - width) < 1e-2
    # on one mode holding half of p's mass: KL(q||p) = log(1 / weight)
    assert math.isclose(reverse.kl, -math.log(weight), rel_tol=1e-3)
    assert forward.sigma > 4 * reverse.sigma


# ----------------------------------------------------------------- selfcheck, bench

def test_selfcheck_passes_its_arguments_on(capsys, monkeypatch):
    seen = []
    fake = types.ModuleType("divcore.selfcheck")
    fake.main = lambda argv=None: seen.append(argv) or 3
    monkeypatch.setitem(sys.modules, "divcore.selfcheck", fake)
    assert cli.main(["selfcheck", "--quick", "-v"]) == 3
    assert seen == [["--quick", "-v"]]


def test_selfcheck_missing_module_is_one_line(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "divcore.selfcheck", None)  # -> ModuleNotFoundError
    status, _, err = run_main(capsys, ["selfcheck"])
    assert status == 1 and err.count("\n") == 1 and "selfcheck" in err


def test_bench_quick(capsys, monkeypatch):
    from divcore import _bench

    monkeypatch.setattr(_bench, "MIN_REPEAT_SECONDS", 1e-4)
    status, out, _ = run_main(capsys, ["bench", "--rows", "16", "--classes", "32",
                                       "--repeat", "1"])
    assert status == 0
    assert "CE, int labels" in out and "numpy" in out and "GB/s" in out
    assert "differs" not in out  # every peer agreed with divcore


def test_bench_results_agree_and_ratio_is_relative_to_divcore():
    from divcore import _bench

    results = _bench.run(rows=8, classes=16, repeat=1, out=lambda *a: None)
    assert all(r["agrees"] for r in results)
    for r in results:
        if r["implementation"] == "divcore":
            assert r["vs_divcore"] == 1.0


def test_bench_full(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda argv: calls.append(argv) or 0)
    monkeypatch.setattr(cli, "full_benchmark_path", lambda: "/x/benchmarks/bench.py")
    assert cli.main(["bench", "--full", "--quick", "--repeat", "2"]) == 0
    assert calls == [[sys.executable, "/x/benchmarks/bench.py", "--quick", "--repeat", "2"]]
    monkeypatch.setattr(cli, "full_benchmark_path", lambda: None)
    status, _, err = run_main(capsys, ["bench", "--full"])
    assert status == 1 and "source tree" in err


def test_full_benchmark_path_in_a_checkout():
    if not os.path.isfile(os.path.join(REPO, "benchmarks", "bench.py")):
        pytest.skip("not a source checkout")
    if os.path.dirname(os.path.dirname(os.path.abspath(divcore.__file__))) != REPO:
        pytest.skip("divcore is imported from an installed copy")
    assert cli.full_benchmark_path() == os.path.join(REPO, "benchmarks", "bench.py")


def test_score_help_states_the_output_order_and_null(capsys, tmp_path, rng):
    status, out, _ = run_argv(capsys, ["score", "--help"])
    assert status == 0
    text = " ".join(out.split())
    # the order --help states is the order of the --out columns
    logits, target = make_problem(rng, "labels", shape=(4, 3))
    lpath, _ = save(tmp_path, "logits", logits, "npy")
    tpath, _ = save(tmp_path, "target", target, "npy")
    out_path = tmp_path / "rows.csv"
    assert cli.main(["score", lpath, tpath, "--out", str(out_path)]) == 0
    capsys.readouterr()
    names = np.genfromtxt(out_path, names=True, delimiter=",").dtype.names
    assert "order " + ", ".join(names) in text
    assert "null" in text and "exit status 1" in text.lower()


def test_score_stored_probabilities_and_sum_tol(capsys, tmp_path):
    """Probabilities written with 6 decimals pass by default (issue 12 item 4); --sum-tol
    tightens or widens the check, and the error names the flag, not the keyword."""
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((20, 300))
    p = rng.random((20, 300))
    p = p / p.sum(axis=1, keepdims=True)
    lpath, tpath = str(tmp_path / "logits.npy"), str(tmp_path / "target.csv")
    np.save(lpath, logits)
    np.savetxt(tpath, p, fmt="%.6f", delimiter=",")
    stored = np.loadtxt(tpath, delimiter=",")
    got = run_json(capsys, ["score", lpath, tpath, "--metric", "cross_entropy"])
    want = float(divcore.reference.cross_entropy(logits, stored, validate=False))
    assert abs(got["cross_entropy"] - want) <= 1e-12 * abs(want)
    status, out, err = run_main(capsys, ["score", lpath, tpath, "--sum-tol", "1e-12"])
    assert status == 1 and "--sum-tol" in err and "sum_tol" not in err.replace("--sum-tol", "")
    p[3] *= 1.01  # a row summing to 1.01: refused by default, accepted when asked
    np.savetxt(tpath, p, fmt="%.6f", delimiter=",")
    status, out, err = run_main(capsys, ["score", lpath, tpath])
    assert status == 1 and "row 3" in err
    assert run_main(capsys, ["score", lpath, tpath, "--sum-tol", "0.02"])[0] == 0
    status, out, err = run_main(capsys, ["score", lpath, tpath, "--sum-tol", "-1"])
    assert status == 1 and "--sum-tol" in err
