"""Every instruction-set build of the kernels agrees with the reference.

The compiled core picks AVX-512, AVX2 or the baseline build at import from the CPU;
DIVCORE_SIMD=baseline|avx2 caps it. Each level runs in a subprocess (the choice is made
once per process) on the same inputs, and its results are compared with the reference.
"""
import numpy as np
import pytest

import divcore
import divcore.reference
from _helpers import SIMD_LEVELS, run_at_simd_level

pytestmark = pytest.mark.skipif(divcore.backend() != "compiled",
                                reason="needs the compiled core")

# A level's subprocess runs results() of this very module on the compiled functions.
SCRIPT = (
    "import json, sys\n"
    "import divcore, divcore._core\n"
    "from test_simd_levels import results\n"
    "out = {dt: {k: v.tolist() for k, v in results(divcore, dt).items()}\n"
    "       for dt in ('float32', 'float64')}\n"
    "out['simd'] = divcore._core.simd_path()\n"
    "json.dump(out, sys.stdout)\n"
)


def results(dc, dtype):
    """The functions under test on fixed inputs, computed with module `dc` (divcore or
    divcore.reference): a long row (several blocks and a vector tail), a row with -inf,
    a dominant class (tiny losses)."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((5, 1037)) * 4).astype(dtype)
    x[1, :300] = -np.inf
    x[2, 5] = 60.0
    t = (rng.standard_normal((5, 1037)) * 2).astype(dtype)
    y = np.array([3, 900, 5, 1036, 0])
    p = divcore.softmax(t)
    res = {
        "lse": dc.logsumexp(x),
        "ce": dc.cross_entropy(x, y, reduction="none"),
        "soft": dc.cross_entropy(x, p, reduction="none"),
        "kl": dc.kl_divergence(x, t, target_type="logits", reduction="none"),
        "ent": dc.entropy(x),
        "lsm": dc.log_softmax(x)[:, ::97],
        "grad": dc.cross_entropy_and_grad(x, y)[1][:, ::97],
    }
    return {k: np.asarray(v, dtype=np.float64) for k, v in res.items()}


@pytest.fixture(scope="module")
def references():
    return {dt: results(divcore.reference, dt) for dt in ("float32", "float64")}


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_level_matches_reference(level, references):
    got = run_at_simd_level(level, SCRIPT)
    for dtype, rtol in (("float32", 2e-6), ("float64", 1e-13)):
        for name, want in references[dtype].items():
            have = np.asarray(got[dtype][name])
            np.testing.assert_allclose(have, want, rtol=rtol, atol=rtol * 1e-3,
                                       err_msg=f"{level} {dtype} {name}")
