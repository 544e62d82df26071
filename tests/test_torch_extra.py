"""torch in the `test` extra and the notice when it is missing (issue 12, item 9).

The extra must take torch on every supported Python where PyPI's torch is the CPU build,
never where PyPI's default wheel carries CUDA (Linux), except on this project's machines
(Python 3.11, Linux x86-64), where a local 2.13.0+cpu wheel satisfies the pin; and a run
without torch says that its torch tests were skipped and how to install the CPU build."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
tomllib = pytest.importorskip("tomllib")
requirements = pytest.importorskip("packaging.requirements")

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
# (platform_system, platform_machine, sys_platform) -> Pythons with a CPU-only torch >= 2.1
# on PyPI (torch stopped building for Intel macs after 2.2, which has no 3.13 wheel)
CPU_TORCH_ON_PYPI = {
    ("Darwin", "arm64", "darwin"): PYTHONS,
    ("Darwin", "x86_64", "darwin"): ["3.10", "3.11", "3.12"],
    ("Windows", "AMD64", "win32"): PYTHONS,
    ("Linux", "x86_64", "linux"): [],  # PyPI's default torch carries CUDA
    ("Linux", "aarch64", "linux"): [],
}


def _torch_requirements():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["test"]
    reqs = [requirements.Requirement(r) for r in extra]
    return [r for r in reqs if r.name == "torch"]


def _environment(system, machine, platform, python):
    return {"platform_system": system, "platform_machine": machine, "sys_platform": platform,
            "python_version": python, "python_full_version": python + ".0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "os_name": "nt" if system == "Windows" else "posix", "extra": "test"}


@pytest.mark.parametrize("platform", list(CPU_TORCH_ON_PYPI), ids="-".join)
@pytest.mark.parametrize("python", PYTHONS)
def test_torch_where_pypi_has_the_cpu_build(platform, python):
    env = _environment(*platform, python)
    chosen = [r for r in _torch_requirements() if r.marker is None or r.marker.evaluate(env)]
    assert len(chosen) <= 1, chosen
    this_projects_machines = platform[:2] == ("Linux", "x86_64") and python == "3.11"
    wanted = python in CPU_TORCH_ON_PYPI[platform] or this_projects_machines
    assert bool(chosen) == wanted, (platform, python, chosen)
    if chosen:
        spec = chosen[0].specifier
        assert spec.contains("2.1") or spec.contains("2.1.0"), spec  # any torch >= 2.1 kept
        assert not spec.contains("2.0.1")
    if this_projects_machines:
        # the local CPU wheel fits, and nothing newer than it (PyPI's CUDA 2.14) is taken
        assert chosen[0].specifier.contains("2.13.0+cpu") and \
            not chosen[0].specifier.contains("2.14.0")


def test_missing_torch_is_said_in_the_summary(tmp_path):
    # a torch that cannot be imported shadows the installed one for this run
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text(
        "raise ModuleNotFoundError('No module named torch (hidden)', name='torch')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path) + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_peers.py"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    line = [ln for ln in result.stdout.splitlines() if "skipped because torch" in ln]
    assert line, result.stdout
    assert "--index-url https://download.pytorch.org/whl/cpu" in line[0]
    skipped = int(line[0].split("divcore: ")[1].split()[0])
    assert f"{skipped} skipped" in result.stdout.splitlines()[-1]


def test_installed_torch_is_named_in_the_header():
    torch = pytest.importorskip("torch")
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--collect-only", "tests/test_hygiene.py"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"torch: {torch.__version__}" in result.stdout  # the header, before the tests
