"""Which backend is live, and DIVCORE_BACKEND (SPEC §5)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import divcore
import divcore.reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORCED_REFERENCE = os.environ.get("DIVCORE_BACKEND", "").strip().lower() == "reference"


def _run(code, **env):
    full_env = dict(os.environ)
    full_env.pop("DIVCORE_BACKEND", None)
    full_env.update(env)
    # run from the tests' parent so that the checkout's divcore (in place or installed)
    # is the one imported, as in this process
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(divcore.__file__)))
    full_env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=120)


def test_backend_value():
    assert divcore.backend() in ("compiled", "reference")


def test_compiled_core_is_live():
    if FORCED_REFERENCE:
        assert divcore.backend() == "reference"
        pytest.skip("DIVCORE_BACKEND=reference is set")
    assert divcore.backend() == "compiled", (
        "the compiled core is not live: build it (pip install -e . or "
        "python setup.py build_ext --inplace) or set DIVCORE_BACKEND=reference")
    import importlib

    importlib.import_module("divcore._core")


def test_env_var_forces_reference():
    r = _run("import divcore; print(divcore.backend())", DIVCORE_BACKEND="reference")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "reference"
    r = _run("import divcore, numpy as np; "
             "print(repr(float(divcore.cross_entropy(np.array([[0.0, -50.0]]), "
             "np.array([0])))))", DIVCORE_BACKEND="reference")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) > 0  # the log1p path works on the reference too


def test_default_backend_in_subprocess():
    r = _run("import divcore; print(divcore.backend())")
    assert r.returncode == 0, r.stderr
    # without the variable, a subprocess gets the same backend as this (unforced) one
    if not FORCED_REFERENCE:
        assert r.stdout.strip() == divcore.backend()
    else:
        assert r.stdout.strip() in ("compiled", "reference")


def test_reference_module_has_the_public_functions():
    for name in ("logsumexp", "log_softmax", "softmax", "cross_entropy", "kl_divergence",
                 "entropy", "decompose"):
        assert callable(getattr(divcore, name))
        assert callable(getattr(divcore.reference, name))
    x = np.array([[1.0, 2.0, 3.0]])
    assert np.allclose(divcore.reference.logsumexp(x), divcore.logsumexp(x), rtol=1e-15)


def test_reference_is_pure_python():
    # the reference never touches the compiled core, whatever backend is live
    r = _run("import sys, divcore.reference as R, numpy as np; "
             "R.cross_entropy(np.zeros((2, 3)), np.array([0, 1])); "
             "print('divcore._core' in sys.modules)", DIVCORE_BACKEND="reference")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_decomposition_namedtuple():
    d = divcore.decompose(np.array([[0.0, 1.0]]), np.array([1]))
    assert isinstance(d, divcore.Decomposition)
    assert d._fields == ("cross_entropy", "entropy", "kl_divergence")
    ce, h, kl = d
    assert ce == d.cross_entropy and h == d.entropy and kl == d.kl_divergence
