"""The documentation: its examples run, its API reference covers the API, its site
configuration names pages that exist, and its figures are there.

Building the site itself (`mkdocs build --strict`) needs the `docs` extra; it runs here
only when DIVCORE_SLOW_TESTS is set and mkdocs is installed.
"""
import html
import inspect
import os
import re
import subprocess
import sys

import pytest

import divcore

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
# pages the nav names that other work provides; the mkdocs hook leaves them out until
# they exist
PENDING_PAGES = {"c_api.md", "RELIABILITY.md"}

pytestmark = pytest.mark.skipif(not os.path.isdir(DOCS), reason="no docs/ (not a checkout)")


def read(name):
    with open(os.path.join(DOCS, name), encoding="utf-8") as f:
        return f.read()


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


@pytest.mark.parametrize("page", ["guide.md", "index.md", "distillation.md", "layouts.md"])
def test_examples_run(page, capsys):
    blocks = python_blocks(read(page))
    assert blocks, f"{page} has no python examples"
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page}[{i}]", "exec"), {"__name__": "__docs__"})


def test_api_reference_covers_every_public_name():
    text = read("api.md")
    documented = set(re.findall(r"^::: divcore\.(\w+)\s*$", text, re.M))
    public = {name for name in divcore.__all__ if not name.startswith("_")}
    assert public - documented == set(), "add these to docs/api.md"
    modules = {name for name in documented - public  # the optional bridges
               if os.path.isfile(os.path.join(os.path.dirname(divcore.__file__),
                                              f"{name}.py"))}
    assert modules <= {"torch", "dask"}
    assert documented - public - modules == set(), "docs/api.md documents names divcore lacks"
    for name in public:  # the table readable on the repository page names each one
        assert f"`{name}" in text or f"`{name}(" in text or f", `{name}(" in text, name


def test_public_functions_carry_their_public_names():
    """mkdocstrings and pickle find them as divcore.NAME."""
    import pickle

    for name in divcore.__all__:
        obj = getattr(divcore, name)
        if callable(obj) and getattr(obj, "__module__", None) == "divcore":
            assert obj.__qualname__ == name
            assert pickle.loads(pickle.dumps(obj)) is obj


def test_site_navigation_names_existing_pages():
    with open(os.path.join(REPO, "mkdocs.yml"), encoding="utf-8") as f:
        config = f.read()
    pages = re.findall(r"^\s*- [^:]+:\s*\"?([\w./-]+\.md)\"?\s*$", config, re.M)
    assert "guide.md" in pages and "api.md" in pages and "changelog.md" in pages
    for page in pages:
        if page == "changelog.md":
            assert os.path.isfile(os.path.join(REPO, "CHANGELOG.md"))
        elif page not in PENDING_PAGES:
            assert os.path.isfile(os.path.join(DOCS, page)), page


def test_figures_exist_and_are_linked():
    guide = read("guide.md")
    linked = re.findall(r"\]\((figures/[\w.-]+\.png)\)", guide)
    assert len(linked) >= 3
    for path in linked:
        with open(os.path.join(DOCS, path), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", path


def test_local_links_resolve():
    """Relative links in docs pages point at files of the repository."""
    for name in os.listdir(DOCS):
        if not name.endswith(".md"):
            continue
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", read(name)):
            if re.match(r"[a-z]+:", target) or os.path.basename(target) in PENDING_PAGES:
                continue
            if target == "changelog.md":  # the site's copy of ../CHANGELOG.md
                target = "../CHANGELOG.md"
            assert os.path.exists(os.path.normpath(os.path.join(DOCS, target))), \
                f"{name}: {target}"


@pytest.mark.skipif(not os.environ.get("DIVCORE_SLOW_TESTS"),
                    reason="set DIVCORE_SLOW_TESTS=1 to build the documentation site")
def test_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                             "-d", str(tmp_path / "site")],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    # the docstrings made it in (not only the names)
    for function in (divcore.cross_entropy, divcore.kl_divergence_and_grad):
        first_words = " ".join(inspect.getdoc(function).split()[:4])
        assert html.escape(first_words, quote=False) in api, first_words
