"""Algebraic multigrid through pyamg (smoothed aggregation or classical Ruge-Stuben).

pyamg is imported when a preconditioner is built, never at module import.  One
application is one V-cycle of the pyamg hierarchy (pure Python + SciPy, single thread).

References: Vaněk, Mandel, Brezina, Computing 56 (1996) (smoothed aggregation);
Ruge & Stüben (1987); Bell, Olson, Schroder, "PyAMG", JOSS 7 (2022).
"""
import numpy as np

__all__ = ["amg"]


def amg(A, dtype, kind="sa", cycle="V", **options):
    """The preconditioner ``(r, out=None) -> out`` of one pyamg ``cycle`` for the sparse
    matrix ``A``.

    The hierarchy is built in the precision of ``dtype`` whatever ``A``'s dtype (pyamg
    needs ``A``, ``r`` and ``out`` of one dtype); a real ``A`` keeps a real hierarchy
    and a complex ``r`` is then preconditioned part by part.
    """
    import pyamg
    import scipy.sparse as sp
    dtype = np.dtype(dtype)
    hdtype = dtype if A.dtype.kind == "c" else np.finfo(dtype).dtype
    A = sp.csr_matrix(A, dtype=hdtype)
    if kind == "sa":
        ml = pyamg.smoothed_aggregation_solver(A, **options)
    elif kind == "rs":
        ml = pyamg.ruge_stuben_solver(A, **options)
    else:
        raise ValueError(f"kind: expected 'sa' or 'rs', got {kind!r}")
    P = ml.aspreconditioner(cycle=cycle)

    if hdtype == dtype:
        def M(r, out=None):
            if out is None:
                out = np.empty(np.shape(r), dtype)
            out[:] = P.matvec(np.asarray(r, dtype=dtype))
            return out
    else:
        def M(r, out=None):
            if out is None:
                out = np.empty(np.shape(r), dtype)
            out.real = P.matvec(np.ascontiguousarray(r.real, dtype=hdtype))
            out.imag = P.matvec(np.ascontiguousarray(r.imag, dtype=hdtype))
            return out
    M.hierarchy = ml
    return M
