"""CUDA kernels (Numba-CUDA), mirroring ``jitsolve.kernels.cpu`` name for name.

Not built yet: the CUDA backend arrives in its own issue.  Its modules will carry the
same names and signatures as ``cpu/`` (``stencil.py``, ``blas.py``, ...), and its tests
run everywhere under ``NUMBA_ENABLE_CUDASIM=1`` (see ``tests/conftest.py``).
"""
