"""divcore: exact and fast cross-entropy, KL divergence and their relatives on raw logits.

    H(p, q) = H(p) + KL(p ‖ q)

With the target p fixed, cross-entropy and KL differ by a constant: same minimiser, same
gradient. `decompose` returns all three from one pass.

The functions run on the compiled core (divcore._core) when it can be imported, else on
the pure-Python reference (with a warning); DIVCORE_BACKEND=reference forces the
reference, and `backend()` says which one is live.
"""
import glob
import hashlib
import os
import sys
import warnings

from ._version import __version__
from ._topk import TopK
from .api import PUBLIC, Decomposition, Functions, RowStats

__all__ = [
    "Decomposition",
    "RowStats",
    "TopK",
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
    "row_stats",
    "set_num_threads",
    "show_config",
    "softmax",
]

_HERE = os.path.dirname(os.path.abspath(__file__))


def _core_sources_digest(package_dir, headers_dir):
    """A digest of what divcore._core is compiled from (the .pyx/.pxi/.pxd files of the
    package and the C headers): the same for a checkout and for a copy installed from it."""
    names = sorted(glob.glob(os.path.join(package_dir, "*.pyx"))
                   + glob.glob(os.path.join(package_dir, "*.pxi"))
                   + glob.glob(os.path.join(package_dir, "*.pxd"))) \
        + sorted(glob.glob(os.path.join(headers_dir, "*.h")))
    digest = hashlib.sha256()
    for name in names:
        digest.update(os.path.basename(name).encode())
        with open(name, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def _installed_core_dir():
    """When divcore is imported from a source checkout without a built core (e.g. `python
    -m pytest` in the repository after `pip install .`), the folder of an installed copy
    whose compiled core was built from the same sources as this checkout; None otherwise
    (then the checkout runs on the reference, and says how to build it)."""
    checkout_headers = os.path.join(os.path.dirname(_HERE), "src", "divcore")
    if not os.path.isdir(checkout_headers):
        return None
    mine = None
    for entry in sys.path:
        folder = os.path.join(os.path.abspath(entry or os.curdir), "divcore")
        if os.path.normcase(folder) == os.path.normcase(_HERE):
            continue
        if not glob.glob(os.path.join(folder, "_core.*")):
            continue
        if mine is None:
            mine = _core_sources_digest(_HERE, checkout_headers)
        theirs = _core_sources_digest(folder, os.path.join(folder, "include", "divcore"))
        if theirs == mine:
            return folder
    return None


class _NotBuilt(ImportError):
    pass


def _import_core():
    if not glob.glob(os.path.join(_HERE, "_core.*.so")) \
            and not glob.glob(os.path.join(_HERE, "_core.*.pyd")) \
            and not glob.glob(os.path.join(_HERE, "_core.so")):
        # A source checkout has no built extension: use an installed copy built from the
        # same sources, never one built from others.
        installed = _installed_core_dir()
        if installed is None:
            raise _NotBuilt(
                f"divcore's compiled core is not built in {_HERE} (a source checkout?); "
                "build it with `python -m pip install -e .` or `python setup.py build_ext "
                "--inplace`")
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
        from . import _refplans
        return _refplans, "reference"
    try:
        _core = _import_core()
    except ImportError as exc:
        if requested == "compiled":
            raise
        reason = str(exc) if isinstance(exc, _NotBuilt) else \
            f"the compiled core could not be imported ({exc})"
        warnings.warn(f"divcore: {reason}; using the pure-Python reference backend, which "
                      "is much slower", RuntimeWarning, stacklevel=3)
        from . import _refplans
        return _refplans, "reference"
    return _core, "compiled"


_kernels, _backend = _load_kernels()
# The rules' path: every argument rule and message (divcore._rules), then the backend.
_functions = Functions(_kernels, _backend)


def _public(name):
    """divcore.<name>: the compiled front where it is live (DIVCORE_FRONT=0 turns it off),
    else the rules' path. The front carries the method's docstring and answers to its
    public name (pickle, the API docs)."""
    method = getattr(_functions, name)
    front = getattr(_kernels, name, None) if _front else None
    if front is None:
        return method
    front.__doc__ = method.__doc__
    front.__module__, front.__qualname__ = __name__, name
    return front


_front = _backend == "compiled" and os.environ.get("DIVCORE_FRONT", "1").strip() != "0"
if _backend == "compiled":
    _kernels.bind_front(_functions, _front)

logsumexp = _public("logsumexp")
log_softmax = _public("log_softmax")
softmax = _public("softmax")
cross_entropy = _public("cross_entropy")
kl_divergence = _public("kl_divergence")
entropy = _public("entropy")
decompose = _public("decompose")
cross_entropy_and_grad = _public("cross_entropy_and_grad")
kl_divergence_and_grad = _public("kl_divergence_and_grad")
js_divergence = _public("js_divergence")
binary_cross_entropy = _public("binary_cross_entropy")
assert len(PUBLIC) == 11
# row_stats (SPEC §7) has no compiled front: the rules' path, then one kernel per row.
row_stats = _functions.row_stats


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
    """The folder holding divcore's C headers (divcore/kernels.h) for other extensions:
    pass it to the C compiler's include_dirs (docs/c_api.md). Cython finds the .pxd files
    in the package folder (`from divcore.kernels cimport ...`); copies here also serve an
    include_path.

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
