"""divcore: exact and fast cross-entropy, KL divergence and their relatives on raw logits.

    H(p, q) = H(p) + KL(p ‖ q)

With the target p fixed, cross-entropy and KL differ by a constant: same minimiser, same
gradient. `decompose` returns all three from one pass.

The functions run on the compiled core (divcore._core) when it can be imported, else on
the pure-Python reference (with a warning); DIVCORE_BACKEND=reference forces the
reference, and `backend()` says which one is live.
"""
import glob
import os
import sys
import warnings

from ._version import __version__
from .api import Decomposition, make_functions

__all__ = [
    "Decomposition",
    "__version__",
    "backend",
    "binary_cross_entropy",
    "cross_entropy",
    "cross_entropy_and_grad",
    "decompose",
    "entropy",
    "get_include",
    "get_num_threads",
    "js_divergence",
    "kl_divergence",
    "kl_divergence_and_grad",
    "log_softmax",
    "logsumexp",
    "set_num_threads",
    "show_config",
    "softmax",
]


def _installed_core_dir():
    """When divcore is imported from a source checkout (e.g. `python -m divcore` in the
    repository after `pip install .`), the folder of an installed copy of the same version
    that holds the compiled core; None otherwise."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        folder = os.path.join(os.path.abspath(entry or os.curdir), "divcore")
        if os.path.normcase(folder) == os.path.normcase(here):
            continue
        if not glob.glob(os.path.join(folder, "_core.*")):
            continue
        try:
            with open(os.path.join(folder, "_version.py"), encoding="utf-8") as f:
                text = f.read()
            same_version = any(f"{q}{__version__}{q}" in text for q in "'\"")
        except OSError:
            same_version = False
        if same_version:
            return folder
    return None


def _import_core():
    try:
        from . import _core
    except ImportError:
        # A source checkout has no built extension: use the one installed from it.
        installed = _installed_core_dir()
        if installed is None:
            raise
        __path__.append(installed)
        from . import _core
    return _core


def _load_kernels():
    requested = os.environ.get("DIVCORE_BACKEND", "").strip().lower()
    if requested not in ("", "compiled", "reference"):
        warnings.warn(f"DIVCORE_BACKEND={requested!r} is not 'compiled' or 'reference'; "
                      "ignoring it", RuntimeWarning, stacklevel=3)
        requested = ""
    if requested == "reference":
        from . import _refkernels
        return _refkernels, "reference"
    try:
        _core = _import_core()
    except ImportError as exc:
        if requested == "compiled":
            raise
        warnings.warn(f"divcore: the compiled core could not be imported ({exc}); using the "
                      "pure-Python reference backend, which is much slower",
                      RuntimeWarning, stacklevel=3)
        from . import _refkernels
        return _refkernels, "reference"
    return _core, "compiled"


_kernels, _backend = _load_kernels()
_functions = make_functions(_kernels)
for _name, _function in _functions.items():
    # Their public names, not make_functions.<locals>.<name>: pickle (multiprocessing)
    # and the API docs (mkdocstrings) find them as divcore.<name>
    _function.__module__, _function.__qualname__ = __name__, _name
del _name, _function

logsumexp = _functions["logsumexp"]
log_softmax = _functions["log_softmax"]
softmax = _functions["softmax"]
cross_entropy = _functions["cross_entropy"]
kl_divergence = _functions["kl_divergence"]
entropy = _functions["entropy"]
decompose = _functions["decompose"]
cross_entropy_and_grad = _functions["cross_entropy_and_grad"]
kl_divergence_and_grad = _functions["kl_divergence_and_grad"]
js_divergence = _functions["js_divergence"]
binary_cross_entropy = _functions["binary_cross_entropy"]


def set_num_threads(n):
    """Threads for large inputs (rows are split between them). 0, the default, follows
    OpenMP: OMP_NUM_THREADS, or threadpoolctl's limits. Small inputs always run on the
    calling thread. No effect on the reference backend.

    Parameters
    ----------
    n : int
        The number of threads, or 0 for OpenMP's own count.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        A negative number.

    Examples
    --------
    >>> divcore.set_num_threads(1)
    >>> divcore.get_num_threads()
    1
    >>> divcore.set_num_threads(0)  # back to the default
    """
    if _backend == "compiled":
        _kernels.set_num_threads(int(n))


def get_num_threads():
    """Threads a large call uses (1 without OpenMP, or on the reference backend).

    Returns
    -------
    int

    Examples
    --------
    >>> divcore.get_num_threads() >= 1
    True
    """
    return _kernels.get_num_threads() if _backend == "compiled" else 1


def show_config():
    """What this divcore computes with: version, backend, SIMD path, threads. Returns the
    facts as a dict and prints them.

    Returns
    -------
    dict
        Keys 'version', 'backend', 'simd', 'openmp', 'threads'.

    Examples
    --------
    >>> info = divcore.show_config()  # doctest: +ELLIPSIS
     version: ...
    >>> sorted(info)
    ['backend', 'openmp', 'simd', 'threads', 'version']
    """
    info = {"version": __version__, "backend": _backend, "simd": "none (pure Python)",
            "openmp": False, "threads": 1}
    if _backend == "compiled":
        info.update(simd=_kernels.simd_path(), openmp=_kernels.has_openmp(),
                    threads=_kernels.get_num_threads())
    for key, value in info.items():
        print(f"{key:>8}: {value}")
    return info


def backend():
    """'compiled' when the C core is live, 'reference' for the pure-Python fallback.

    Returns
    -------
    str
        'compiled' or 'reference' (DIVCORE_BACKEND=reference forces the latter).

    Examples
    --------
    >>> divcore.backend() in ("compiled", "reference")
    True
    """
    return _backend


def get_include():
    """The folder holding divcore's C headers (divcore/kernels.h) and their Cython
    declarations (divcore/kernels.pxd) for other extensions: pass it to the C compiler's
    include_dirs and to Cython's include_path (docs/c_api.md).

    Returns
    -------
    str
        divcore/include inside an installed package, src/ in a source checkout.

    Examples
    --------
    >>> import os
    >>> os.path.isfile(os.path.join(divcore.get_include(), "divcore", "kernels.h"))
    True
    """
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "include")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(here), "src")  # a source checkout
