"""Algebraic multigrid through pyamg (smoothed aggregation or classical Ruge-Stuben).

pyamg is imported when a preconditioner is built, never at module import.  One
application is one V-cycle of the pyamg hierarchy (pure Python + SciPy, single thread).

References: Vaněk, Mandel, Brezina, Computing 56 (1996) (smoothed aggregation);
Ruge & Stüben (1987); Bell, Olson, Schroder, "PyAMG", JOSS 7 (2022).
"""
import numpy as np

__all__ = ["amg"]


def amg(A, dtype, kind="sa", cycle="V", **options):
    """The preconditioner ``(r, out) -> out`` of one pyamg ``cycle`` for the sparse matrix ``A``."""
    import pyamg
    import scipy.sparse as sp
    A = sp.csr_matrix(A)
    if kind == "sa":
        ml = pyamg.smoothed_aggregation_solver(A, **options)
    elif kind == "rs":
        ml = pyamg.ruge_stuben_solver(A, **options)
    else:
        raise ValueError(f"kind: expected 'sa' or 'rs', got {kind!r}")
    P = ml.aspreconditioner(cycle=cycle)

    def M(r, out):
        out[:] = P.matvec(np.asarray(r))
        return out
    M.hierarchy = ml
    return M
