# divcore/__init__.pxd: marks this folder as the Cython package `divcore`, so that
# `from divcore.kernels cimport ...` resolves here, in the installed package (found on
# sys.path) or in divcore.get_include(). Empty on purpose: the declarations are in
# kernels.pxd and dispatch.pxd.
