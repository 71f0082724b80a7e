"""CPU kernels (Numba ``@njit(..., cache=True)``): stencils, BLAS-1, Krylov, RK loops, SDE, adjoints.

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


def _kernels_digest():
    """SHA-256 of every kernel source file (kernels/**/*.py), computed once per process."""
    import hashlib
    import os
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for d, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(d, name), "rb") as fh:
                    h.update(name.encode() + fh.read())
    return root, h.hexdigest()


def _cache_keys_cover_callees():
    """Make Numba's disk cache of every kernel depend on *all* kernel sources, by content.

    Numba keys a cached function on its own file only; a loop compiled with an inlined
    step function from another file (``stiff_solve`` calling ``rosenbrock.py``) would be
    reloaded stale after that file changed, and could crash.  The source stamp of the
    functions defined here is the digest of every kernel file, so any change to any
    kernel recompiles them all once.  Files elsewhere in the package (and beside it, in a
    checkout: tests/, perf/) are stamped with their own content's digest.  Numba's stamp
    is the file's modification time and size: a fresh clone or a fresh install (CI) has
    new times, so nothing cached was ever reused between CI runs; content stamps are
    reused wherever the sources (and their installed path) are the same.
    """
    import os
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover
        return
    mixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    if mixin is None or getattr(mixin, "_jitsolve_patched", False):
        return
    original = mixin.get_source_stamp
    state = {}

    def get_source_stamp(self):
        path = os.path.abspath(getattr(self, "_py_file", "") or "")
        if "digest" not in state:
            state["root"], state["digest"] = _kernels_digest()
            state["package"] = os.path.dirname(state["root"])
        if path.startswith(state["root"] + os.sep):
            return ("kernels", state["digest"])
        if path.startswith(state["package"] + os.sep) and os.path.isfile(path):
            hit = state.get(path)
            if hit is None:
                import hashlib
                with open(path, "rb") as fh:
                    hit = state[path] = ("file", hashlib.sha256(fh.read()).hexdigest())
            return hit
        return original(self)

    mixin.get_source_stamp = get_source_stamp
    mixin._jitsolve_patched = True


_cache_keys_cover_callees()


def _quiet_first_class_warning():
    """Integration loops take user functions as values (the design, DESIGN.md): C function
    pointers (:mod:`.cfuncptr`); a loop given a plain Numba cfunc (a first-class function
    value) still works, and Numba warns on each such compile that the feature is
    experimental."""
    import warnings
    warnings.filterwarnings("ignore", message="First-class function type feature is experimental")


_quiet_first_class_warning()


def _exact_complex_integer_powers():
    """Complex ``z ** n`` for integral ``n`` by multiplication, as NumPy: the complex-step
    Jacobians of ``u**3`` at negative ``u`` depend on it (see :mod:`.complexpow`)."""
    from .complexpow import install
    install()


_exact_complex_integer_powers()
