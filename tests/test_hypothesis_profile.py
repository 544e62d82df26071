"""The default test run is deterministic; the long fuzz is opt-in and random (issue 12,
item 5). tests/conftest.py registers and loads the profiles."""
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

TESTS = os.path.dirname(os.path.abspath(__file__))
OPTED_IN = bool(os.environ.get("DIVCORE_HYPOTHESIS_PROFILE")
                or os.environ.get("DIVCORE_FUZZ", "").strip().lower() == "long")


def _loaded_profile(**env):
    """(derandomize, database is None, max_examples) of the profile conftest.py loads."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DIVCORE_HYPOTHESIS_PROFILE", "DIVCORE_FUZZ")}
    code = ("import conftest; from hypothesis import settings; d = settings.default; "
            "print(d.derandomize, d.database is None, d.max_examples)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=TESTS, env=dict(clean, **env),
                          capture_output=True, text=True, timeout=120, check=True)
    derandomize, no_db, n = proc.stdout.split()
    return derandomize == "True", no_db == "True", int(n)


def _draws():
    seen = []

    @given(st.lists(st.floats(allow_nan=False), max_size=5))
    def record(values):
        seen.append(values)

    record()
    return seen


@pytest.mark.skipif(OPTED_IN, reason="a long fuzz profile was asked for")
def test_default_profile_is_derandomized_without_a_database():
    assert settings.default.derandomize is True
    assert settings.default.database is None  # nothing replays from .hypothesis/


@pytest.mark.skipif(OPTED_IN, reason="a long fuzz profile was asked for")
def test_default_profile_draws_the_same_examples_every_run():
    assert _draws() == _draws()


def test_profile_chosen_by_the_environment():
    assert _loaded_profile() == (True, True, 60)
    long_random = _loaded_profile(DIVCORE_FUZZ="long")
    assert long_random[0] is False and long_random[2] > 60
    assert _loaded_profile(DIVCORE_HYPOTHESIS_PROFILE="divcore-long") == long_random
