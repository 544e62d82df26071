"""Build the row_scores example against divcore's C-level API:

    python -m pip install divcore Cython     # divcore is needed to build, not to run
    python setup.py build_ext --inplace

divcore.get_include() is one folder for both compilers: Cython finds divcore/kernels.pxd
there (include_path) and the C compiler divcore/kernels.h (include_dirs). Nothing is
linked: the kernels are header-only.
"""
from Cython.Build import cythonize
from setuptools import Extension, setup

import divcore

extension = Extension(
    "row_scores",
    ["row_scores.pyx"],
    include_dirs=[divcore.get_include()],
)

setup(
    name="divcore-row-scores-example",
    ext_modules=cythonize(
        [extension],
        include_path=[divcore.get_include()],
        compiler_directives={"language_level": 3},
    ),
)
