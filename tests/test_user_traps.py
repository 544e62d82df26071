"""Traps a new user hit (issue 12), each pinned down on both backends: ignore_index with a
soft target, advice that gave wrong numbers, float labels, and source checkouts."""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import divcore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------ 1. ignore_index, soft targets

@pytest.mark.parametrize("target_type", ["probs", "log_probs", "logits"])
@pytest.mark.parametrize("fname", ["cross_entropy", "decompose", "cross_entropy_and_grad"])
def test_ignore_index_with_a_soft_target_is_refused(dc, fname, target_type):
    x = np.array([[1.0, 2, 3], [0.5, 0.1, -1]])
    p = np.array([[0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    t = {"probs": p, "log_probs": np.log(p), "logits": x[::-1].copy()}[target_type]
    fn = getattr(dc, fname)
    with pytest.raises(ValueError, match="ignore_index"):
        fn(x, t, target_type=target_type, ignore_index=1)
    # the default and None stay accepted, with the same value
    a = fn(x, t, target_type=target_type)
    b = fn(x, t, target_type=target_type, ignore_index=None)
    assert np.array_equal(np.asarray(a[0] if isinstance(a, tuple) else a),
                          np.asarray(b[0] if isinstance(b, tuple) else b))


def test_the_issue_example(dc):
    with pytest.raises(ValueError, match="ignore_index"):
        dc.cross_entropy([[1., 2, 3], [.5, .1, -1]], [[.2, .3, .5], [1 / 3, 1 / 3, 1 / 3]],
                         ignore_index=1)


# ------------------------------------------------- 2. advice that gives right numbers

def test_negative_target_advice_names_the_right_target_type_first(dc):
    """Log-probabilities passed without target_type: the message suggests target_type
    before validate=False, and following it gives the right value."""
    x = np.array([[0.5, 1.5, -0.5]])
    log_p = np.log(np.array([[0.2, 0.5, 0.3]]))
    with pytest.raises(ValueError) as info:
        dc.cross_entropy(x, log_p)
    msg = str(info.value)
    assert "target_type='log_probs'" in msg and "target_type='logits'" in msg
    assert msg.index("target_type='log_probs'") < msg.index("validate=False")
    right = dc.cross_entropy(x, log_p, target_type="log_probs")
    want = -(np.exp(log_p) * (x - np.log(np.exp(x).sum()))).sum()
    assert abs(right - want) < 1e-12


def test_teacher_logits_advice(dc):
    z = np.array([[1.0, -2.0, 0.5]])
    with pytest.raises(ValueError, match="target_type='logits'"):
        dc.kl_divergence(z, z)
    assert dc.kl_divergence(z, z, target_type="logits") == 0.0


# ------------------------------------------------------------------ 3. float labels

def test_float_labels_of_the_leading_shape_say_how_to_pass_labels(dc):
    x = np.zeros((4, 3))
    labels = np.array([0, 2, 1, 0])
    with pytest.raises(ValueError, match="astype") as info:
        dc.cross_entropy(x, labels.astype(float))
    assert "probabilities" in str(info.value) and "target_type='labels'" in str(info.value)
    assert dc.cross_entropy(x, labels.astype(float), target_type="labels") \
        == dc.cross_entropy(x, labels)


# ------------------------------------------------------------- 8. source checkouts

def _checkout_copy(dest):
    """The Python and Cython sources of this checkout, without any built extension."""
    shutil.copytree(os.path.join(ROOT, "divcore"), os.path.join(dest, "divcore"),
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__",
                                                  "include"))
    shutil.copytree(os.path.join(ROOT, "src"), os.path.join(dest, "src"))


def _installed_copy(dest, core_file):
    """A folder as an install leaves it: the package with its compiled core and the headers
    in include/divcore."""
    pkg = os.path.join(dest, "divcore")
    shutil.copytree(os.path.join(ROOT, "divcore"), pkg,
                    ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__", "include"))
    shutil.copy2(core_file, pkg)
    shutil.copytree(os.path.join(ROOT, "src", "divcore"), os.path.join(pkg, "include",
                                                                       "divcore"))


def _import_in(checkout, extra_path):
    code = ("import warnings; warnings.simplefilter('always')\n"
            "import divcore; print(divcore.backend())")
    env = dict(os.environ, PYTHONPATH=extra_path)
    env.pop("DIVCORE_BACKEND", None)
    return subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, "src", "divcore")),
                    reason="not a source checkout")
@pytest.mark.skipif(divcore.backend() != "compiled", reason="needs a built core")
def test_an_unbuilt_checkout_says_how_to_build(tmp_path):
    checkout = tmp_path / "checkout"
    _checkout_copy(checkout)
    with open(os.path.join(checkout, "divcore", "_front.pxi"), "a") as f:
        f.write("\n# an edit no installed copy was built from\n")
    out = _import_in(checkout, "")
    assert out.stdout.strip() == "reference", out.stderr
    assert "build it with" in out.stderr and "pip install -e ." in out.stderr
    assert "circular import" not in out.stderr


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, "src", "divcore")),
                    reason="not a source checkout")
@pytest.mark.skipif(divcore.backend() != "compiled", reason="needs a built core")
def test_a_checkout_uses_an_installed_core_only_from_the_same_sources(tmp_path):
    core = glob.glob(os.path.join(os.path.dirname(divcore._kernels.__file__), "_core.*"))
    core = [c for c in core if c.endswith((".so", ".pyd"))][0]
    checkout, site = tmp_path / "checkout", tmp_path / "site"
    _checkout_copy(checkout)
    _installed_copy(site, core)
    out = _import_in(checkout, str(site))
    assert out.stdout.strip() == "compiled", out.stderr  # same sources: used
    with open(os.path.join(checkout, "divcore", "_front.pxi"), "a") as f:
        f.write("\n# an edit the installed copies were not built from\n")
    out = _import_in(checkout, str(site))
    assert out.stdout.strip() == "reference", out.stderr  # other sources: refused
    assert "build it with" in out.stderr
