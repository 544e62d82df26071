# divcore/__init__.pxd: marks this folder as the Cython package `divcore`, so that
# `from divcore.kernels cimport ...` resolves here with include_dirs=[divcore.get_include()].
# Empty on purpose: the declarations are in kernels.pxd and dispatch.pxd.
