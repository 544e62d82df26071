"""The Examples in the docstrings run, under both backends, and every public function has
a numpy-style docstring (the API reference is built from them).

Function examples follow numpy's convention: they assume `import numpy as np` and
`import divcore`; here `divcore` is bound to each backend in turn. The examples of
divcore.torch and divcore.dask import what they use, and run with those modules computing
on each backend as well."""
import doctest
import importlib
import inspect

import numpy as np
import pytest

import divcore
import divcore.reference

BACKENDS = ["divcore", "reference"]
API = sorted(name for name in divcore.__all__ if callable(getattr(divcore, name))
             and not isinstance(getattr(divcore, name), type))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def run_examples(obj, globs, name):
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = finder.find(obj, name, globs=globs)
    assert sum(len(t.examples) for t in tests) > 0, f"{name}: no examples"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} example(s) failed (output above)"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", API)
def test_function_examples(name, backend):
    module = divcore if backend == "divcore" else divcore.reference
    if not hasattr(module, name):
        pytest.skip(f"divcore.reference has no {name}")
    run_examples(getattr(module, name), {"np": np, "divcore": module}, f"divcore.{name}")


@pytest.mark.parametrize("name", API)
def test_numpy_style_docstring(name):
    """Summary line, the numpy sections, and the docstring on the public object itself
    (mkdocstrings and help() read divcore.<name>.__doc__)."""
    function = getattr(divcore, name)
    doc = inspect.getdoc(function)
    assert doc and doc.splitlines()[0].strip(), name
    sections = ["Returns", "Examples"]
    if inspect.signature(function).parameters:
        sections.insert(0, "Parameters")
    for section in sections:
        assert f"\n{section}\n{'-' * len(section)}\n" in doc, f"{name}: no {section} section"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module_name", ["divcore.torch", "divcore.dask"])
def test_bridge_examples(module_name, backend, monkeypatch):
    pytest.importorskip(module_name.split(".")[1])
    module = importlib.import_module(module_name)
    if backend == "reference":
        monkeypatch.setattr(module, "divcore", divcore.reference)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = [t for t in finder.find(module, module_name) if t.examples]
    public = {f"{module_name}.{n}" for n in module.__all__} | {module_name}
    assert public <= {t.name for t in tests}, "every public function has examples"
    for name in module.__all__:
        doc = inspect.getdoc(getattr(module, name))
        for section in ("Parameters", "Returns", "Raises", "Examples"):
            assert f"\n{section}\n{'-' * len(section)}\n" in doc, f"{name}: no {section}"
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
