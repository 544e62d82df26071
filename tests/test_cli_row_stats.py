"""`divcore score` with labels reports perplexity, accuracy and the model's mean entropy
(divcore.row_stats); `divcore topk` writes a teacher's top-k to an .npz. Both checked
against float64 numpy oracles, blockwise and in one call; errors are one line, status 1."""
import json
import math

import numpy as np
import pytest

from divcore import _score, cli


def run(capsys, argv):
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def problem(tmp_path, rng, n=60, c=9, dtype=np.float64):
    logits = (rng.standard_normal((n, c)) * 2).astype(dtype)
    labels = rng.integers(0, c, n)
    labels[::7] = -100  # ignored rows
    lpath, ypath = str(tmp_path / "logits.npy"), str(tmp_path / "labels.npy")
    np.save(lpath, logits)
    np.save(ypath, labels)
    return logits, labels, lpath, ypath


def oracle_stats(logits, labels, temperature=1.0, base=None):
    kept = labels != -100
    x = logits[kept].astype(np.float64) / temperature
    y = labels[kept]
    lse = np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
    lq = x - lse[:, None]
    h = -(np.exp(lq) * lq).sum(1)
    unit = math.log(base) if base else 1.0
    return {"perplexity": math.exp(-lq[np.arange(len(y)), y].mean()),
            "accuracy": float(np.mean(x.argmax(1) == y)),
            "model_entropy": float(h.mean()) / unit}


@pytest.mark.parametrize("options", [[], ["--temperature", "2.5"], ["--base", "2"],
                                     ["--block-rows", "7"], ["--reduction", "sum"]])
def test_score_reports_label_statistics(tmp_path, capsys, rng, options):
    logits, labels, lpath, ypath = problem(tmp_path, rng)
    status, out, err = run(capsys, ["score", lpath, ypath, "--json", *options])
    assert status == 0, err
    got = json.loads(out)
    kw = {}
    if "--temperature" in options:
        kw["temperature"] = 2.5
    if "--base" in options:
        kw["base"] = 2.0
    want = oracle_stats(logits, labels, **kw)
    for name, value in want.items():
        assert math.isclose(got[name], value, rel_tol=1e-10), (name, got[name], value)


def test_score_table_and_other_targets(tmp_path, capsys, rng):
    logits, labels, lpath, ypath = problem(tmp_path, rng, dtype=np.float32)
    status, out, _ = run(capsys, ["score", lpath, ypath])
    assert status == 0
    want = oracle_stats(logits, labels)
    for name, value in want.items():
        line = next(row for row in out.splitlines() if row.startswith(name))
        assert math.isclose(float(line.split()[-1]), value, rel_tol=1e-5)
    # not for probabilities, nor with --reduction none, nor when metrics are chosen
    p = np.full(logits.shape, 1.0 / logits.shape[1])
    np.save(tmp_path / "p.npy", p)
    got = json.loads(run(capsys, ["score", lpath, str(tmp_path / "p.npy"), "--json"])[1])
    assert "perplexity" not in got
    got = json.loads(run(capsys, ["score", lpath, ypath, "--json", "--reduction", "none"])[1])
    assert "perplexity" not in got
    got = json.loads(run(capsys, ["score", lpath, ypath, "--json", "--metric",
                                  "cross_entropy"])[1])
    assert list(got) == ["cross_entropy"]


@pytest.mark.parametrize("block_rows", [None, "5"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_topk_writes_indices_and_log_probs(tmp_path, capsys, rng, block_rows, temperature):
    logits = rng.standard_normal((23, 40)).astype(np.float32)
    logits[3, :6] = 5.0  # ties: the lower index first
    path, out = str(tmp_path / "teacher.npy"), str(tmp_path / "top.npz")
    np.save(path, logits)
    argv = ["topk", path, "-k", "6", "-o", out, "--temperature", str(temperature)]
    if block_rows:
        argv += ["--block-rows", block_rows]
    status, stdout, err = run(capsys, argv)
    assert status == 0, err
    with np.load(out) as f:
        idx, lp = f["indices"], f["log_probs"]
    assert idx.dtype == np.int64 and lp.dtype == np.float32 and idx.shape == (23, 6)
    x = logits.astype(np.float64) / temperature
    lq = x - (np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1))[:, None]
    order = np.argsort(-(logits / np.float32(temperature)), axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(idx, order)
    assert idx[3].tolist() == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(lp, np.take_along_axis(lq, order, 1), rtol=1e-5, atol=1e-6)


def test_topk_large_file_is_read_in_blocks(tmp_path, rng, monkeypatch):
    logits = rng.standard_normal((50, 8)).astype(np.float32)
    path = str(tmp_path / "t.npy")
    np.save(path, logits)
    seen = []
    real = _score._row_stats_block

    def counting(block, *args):
        seen.append(block.shape[0])
        return real(block, *args)

    monkeypatch.setattr(_score, "_row_stats_block", counting)
    monkeypatch.setattr(_score, "DEFAULT_BLOCK_BYTES", 8 * 4 * 16)  # 16 rows per block
    idx, lp = _score.topk(_score.load_array(path), 3)
    assert seen == [16, 16, 16, 2]
    np.testing.assert_array_equal(idx, np.argsort(-logits, 1, kind="stable")[:, :3])


def test_topk_progress_line_on_a_terminal(tmp_path):
    class Tty:
        def __init__(self):
            self.text = ""

        def isatty(self):
            return True

        def write(self, s):
            self.text += s

        def flush(self):
            pass

    stream = Tty()
    logits = np.zeros((10, 4), dtype=np.float32)
    _score.topk(logits, 2, block_rows=4, progress=_score.Progress(10, stream, "topk"))
    assert "topk [" in stream.text and "10/10 rows" in stream.text


@pytest.mark.parametrize("argv, words", [
    (["-k", "50"], ["-k must be in [0, 30]"]),
    (["-k", "-1"], ["-k must be in"]),
    (["-k", "2", "--temperature", "0"], ["--temperature"]),
    (["-k", "2", "--axis", "5"], ["axis 5"]),
])
def test_topk_errors_are_one_line(tmp_path, capsys, rng, argv, words):
    path = str(tmp_path / "t.npy")
    np.save(path, rng.standard_normal((4, 30)))
    status, out, err = run(capsys, ["topk", path, "-o", str(tmp_path / "o.npz"), *argv])
    assert status == 1 and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err


def test_topk_bad_files_are_one_line(tmp_path, capsys, rng):
    path = str(tmp_path / "t.npy")
    np.save(path, rng.standard_normal((4, 3)))
    status, _, err = run(capsys, ["topk", path, "-k", "2", "-o", str(tmp_path / "o.txt")])
    assert status == 1 and "OUT.npz" in err and len(err.strip().splitlines()) == 1
    status, _, err = run(capsys, ["topk", str(tmp_path / "missing.npy"), "-k", "2", "-o",
                                  str(tmp_path / "o.npz")])
    assert status == 1 and "not found" in err
