"""`divcore score LOGITS TOP_K.npz`: a student's logits against a teacher's top-k file
(written by `divcore topk`), blockwise; checked against a float64 numpy oracle of the
coarse-grained (bucket) distributions and against the library."""
import json

import numpy as np
import pytest

import divcore
from divcore import cli


def run(capsys, argv):
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(5)
    teacher = rng.normal(size=(40, 30)) * 2
    student = teacher + rng.normal(size=(40, 30))
    tpath, spath, kpath = (str(tmp_path / n) for n in ("t.npy", "s.npy", "top.npz"))
    np.save(tpath, teacher)
    np.save(spath, student)
    return teacher, student, tpath, spath, kpath


def bucket_kl_oracle(student, teacher, k):
    def log_softmax(z):
        m = z.max(1, keepdims=True)
        return z - m - np.log(np.exp(z - m).sum(1, keepdims=True))
    lp, lq = log_softmax(teacher), log_softmax(student)
    idx = np.argsort(-lp, axis=1, kind="stable")[:, :k]
    p, q = np.exp(np.take_along_axis(lp, idx, 1)), np.exp(np.take_along_axis(lq, idx, 1))
    rest = np.ones(lq.shape, bool)
    np.put_along_axis(rest, idx, False, 1)
    p_r = np.where(rest, np.exp(lp), 0).sum(1)  # the rests summed, never 1 - Σ
    q_r = np.where(rest, np.exp(lq), 0).sum(1)
    return np.sum(p * np.log(p / q), 1) + p_r * np.log(p_r / q_r)


@pytest.mark.parametrize("block_rows", [None, "7"])
def test_score_against_a_topk_file(capsys, files, block_rows):
    teacher, student, tpath, spath, kpath = files
    assert run(capsys, ["topk", tpath, "-k", "5", "-o", kpath])[0] == 0
    argv = ["score", spath, kpath, "--json", "--metric", "kl_divergence"]
    if block_rows:
        argv += ["--block-rows", block_rows]
    status, out, _ = run(capsys, argv)
    assert status == 0
    got = json.loads(out)["kl_divergence"]
    # the file's log-probabilities are float32: the oracle's teacher is the dense float64 one
    assert np.isclose(got, bucket_kl_oracle(student, teacher, 5).mean(), rtol=1e-5)
    z = np.load(kpath)
    lib = divcore.kl_divergence(student, divcore.TopK(z["indices"], z["log_probs"]))
    assert np.isclose(got, lib, rtol=1e-12)


def test_tail_flag_and_table(capsys, files):
    _, student, tpath, spath, kpath = files
    run(capsys, ["topk", tpath, "-k", "5", "-o", kpath])
    status, out, _ = run(capsys, ["score", spath, kpath, "--tail", "renormalize"])
    assert status == 0 and "top-k teacher (k = 5, tail renormalize)" in out
    assert "js_divergence" in out
    status, out, _ = run(capsys, ["score", spath, kpath, "--tail", "drop", "--json"])
    assert status == 0 and "js_divergence" not in json.loads(out)  # not a divergence there
    z = np.load(kpath)
    expect = divcore.cross_entropy(student, divcore.TopK(z["indices"], z["log_probs"]),
                                   tail="drop")
    assert np.isclose(json.loads(out)["cross_entropy"], expect, rtol=1e-12)


def test_tail_with_a_dense_target_is_one_line_error(capsys, files):
    teacher, _, tpath, spath, _ = files
    status, _, err = run(capsys, ["score", spath, tpath, "--tail", "drop"])
    assert status == 1 and "--tail" in err and len(err.strip().splitlines()) == 1


def test_topk_file_of_the_wrong_rows(capsys, files, tmp_path):
    _, student, tpath, spath, kpath = files
    run(capsys, ["topk", tpath, "-k", "5", "-o", kpath])
    np.save(str(tmp_path / "short.npy"), student[:10])
    status, _, err = run(capsys, ["score", str(tmp_path / "short.npy"), kpath])
    assert status == 1 and "top-k indices" in err
