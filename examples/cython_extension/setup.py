"""Build the row_scores example against divcore's C-level API:

    python -m pip install .                  # pyproject.toml: divcore is a build requirement
    python setup.py build_ext --inplace      # or in place, with divcore and Cython installed

`from divcore.kernels cimport ...` needs no include path: divcore/kernels.pxd is in the
installed divcore package, which Cython finds on sys.path as it finds numpy's .pxd files.
Only the C compiler needs divcore.get_include(), for divcore/kernels.h. Nothing is linked:
the kernels are header-only.

-fopenmp (compile and link) is for the prange loop of logsumexp_parallel; without it
Cython's prange runs on one thread. Never -ffast-math: divcore's headers refuse it.
"""
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

import divcore

openmp = [] if sys.platform == "darwin" else ["/openmp"] if sys.platform == "win32" else ["-fopenmp"]

extension = Extension(
    "row_scores",
    ["row_scores.pyx"],
    include_dirs=[divcore.get_include()],
    extra_compile_args=openmp,
    extra_link_args=openmp if sys.platform != "win32" else [],
    # define_macros=[("DIVCORE_PORTABLE", "1")],  # the same bits on every CPU (slower)
)

setup(
    name="divcore-row-scores-example",
    ext_modules=cythonize([extension], compiler_directives={"language_level": 3}),
)
