"""Build the compiled core.

The C kernels live in src/divcore/*.h (header-only, no Python.h). They are compiled into
divcore._core and copied into the package as divcore/include/divcore/ so that
divcore.get_include() can hand them to other extensions, with copies of the .pxd files
(which are in the package folder too, divcore/*.pxd, so that `cimport divcore.kernels`
needs no include path). tools/generate.py writes the declarations; nothing here runs it.

Flags: -O3 only. No fast-math style flags (they switch the whole process to
flush-to-zero and break the -inf/NaN contract) and no tuning for the build machine's CPU
(a wheel must run on any x86-64): the AVX2 / AVX-512 kernels are chosen at run time
(src/divcore/dispatch.h). -ffp-contract=fast lets the AVX2 / AVX-512 builds fuse a*b + c
into one FMA (GCC's default in GNU C; one rounding instead of two, nothing about the
floating-point environment): ~1.4x on the exp-heavy loops, exp still < 1.03 ulp. The
baseline build has no FMA and is unaffected.
"""
import glob
import os
import shutil
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
HEADERS = os.path.join(HERE, "src", "divcore")


class build_py_with_headers(build_py):
    """Ship the C headers and their Cython declarations inside the package
    (divcore/include/divcore/*.h, *.pxd): one folder, divcore.get_include(), for both
    compilers."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "divcore", "include", "divcore")
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(HEADERS)):
            if name.endswith((".h", ".pxd")):
                shutil.copy2(os.path.join(HEADERS, name), target)


class build_ext_openmp(build_ext):
    """Use OpenMP where the compiler has it (threads over rows); build without it (one
    thread) where it does not, e.g. Apple clang without libomp."""

    def build_extensions(self):
        flags = self._openmp_flags()
        for ext in self.extensions:
            ext.extra_compile_args += flags[0]
            ext.extra_link_args += flags[1]
        super().build_extensions()

    def _openmp_flags(self):
        if os.environ.get("DIVCORE_NO_OPENMP"):
            return [], []
        candidates = ([["/openmp"], []] if self.compiler.compiler_type == "msvc"
                      else [["-fopenmp"], ["-fopenmp"]])
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "omp_check.c")
            with open(src, "w") as f:
                f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
            try:
                objs = self.compiler.compile([src], output_dir=tmp,
                                             extra_postargs=candidates[0])
                self.compiler.link_executable(objs, os.path.join(tmp, "omp_check"),
                                              extra_postargs=candidates[1])
            except Exception:  # noqa: BLE001 - any failure means: no OpenMP here
                print("divcore: OpenMP not available, building single-threaded")
                return [], []
        return candidates[0], candidates[1]


if sys.platform == "win32":
    compile_args = ["/O2"]
else:
    compile_args = ["-O3", "-std=c99", "-ffp-contract=fast", "-Wno-unused-function"]

extensions = [
    Extension(
        "divcore._core",
        ["divcore/_core.pyx"],
        depends=sorted(glob.glob(os.path.join("src", "divcore", "*.h")))
        + sorted(glob.glob(os.path.join("divcore", "*.h")))
        + sorted(glob.glob(os.path.join("divcore", "*.pxi"))),
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
    cmdclass={"build_py": build_py_with_headers, "build_ext": build_ext_openmp},
)
