"""The type stubs (divcore/__init__.pyi, divcore/_core.pyi) against the runtime, and mypy on
a sample that uses the API (tests/typing/): accepted uses pass, misuses are reported."""
import ast
import inspect
import os
import re
import subprocess
import sys

import pytest

import divcore
import divcore.reference

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(os.path.abspath(divcore.__file__))
SAMPLES = os.path.join(HERE, "typing")


def stub_functions(path):
    """{name: [ast.FunctionDef, ...]} of a stub (several for an overloaded function), and
    its __all__ (or None)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    functions, names = {}, None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            names = ast.literal_eval(node.value)
    return functions, names


def stub_parameters(node):
    """[(name, kind, default or inspect.Parameter.empty)] of a stub function."""
    a = node.args
    empty = inspect.Parameter.empty
    positional = a.posonlyargs + a.args
    defaults = [empty] * (len(positional) - len(a.defaults)) + [
        ast.literal_eval(d) for d in a.defaults]
    params = [(p.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, d)
              for p, d in zip(positional, defaults)]
    params += [(p.arg, inspect.Parameter.KEYWORD_ONLY,
                empty if d is None else ast.literal_eval(d))
               for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return params


def runtime_parameters(function):
    return [(p.name, p.kind, p.default)
            for p in inspect.signature(function).parameters.values()]


def assert_same_signature(function, nodes):
    """Every overload has the runtime's parameters in order and kind; defaults agree where
    the overload gives one (an overload may make a defaulted keyword required)."""
    runtime = runtime_parameters(function)
    for node in nodes:
        stub = stub_parameters(node)
        where = f"{function.__name__} (stub line {node.lineno})"
        assert [(n, k) for n, k, _ in stub] == [(n, k) for n, k, _ in runtime], where
        for (name, _, s_default), (_, _, r_default) in zip(stub, runtime):
            if s_default is not inspect.Parameter.empty:
                assert s_default == r_default and type(s_default) is type(r_default), (
                    f"{where}: default of {name}: stub {s_default!r}, runtime {r_default!r}")


def test_init_stub_matches_runtime():
    functions, names = stub_functions(os.path.join(PACKAGE, "__init__.pyi"))
    assert names == divcore.__all__, "the stub's __all__ must list divcore.__all__"
    for name in divcore.__all__:
        value = getattr(divcore, name)
        if callable(value) and not isinstance(value, type):
            assert name in functions, f"{name} is public but missing from __init__.pyi"
            assert_same_signature(value, functions[name])
            if hasattr(divcore.reference, name):
                assert_same_signature(getattr(divcore.reference, name), functions[name])


def test_core_stub_matches_runtime(compiled):
    functions, _ = stub_functions(os.path.join(PACKAGE, "_core.pyi"))
    core = divcore._kernels
    public = {n for n, v in vars(core).items()
              if callable(v) and not n.startswith("_") and not isinstance(v, type)}
    assert public == set(functions), public ^ set(functions)
    for name in public:
        assert_same_signature(getattr(core, name), functions[name])


def test_package_ships_its_types():
    for name in ("py.typed", "__init__.pyi", "_core.pyi", "reference.pyi"):
        assert os.path.isfile(os.path.join(PACKAGE, name)), name


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory):
    """{sample file name: [line numbers of mypy's errors]} from one strict run over both
    samples, and mypy's whole output."""
    pytest.importorskip("mypy")
    # From the repository root when divcore is the checkout's, so that the divcore mypy
    # reads is this one, with its stubs. An installed divcore is found by mypy through
    # site-packages (py.typed), from an empty folder: run from site-packages itself, every
    # installed module would shadow itself ("mypy_extensions.py shadows library module").
    # No cache, so that a stale one cannot hide an error.
    root = os.path.dirname(PACKAGE)
    in_checkout = os.path.isfile(os.path.join(root, "pyproject.toml"))
    cwd = root if in_checkout else str(tmp_path_factory.mktemp("mypy"))
    samples = ["uses_the_api.py", "misuses_the_api.py"]
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", os.devnull, "--no-error-summary"]
        + [os.path.join(SAMPLES, s) for s in samples],
        cwd=cwd, capture_output=True, text=True)
    output = result.stdout + result.stderr
    errors = {s: sorted({int(n) for n in re.findall(
        rf"(?:^|[/\\]){re.escape(s)}:(\d+): error", output, re.MULTILINE)}) for s in samples}
    return errors, output


def test_mypy_accepts_ordinary_use(mypy_errors):
    errors, output = mypy_errors
    assert errors["uses_the_api.py"] == [], output


def test_mypy_reports_each_misuse(mypy_errors):
    errors, output = mypy_errors
    lines = open(os.path.join(SAMPLES, "misuses_the_api.py"), encoding="utf-8").readlines()
    marked = [i + 1 for i, line in enumerate(lines) if "# E:" in line]
    assert errors["misuses_the_api.py"] == marked, output
