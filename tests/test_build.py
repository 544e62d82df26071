"""Packaging: `python -m build` makes an sdist and a wheel (the wheel built from the
sdist, so a file missing from the sdist breaks it) that install into a fresh virtual
environment and pass a smoke test and a few test files there.

Slow (a compile and a venv, about a minute on two cores): runs only with
DIVCORE_SLOW_TESTS=1. No network: the build runs without isolation (the build
requirements must be installed, as the `test` extra does) and the venv sees this
interpreter's packages (numpy, pytest, ...) through --system-site-packages; divcore
itself comes from the wheel.
"""
import glob
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = [
    pytest.mark.skipif(not os.environ.get("DIVCORE_SLOW_TESTS"),
                       reason="builds and installs divcore: set DIVCORE_SLOW_TESTS=1"),
    pytest.mark.skipif(not os.path.isfile(os.path.join(REPO, "pyproject.toml")),
                       reason="not a source checkout"),
]

# test files run against the installed wheel: the command line, the compiled core
# against the reference, and the edge cases
WHEEL_TESTS = ["test_cli.py", "test_vs_reference.py", "test_edge_cases.py"]


def run(argv, cwd, timeout=900):
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(map(str, argv))} failed:\n"
                                    f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build")
    pytest.importorskip("Cython")
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), REPO],
        cwd=REPO)
    sdists = glob.glob(str(out / "*.tar.gz"))
    wheels = glob.glob(str(out / "*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, os.listdir(out)
    return sdists[0], wheels[0]


def test_sdist_holds_the_sources(dist):
    sdist, _ = dist
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in ["pyproject.toml", "setup.py", "README.md", "LICENSE", "CHANGELOG.md",
                   "divcore/_core.pyx", "divcore/_threads.h", "src/divcore/kernels.h",
                   "tests/conftest.py", "tests/test_cli.py", "docs/guide.md"]:
        assert needed in names, needed


def test_wheel_holds_the_package(dist):
    _, wheel = dist
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = next(z.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = next(z.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    assert any(n.startswith("divcore/_core.") and not n.endswith((".pyx", ".c"))
               for n in names)
    assert "divcore/include/divcore/kernels.h" in names
    assert "divcore/_core.c" not in names  # a build intermediate
    for module in ["cli", "_score", "_plot", "_kl_fit", "_bench", "_version"]:
        assert f"divcore/{module}.py" in names, module
    from divcore import __version__

    assert f"Version: {__version__}\n" in metadata  # the one version, from _version.py
    assert "Project-URL: Homepage, https://github.com/divcore/divcore" in metadata
    assert "Provides-Extra: plot" in metadata and "Provides-Extra: docs" in metadata
    assert "divcore = divcore.cli:main" in entry_points


def test_wheel_installs_and_passes_tests_in_a_fresh_venv(dist, tmp_path):
    sdist, wheel = dist
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = str(bindir / "python")
    run([python, "-m", "pip", "install", "--no-index", "--no-deps",
         "--force-reinstall", wheel], cwd=tmp_path)
    # -I: neither the checkout nor the current folder on sys.path; divcore is the wheel's
    smoke = run([python, "-I", "-c",
                 "import divcore, numpy as np; print(divcore.__file__); "
                 "print(divcore.backend()); "
                 "print(float(divcore.cross_entropy(np.zeros((2, 4)), np.array([0, 3]))))"],
                cwd=tmp_path).split()
    assert smoke[0].startswith(str(venv)), smoke[0]
    assert smoke[1] == "compiled"
    assert abs(float(smoke[2]) - 1.3862943611198906) < 1e-12  # log 4
    script = bindir / ("divcore.exe" if os.name == "nt" else "divcore")
    assert "All checks hold." in run([str(script), "demo"], cwd=tmp_path)
    # the tests from the sdist, run against the installed wheel
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "sdist", filter="data")
    (top,) = os.listdir(tmp_path / "sdist")
    tests = tmp_path / "sdist" / top / "tests"
    run([python, "-I", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         *[str(tests / name) for name in WHEEL_TESTS]], cwd=tmp_path)
