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


_IMPORT_FROM = None


def _kernel_imports(root, path, text):
    """The kernel source files (under ``root``, the ``kernels`` package) that the module at
    ``path`` with source ``text`` imports anywhere: relative imports (``from .erk import
    ...``, ``from . import stencil``) and absolute ``jitsolve.kernels...`` ones.  A
    regular expression, not :mod:`ast`: 25 ms for every kernel file, not 400 (the stamps
    are computed on a process's first cached load)."""
    import os
    import re
    global _IMPORT_FROM
    if _IMPORT_FROM is None:
        _IMPORT_FROM = (re.compile(r"^[ \t]*from[ \t]+(\.+|[\w.]+)([\w.]*)[ \t]+import[ \t]+"
                                   r"(\([^)]*\)|[^\n]*)", re.M),
                        re.compile(r"^[ \t]*import[ \t]+([\w.]+)", re.M))
    from_re, import_re = _IMPORT_FROM
    top = os.path.basename(os.path.dirname(root)) + "." + os.path.basename(root)

    def module_file(base, dotted):
        stem = os.path.join(base, *dotted.split(".")) if dotted else base
        for cand in (stem + ".py", os.path.join(stem, "__init__.py")):
            if os.path.isfile(cand):
                return os.path.normpath(cand)
        return None

    found = set()
    for dots, mod, names in from_re.findall(text):
        if dots.startswith("."):
            base = os.path.dirname(path)
            for _ in range(len(dots) - 1):
                base = os.path.dirname(base)
        elif (dots + ".").startswith(top + "."):
            base, mod = root, dots[len(top) + 1:]
        else:
            continue
        found.add(module_file(base, mod))
        for name in re.findall(r"\w+", names.split("#")[0] if "(" not in names else names):
            found.add(module_file(base, (mod + "." if mod else "") + name))   # submodules
    for mod in import_re.findall(text):
        if (mod + ".").startswith(top + "."):
            found.add(module_file(root, mod[len(top) + 1:]))
    return {f for f in found if f and f.startswith(root + os.sep)}


def kernel_stamps(root):
    """``{file: digest}`` for every kernel source file under ``root``: SHA-256 of the
    file and of every kernel file it imports, directly or not, plus the package
    ``__init__`` files' own closures (they install overloads every kernel may use:
    :mod:`.complexpow`).  A cached kernel is compiled with its callees from other files
    in line (``stiff_solve`` with the Rosenbrock step), and callees reach a kernel only
    by import (no kernel takes a dispatcher as an argument), so the closure is what its
    machine code depends on."""
    import hashlib
    import os
    files = []
    for d, _, names in sorted(os.walk(root)):
        files += [os.path.normpath(os.path.join(d, n)) for n in sorted(names) if n.endswith(".py")]
    content = {}
    for f in files:
        with open(f, "rb") as fh:
            content[f] = fh.read()
    deps = {f: _kernel_imports(root, f, content[f].decode("utf-8")) for f in files}
    inits = [f for f in files if os.path.basename(f) == "__init__.py"]

    def closure(start):
        seen, todo = set(), list(start)
        while todo:
            f = todo.pop()
            if f not in seen:
                seen.add(f)
                todo.extend(deps.get(f, ()))
        return seen

    common = closure(inits)
    stamps = {}
    for f in files:
        h = hashlib.sha256()
        for g in sorted(closure([f]) | common):
            h.update(os.path.relpath(g, root).encode() + b"\0" + content[g])
        stamps[f] = h.hexdigest()
    return stamps


# the stamps in use: {"root", "package", "stamps", path: file stamp}, filled on the first
# cached load (tests/test_kernel_stamps.py puts an edited tree's stamps here)
_STAMP_STATE = {}


def _cache_keys_cover_callees():
    """Make Numba's disk cache of every kernel depend on its callees' sources, by content.

    Numba keys a cached function on its own file only; a loop compiled with an inlined
    step function from another file (``stiff_solve`` calling ``rosenbrock.py``) would be
    reloaded stale after that file changed, and could crash.  The source stamp of a
    kernel file is the digest of it and every kernel file it imports, directly or not
    (:func:`kernel_stamps`): an edit of ``sde.py`` recompiles the kernels whose files
    import it, not the stencils (one digest of all kernel files made every kernel edit
    cost a cold test run, 16-23 min: perf/RESULTS.md).  Files elsewhere in the package
    (and beside it, in a checkout: tests/, perf/) are stamped with their own content's
    digest.  Numba's stamp is the file's modification time and size: a fresh clone or a
    fresh install (CI) has new times, so nothing cached was ever reused between CI runs;
    content stamps are reused wherever the sources (and their installed path) are the
    same.
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
    state = _STAMP_STATE

    def get_source_stamp(self):
        path = os.path.normpath(os.path.abspath(getattr(self, "_py_file", "") or ""))
        if "stamps" not in state:
            state["root"] = os.path.normpath(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__))))
            state["package"] = os.path.dirname(state["root"])
            state["stamps"] = kernel_stamps(state["root"])
        if path.startswith(state["root"] + os.sep):
            digest = state["stamps"].get(path)
            if digest is not None:
                return ("kernels", digest)
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
