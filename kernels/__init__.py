"""Numba kernels.  ``cpu/`` and ``cuda/`` mirror each other name for name, so a backend
is a choice of module: ``jitsolve.kernels.cpu.stencil`` or ``jitsolve.kernels.cuda.stencil``.

Kernels are plain top-level functions over arrays and scalars (so ``cache=True`` works);
they import nothing from the layers above them.  Nothing here is imported by
``import jitsolve``: the first use of an operator or solver loads (and, on a cold cache,
compiles) its kernels.
"""
import importlib

BACKENDS = ("cpu", "cuda")


def load(backend, name):
    """Return the kernel module ``jitsolve.kernels.<backend>.<name>``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; expected one of {BACKENDS}")
    return importlib.import_module(f"{__name__}.{backend}.{name}")
