"""Packaging of the C-level API (docs/c_api.md): the sdist carries the headers, the .pxd
files and the examples; the wheel carries the headers and .pxd files in the folder
divcore.get_include() returns, and a Cython extension builds against that copy.

The sdist is built with `python -m build --sdist --no-isolation` from a copy of the tree.
The wheel is built from the unpacked sdist (so a file missing from the sdist is missing
from the wheel) with setuptools' own commands, minus compiling divcore._core:
`build_py` lays out the package files and `bdist_wheel --skip-build` packs them, which
keeps this under ~15 s. DIVCORE_SLOW_TESTS=1 also builds the complete wheel with pip
(a compile, ~30 s) and checks it the same way; tests/test_build.py installs and tests one.
"""
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(REPO, "src", "divcore")

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(REPO, "pyproject.toml")) or not os.path.isdir(SRC),
    reason="not a source checkout")

# What is copied to build from: the tree without version control, build products and
# caches (divcore/include/ of an in-place build, site/ of mkdocs). An up-to-date
# divcore/_core.c is kept: it spares the copy a Cython run.
IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                ".pytest_cache", ".hypothesis", ".benchmarks", "*.so",
                                "*.pyd", "include", "site")


def run(argv, cwd, env=None):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (f"{' '.join(map(str, argv))} failed:\n"
                                  f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def c_api_files():
    """The files of the C-level API in the source tree: every header and .pxd file."""
    names = sorted(n for n in os.listdir(SRC) if n.endswith((".h", ".pxd")))
    assert {"kernels.h", "dispatch.h", "kernels.pxd", "dispatch.pxd", "__init__.pxd"} <= set(names)
    return names


def build_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the build imports nothing of divcore
    return env


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    for module in ("build", "Cython", "setuptools", "numpy"):
        pytest.importorskip(module)
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("pyproject.toml needs setuptools>=77 (the test extra installs it)")
    tree = tmp_path_factory.mktemp("tree") / "divcore"
    shutil.copytree(REPO, tree, ignore=IGNORE)
    out = tmp_path_factory.mktemp("sdist")
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(out),
         str(tree)], cwd=str(tree), env=build_env())
    (path,) = glob.glob(str(out / "*.tar.gz"))
    unpacked = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(path) as tar:
        tar.extractall(unpacked, filter="data")
    (top,) = os.listdir(unpacked)
    return path, str(unpacked / top)


def unpack_wheel(wheel, folder):
    with zipfile.ZipFile(wheel) as z:
        z.extractall(folder)
        return set(z.namelist())


@pytest.fixture(scope="module")
def wheel_without_core(sdist, tmp_path_factory):
    _, tree = sdist
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "setup.py", "-q", "build_py", "bdist_wheel", "--skip-build",
         "--dist-dir", str(out)], cwd=tree, env=build_env())
    (path,) = glob.glob(str(out / "*.whl"))
    return path


def test_sdist_holds_the_c_api(sdist):
    path, _ = sdist
    with tarfile.open(path) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in c_api_files():
        assert f"src/divcore/{name}" in names, name
    for needed in ["docs/c_api.md", "examples/cython_extension/setup.py",
                   "examples/cython_extension/row_scores.pyx",
                   "examples/cython_extension/README.md", "examples/c_consumer/score_rows.c",
                   "tests/test_c_api.py"]:
        if os.path.exists(os.path.join(REPO, needed)):
            assert needed in names, needed


def check_wheel(wheel, tmp_path):
    """The headers and .pxd files sit in divcore/include/divcore/ of the wheel, equal to
    the sources; get_include() of the unpacked package names that folder; a Cython
    extension builds against it and computes."""
    site = tmp_path / "site"
    names = unpack_wheel(wheel, site)
    include = site / "divcore" / "include"
    for name in c_api_files():
        assert f"divcore/include/divcore/{name}" in names, name
        with open(os.path.join(SRC, name), "rb") as a, open(include / "divcore" / name, "rb") as b:
            assert a.read() == b.read(), f"{name} in the wheel differs from src/divcore/"
    # the .pxd files in the importable package too (cimport finds them on sys.path, as
    # numpy's), the same text as the copies next to the headers
    for name in c_api_files():
        if name.endswith(".pxd"):
            assert f"divcore/{name}" in names, name
            with open(os.path.join(SRC, name), "rb") as a, open(site / "divcore" / name, "rb") as b:
                assert a.read() == b.read(), f"divcore/{name} in the wheel differs from src/divcore/"

    env = dict(build_env(), PYTHONPATH=str(site), CFLAGS="-O0 -g0")
    got = run([sys.executable, "-W", "ignore", "-c",
               "import divcore; print(divcore.get_include())"], cwd=str(tmp_path), env=env)
    assert os.path.samefile(got.strip(), include)

    # A consumer as the issue words it: include_dirs=[divcore.get_include()] and nothing
    # else. Handed to setuptools without cythonize(), the .pyx is compiled by Cython's
    # build_ext (the .pxd files are found in the package and in include_dirs).
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "wheel_consumer.pyx").write_text(
        "# cython: language_level=3\n"
        "from divcore.kernels cimport DIVCORE_VERSION, dc_logsumexp_f64\n"
        "def lse(double a, double b):\n"
        "    cdef double x[2]\n"
        "    cdef double r\n"
        "    x[0] = a\n"
        "    x[1] = b\n"
        "    with nogil:\n"
        "        r = dc_logsumexp_f64(x, 2)\n"
        "    return r\n"
        "def version():\n"
        "    return DIVCORE_VERSION.decode()\n")
    (consumer / "setup.py").write_text(
        "import divcore\n"
        "from setuptools import Extension, setup\n"
        "setup(name='wheel-consumer', ext_modules=[Extension(\n"
        "    'wheel_consumer', ['wheel_consumer.pyx'], include_dirs=[divcore.get_include()])])\n")
    run([sys.executable, "-W", "ignore", "setup.py", "-q", "build_ext", "--inplace"],
        cwd=str(consumer), env=env)
    out = run([sys.executable, "-c",
               "import wheel_consumer as w; print(w.version()); print(repr(w.lse(0.0, 0.0)))"],
              cwd=str(consumer), env=build_env()).split()
    from divcore import __version__

    assert out[0] == __version__
    assert float(out[1]) == pytest.approx(0.6931471805599453, rel=1e-15)  # log 2


def test_wheel_holds_the_c_api(wheel_without_core, tmp_path):
    check_wheel(wheel_without_core, tmp_path)


@pytest.mark.skipif(not os.environ.get("DIVCORE_SLOW_TESTS"),
                    reason="compiles divcore: set DIVCORE_SLOW_TESTS=1")
def test_complete_wheel_holds_the_c_api(sdist, tmp_path):
    _, tree = sdist
    out = tmp_path / "wheel"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "--wheel-dir", str(out), tree], cwd=str(tmp_path), env=build_env())
    (path,) = glob.glob(str(out / "*.whl"))
    with zipfile.ZipFile(path) as z:
        assert any(n.startswith("divcore/_core.") and n.endswith((".so", ".pyd"))
                   for n in z.namelist())
    check_wheel(path, tmp_path)
