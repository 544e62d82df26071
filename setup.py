"""Build the compiled core.

The C kernels live in src/divcore/*.h (header-only, no Python.h). They are compiled into
divcore._core and copied into the package as divcore/include/divcore/ so that
divcore.get_include() can hand them to other extensions.

Flags: -O3 only. Never -ffast-math / -Ofast (they switch the whole process to
flush-to-zero and break the -inf/NaN contract) and never -march=native (a wheel must run
on any x86-64; fast paths are chosen at run time).
"""
import glob
import os
import shutil
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
HEADERS = os.path.join(HERE, "src", "divcore")


class build_py_with_headers(build_py):
    """Ship the C headers inside the package (divcore/include/divcore/*.h)."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "divcore", "include", "divcore")
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(HEADERS)):
            if name.endswith(".h"):
                shutil.copy2(os.path.join(HEADERS, name), target)


if sys.platform == "win32":
    compile_args = ["/O2"]
else:
    compile_args = ["-O3", "-std=c99", "-Wno-unused-function"]

extensions = [
    Extension(
        "divcore._core",
        ["divcore/_core.pyx"],
        depends=sorted(glob.glob(os.path.join("src", "divcore", "*.h"))),
        include_dirs=[os.path.join(HERE, "src"), numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    cmdclass={"build_py": build_py_with_headers},
)
