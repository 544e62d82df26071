"""Shared fixtures for the divcore tests. The helpers themselves live in tests/_helpers.py
(random logits/probability generators, layouts, ulp comparison, a float64 oracle)."""
import os
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _helpers import (  # noqa: E402,F401  (re-exported for convenience)
    EPS32,
    EPS64,
    assert_allclose_nan,
    assert_same_kind,
    assert_ulp,
    compute_dtype,
    random_logits,
    random_probs,
    ulp_error,
    with_layout,
)

try:
    from hypothesis import HealthCheck, settings

    # The default run is deterministic: the examples are derived from each test's name
    # (derandomize) and no example database is read or written, so a failure found once
    # cannot replay into every later run of a checkout (.hypothesis/). The opt-in long
    # fuzz ("divcore-long": DIVCORE_FUZZ=long, DIVCORE_HYPOTHESIS_PROFILE=divcore-long or
    # pytest --hypothesis-profile=divcore-long) draws new random examples every run and
    # keeps its failures in .hypothesis/ to replay them.
    settings.register_profile(
        "divcore",
        deadline=None,
        max_examples=60,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    settings.register_profile(
        "divcore-long",
        deadline=None,
        max_examples=600,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    _profile = os.environ.get("DIVCORE_HYPOTHESIS_PROFILE") or (
        "divcore-long" if os.environ.get("DIVCORE_FUZZ", "").strip().lower() == "long"
        else "divcore")
    settings.load_profile(_profile)
except ImportError:  # pragma: no cover
    pass


# ------------------------------------------------------- torch: say when it is missing

TORCH_CPU_INSTALL = ("python -m pip install torch --index-url "
                     "https://download.pytorch.org/whl/cpu")


def _torch_version():
    """The installed torch's version, without importing it (slow); None without torch."""
    import importlib.metadata
    import importlib.util

    try:
        if importlib.util.find_spec("torch") is None:
            return None
        return importlib.metadata.version("torch")
    except (ImportError, ValueError, importlib.metadata.PackageNotFoundError):
        return None


def pytest_report_header(config):
    version = _torch_version()
    if version is None:
        return [f"torch: not installed, so the divcore.torch and torch parity tests are "
                f"skipped; for them install the CPU build: {TORCH_CPU_INSTALL}"]
    return [f"torch: {version}"]


def _skipped_for_torch(terminalreporter):
    count = 0
    for rep in terminalreporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        count += "'torch'" in reason or "No module named 'torch'" in reason
    return count


# ------------------------------------------------- lines for the end-of-run summary

_REPORTED = []  # (test id, line) in the order reported


@pytest.fixture
def report(request):
    """report(text): a measurement worth seeing (a speed-up, a thread count) that is not
    an assertion. It is shown in a "divcore measurements" section of the summary at the end
    of the run, never between the progress dots."""
    return lambda text: _REPORTED.append((request.node.nodeid, str(text)))


def pytest_terminal_summary(terminalreporter):
    torch_skips = _skipped_for_torch(terminalreporter)
    if torch_skips:
        terminalreporter.write_line(
            f"divcore: {torch_skips} test(s) skipped because torch cannot be imported; "
            f"install the CPU build to run them: {TORCH_CPU_INSTALL}", yellow=True)
    if _REPORTED:
        terminalreporter.section("divcore measurements")
        for nodeid, text in _REPORTED:
            terminalreporter.write_line(f"{text}  [{nodeid.split('::')[-1]}]")


FORCED_REFERENCE = os.environ.get("DIVCORE_BACKEND", "").strip().lower() == "reference"


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's name (reproducible, distinct per test)."""
    seed = zlib.crc32(request.node.nodeid.encode())  # hash() is salted per process
    return np.random.default_rng(seed)


@pytest.fixture
def compiled():
    """Skip unless the compiled core is live (compiled-vs-reference tests need it)."""
    import divcore

    if divcore.backend() != "compiled":
        pytest.skip(f"compiled core not live (backend() == {divcore.backend()!r})")
    return divcore


@pytest.fixture(scope="session", params=["divcore", "reference"])
def dc(request):
    """The public API on each backend: `divcore` (whatever is live) and `divcore.reference`."""
    import divcore
    import divcore.reference

    if request.param == "divcore":
        return divcore
    return divcore.reference


@pytest.fixture(scope="session")
def compiled_or_any():
    """The live backend for tests too slow for the pure-Python reference at full size:
    `divcore` itself (compiled unless the reference is forced or the core is missing)."""
    import divcore

    if divcore.backend() != "compiled" and not os.environ.get("DIVCORE_SLOW_TESTS"):
        pytest.skip("large-C accuracy on the reference backend is slow "
                    "(set DIVCORE_SLOW_TESTS=1 to run it)")
    return divcore
