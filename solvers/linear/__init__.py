"""Linear solvers: Krylov methods, a direct fallback and preconditioners.

Everything here works on flat 1-D NumPy arrays and plain callables, so it can be driven
by any operator: ``matvec(x, out) -> out`` writes ``A x`` into ``out``, and a
preconditioner ``M(r, out) -> out`` writes ``z ~ A^{-1} r``.  The solvers return a
:class:`~jitsolve.solvers.linear.common.KrylovResult` whose ``status`` is the name of a
``jitsolve.ReturnCode`` (``"Success"``, ``"MaxIters"``, ``"Breakdown"``, ``"Terminated"``,
``"Failure"``); the API layer turns it into a ``LinearSolution``.

Tolerance semantics everywhere: converged when the *true* residual satisfies
``||b - A x|| <= max(rtol ||b||, atol)`` (2-norm); the reported ``resnorm`` is always the
true residual of the returned iterate, recomputed at the end.
"""
from .bicgstab import bicgstab
from .cg import cg
from .common import KrylovResult
from .direct import direct_solve
from .fcg import fcg
from .gmres import gmres

__all__ = ["cg", "fcg", "bicgstab", "gmres", "direct_solve", "KrylovResult"]
