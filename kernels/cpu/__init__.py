"""CPU kernels (Numba ``@njit(parallel=True, cache=True)``): ``stencil``, ``blas``.

Importing this package prepares Numba for a fast first call: Numba's target context,
on its first use in a process, imports ``numba.np.arraymath``, whose module-level BLAS
probe imports all of ``scipy.linalg`` (about 0.4 s with SciPy >= 1.15) only to learn
that SciPy is installed.  SciPy is a hard dependency of jitsolve, so the probe is
answered without that import; Numba's linear-algebra overloads still import
``scipy.linalg.cython_blas`` themselves when a jitted function uses them.
"""


def _fast_numba_blas_probe():
    import sys
    if "numba.np.arraymath" in sys.modules:
        return
    try:
        import numba.np.linalg as _linalg
    except ImportError:  # pragma: no cover - numba layout changed: keep its default
        return
    original = getattr(_linalg, "ensure_blas", None)
    if original is None:  # pragma: no cover
        return
    _linalg.ensure_blas = lambda: None
    try:
        import numba.np.arraymath  # noqa: F401  (its probe now sees BLAS available)
    finally:
        _linalg.ensure_blas = original


_fast_numba_blas_probe()
