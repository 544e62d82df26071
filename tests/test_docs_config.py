"""The documentation build (issue 12, item 7): `pip install ".[docs]" && mkdocs build
--strict` works in a fresh environment, without torch or dask. mkdocstrings reads the
source statically; docs/griffe_divcore.py fills in, from `import divcore`, the public names
the source alone does not document."""
import os
import subprocess
import sys

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_handler_options():
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(REPO, "mkdocs.yml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            return plugin["mkdocstrings"]["handlers"]["python"]["options"]
    raise AssertionError("no mkdocstrings plugin in mkdocs.yml")


def test_the_source_is_read_statically():
    # importing divcore.torch (inspection) needs torch, which the docs extra does not carry
    options = _python_handler_options()
    assert options.get("force_inspection") is False
    for extension in options.get("extensions", []):
        name = extension if isinstance(extension, str) else next(iter(extension))
        assert os.path.isfile(os.path.join(REPO, name.split(":")[0])), name


@pytest.mark.skipif(tomllib is None, reason="tomllib is Python 3.11+")
def test_docs_extra_needs_neither_torch_nor_dask():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    names = [r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].strip()
             for r in extras["docs"]]
    assert "torch" not in names and "dask" not in names and "mkdocs" in names


def test_griffe_finds_the_bridges_and_the_docstrings():
    griffe = pytest.importorskip("griffe")
    extensions = griffe.load_extensions(os.path.join(REPO, "docs", "griffe_divcore.py"))
    pkg = griffe.load("divcore", search_paths=[REPO], extensions=extensions,
                      force_inspection=False)
    assert "torch" in pkg.members and "dask" in pkg.members
    assert pkg["torch"].docstring and pkg["dask"]["cross_entropy"].docstring
    import divcore

    for name in ("cross_entropy", "kl_divergence_and_grad", "logsumexp", "decompose"):
        assert pkg[name].docstring.value.split()[:3] == divcore.__dict__[name].__doc__.split()[:3]


def test_site_builds_strictly_without_torch_or_dask(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    # as in a fresh environment with only the docs extra: torch and dask cannot be imported
    code = ("import sys; sys.modules.update(torch=None, dask=None, distributed=None); "
            "from mkdocs.__main__ import cli; "
            f"cli(['build', '--strict', '-d', {str(tmp_path / 'site')!r}])")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    assert "divcore.torch" in api and "divcore.dask" in api
    assert "Cross-entropy H(p, q)" in api  # a docstring, not only a name
