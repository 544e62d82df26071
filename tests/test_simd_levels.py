"""Every instruction-set build of the kernels agrees with the reference.

The compiled core picks AVX-512, AVX2 or the baseline build at import from the CPU;
DIVCORE_SIMD=baseline|avx2 caps it. Each level runs in a subprocess (the choice is made
once per process) on the same inputs, and its results are compared with the reference.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import divcore
import divcore.reference as ref

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="needs the compiled core")

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import divcore, divcore._core
    rng = np.random.default_rng(7)
    out = {"simd": divcore._core.simd_path()}
    for dtype in ("float32", "float64"):
        x = (rng.standard_normal((5, 1037)) * 4).astype(dtype)
        x[1, :300] = -np.inf
        x[2, 5] = 60.0                        # a dominant class: tiny losses
        t = (rng.standard_normal((5, 1037)) * 2).astype(dtype)
        y = np.array([3, 900, 5, 1036, 0])
        p = divcore.softmax(t)
        res = {
            "lse": divcore.logsumexp(x),
            "ce": divcore.cross_entropy(x, y, reduction="none"),
            "soft": divcore.cross_entropy(x, p, reduction="none"),
            "kl": divcore.kl_divergence(x, t, target_type="logits", reduction="none"),
            "ent": divcore.entropy(x),
            "lsm": divcore.log_softmax(x)[:, ::97],
            "grad": divcore.cross_entropy_and_grad(x, y)[1][:, ::97],
        }
        out[dtype] = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in res.items()}
    json.dump(out, sys.stdout)
""")


def _reference(dtype):
    rng = np.random.default_rng(7)
    res = None
    for dt in ("float32", "float64"):
        x = (rng.standard_normal((5, 1037)) * 4).astype(dt)
        x[1, :300] = -np.inf
        x[2, 5] = 60.0
        t = (rng.standard_normal((5, 1037)) * 2).astype(dt)
        y = np.array([3, 900, 5, 1036, 0])
        if dt != dtype:
            continue
        p = divcore.softmax(t)
        res = {
            "lse": ref.logsumexp(x),
            "ce": ref.cross_entropy(x, y, reduction="none"),
            "soft": ref.cross_entropy(x, p, reduction="none"),
            "kl": ref.kl_divergence(x, t, target_type="logits", reduction="none"),
            "ent": ref.entropy(x),
            "lsm": ref.log_softmax(x)[:, ::97],
            "grad": ref.cross_entropy_and_grad(x, y)[1][:, ::97],
        }
    return {k: np.asarray(v, dtype=np.float64) for k, v in res.items()}


@pytest.fixture(scope="module")
def references():
    return {dt: _reference(dt) for dt in ("float32", "float64")}


@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_level_matches_reference(level, references):
    env = dict(os.environ, DIVCORE_SIMD=level)
    env.pop("DIVCORE_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, check=True)
    got = json.loads(done.stdout)
    if level != "baseline" and got["simd"] != level:
        pytest.skip(f"this CPU has no {level} (got {got['simd']})")
    assert got["simd"] == level
    for dtype, rtol in (("float32", 2e-6), ("float64", 1e-13)):
        for name, want in references[dtype].items():
            have = np.asarray(got[dtype][name])
            np.testing.assert_allclose(have, want, rtol=rtol, atol=rtol * 1e-3,
                                       err_msg=f"{level} {dtype} {name}")
