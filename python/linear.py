"""Linear solvers and preconditioners of the public API (``js.CG``, ``js.Multigrid``, ...).

These classes only hold options; the numerics live in :mod:`jitsolve.solvers.linear`
(Krylov methods, direct solves, preconditioners) and :mod:`jitsolve.kernels.cpu`
(fused BLAS-1 updates, stencils, multigrid smoothers and transfers).  This module adapts
a problem's operator to what those solvers take: a ``matvec(x, out)`` on flat arrays,
the diagonal, a sparse matrix, or, for geometric multigrid, the plain arrays describing
a grid operator (padded shape, ``1/h^2``, boundary codes, coefficient field, scale).

Tolerances: a solve succeeds when the true residual of the returned iterate satisfies
``||b - A u||_2 <= max(rtol ||b||_2, atol)``; ``sol.resnorm`` is that true residual,
recomputed at the end whatever the outcome.

``callback(iteration, x, resnorm)`` is called after every iteration (``x`` flat; None for
GMRES, which forms its iterate only at restarts); returning True stops the solve with
``ReturnCode.Terminated``.
"""
import numbers

import numpy as np

from .algorithms import LinearAlgorithm, Preconditioner
from .errors import InvalidProblemError, UnsupportedAlgorithmError
from .grid.operators import GridOperator, ScaledOperator
from .grid.stencils import Diffusion, Laplacian
from .problems import LinearProblem
from .retcodes import ReturnCode
from .solution import LinearSolution
from .solve import register

__all__ = ["CG", "FlexibleCG", "BiCGSTAB", "GMRES", "Direct", "Jacobi", "Chebyshev",
           "Multigrid", "AMG", "operator_matvec", "transpose_operator"]


# ====================================================================== operator adapters
def _unwrap_scaled(op):
    """``(scale, leaf)`` with ``op == scale * leaf`` through nested ScaledOperators."""
    s = 1.0
    while isinstance(op, ScaledOperator):
        s *= op.c
        op = op.op
    return s, op


def _op_dtype(A):
    if isinstance(A, GridOperator):
        return np.dtype(np.float64)
    dt = getattr(A, "dtype", None)
    return np.dtype(np.float64) if dt is None else np.dtype(dt)


def work_dtype(A, b):
    """Precision of ``b``; complex when ``b`` or ``A`` is complex."""
    single = b.dtype in (np.float32, np.complex64)
    cplx = b.dtype.kind == "c" or _op_dtype(A).kind == "c"
    if cplx:
        return np.dtype(np.complex64 if single else np.complex128)
    return np.dtype(np.float32 if single else np.float64)


def operator_matvec(A, dtype):
    """``matvec(x, out) -> out`` computing ``A x`` on flat arrays of ``dtype``."""
    import scipy.sparse as sp
    if isinstance(A, GridOperator):
        s, leaf = _unwrap_scaled(A)
        if type(leaf) in (Laplacian, Diffusion):
            # one kernel pass: the stencil is linear in its scale array c
            from .grid.operators import kernel_module
            K = kernel_module(leaf.backend)
            c = leaf._c * s
            shape3 = (1,) * (3 - leaf.grid.ndim) + leaf.grid.shape
            per, sgn = leaf._per, leaf._sgn
            if type(leaf) is Laplacian:
                def mv(x, out):
                    K.laplacian_apply(x.reshape(shape3), out.reshape(shape3), c, per, sgn)
                    return out
            else:
                k3 = leaf._k3

                def mv(x, out):
                    K.diffusion_apply(x.reshape(shape3), k3, out.reshape(shape3), c, per, sgn)
                    return out
            return mv

        def mv(x, out):
            return A.apply(x, out)
        return mv
    if sp.issparse(A):
        M = sp.csr_matrix(A, dtype=dtype)

        def mv(x, out):
            out[:] = M @ x
            return out
        return mv
    if isinstance(A, np.ndarray):
        M = np.ascontiguousarray(A, dtype=dtype)

        def mv(x, out):
            np.matmul(M, x, out=out)
            return out
        return mv

    def mv(x, out):     # scipy LinearOperator
        out[:] = np.ravel(A.matvec(x))
        return out
    return mv


def transpose_operator(A):
    """``A^T`` of any supported operator (grid operators use their exact transpose kernels)."""
    if isinstance(A, GridOperator):
        return A.T
    if isinstance(A, np.ndarray):
        return np.ascontiguousarray(A.T)
    return A.T


def operator_diagonal(A):
    import scipy.sparse as sp
    if isinstance(A, GridOperator):
        return np.asarray(A.diagonal()).ravel()
    if sp.issparse(A):
        return A.diagonal()
    if isinstance(A, np.ndarray):
        return np.diag(A).copy()
    return None


def operator_matrix(A, name="A"):
    """``A`` as a scipy.sparse or dense matrix (grid operators assemble their CSR)."""
    import scipy.sparse as sp
    if isinstance(A, GridOperator):
        return A.to_csr()
    if sp.issparse(A) or isinstance(A, np.ndarray):
        return A
    raise InvalidProblemError(
        f"{name}: this algorithm needs an explicit matrix; a LinearOperator has none "
        f"(use a Krylov method, or pass a scipy.sparse matrix)")


# ====================================================================== preconditioners
class _CachedPreconditioner(Preconditioner):
    """Preconditioners remember their last setup, keyed on the operator object itself,
    so that the adjoint solve of a symmetric operator (``A.T is A``) reuses it."""

    def _build(self, A, dtype, matvec):
        raise NotImplementedError

    def setup(self, A, dtype=np.float64, matvec=None):
        """The callable ``(r, out) -> out`` approximating ``A^{-1}`` for this operator."""
        dtype = np.dtype(dtype)
        last = self.__dict__.get("_last")
        if last is not None and last[0] is A and last[1] == dtype:
            return last[2]
        M = self._build(A, dtype, matvec if matvec is not None else operator_matvec(A, dtype))
        self.__dict__["_last"] = (A, dtype, M)
        return M

    def _options(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class Jacobi(_CachedPreconditioner):
    """Diagonal (Jacobi) preconditioner ``z = D^{-1} r``.

    Cost: setup reads the diagonal; one application is one fused pass (2 reads, 1 write).
    Needs the diagonal: grid operators, scipy.sparse matrices and arrays have one; a bare
    LinearOperator does not.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> sol = js.solve(js.LinearProblem(np.diag([1.0, 10.0, 100.0]), np.ones(3)), js.CG(js.Jacobi()))
    >>> sol.iters
    1

    References
    ----------
    Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed. (2003), sec. 10.2.
    """

    reference = "Saad (2003), sec. 10.2"

    def _build(self, A, dtype, matvec):
        from .solvers.linear.precond import jacobi
        d = operator_diagonal(A)
        if d is None:
            raise InvalidProblemError("precond: Jacobi() needs the diagonal of A; a LinearOperator has none")
        try:
            return jacobi(d, dtype)
        except ValueError as e:
            raise InvalidProblemError(f"precond: Jacobi(): {e}") from None


class Chebyshev(_CachedPreconditioner):
    """Chebyshev polynomial preconditioner of degree ``degree`` (Jacobi-scaled).

    ``M^{-1} = p(D^{-1} A) D^{-1}`` with the Chebyshev polynomial for the spectrum
    ``[lmin, lmax]`` of ``D^{-1} A``, estimated by ``steps`` Lanczos steps at setup (the
    upper bound inflated by 10 %).  Symmetric positive definite for SPD ``A``: use it
    with CG.  Needs no inner products when applied (good for GPUs and many cores).

    Parameters
    ----------
    degree : int
        Polynomial degree; one application costs ``degree - 1`` matvecs.
    steps : int
        Lanczos steps for the eigenvalue bounds (``steps`` matvecs at setup).

    References
    ----------
    Saad (2003), sec. 12.3, Alg. 12.1; Adams, Brezina, Hu, Tuminaro, J. Comput. Phys.
    188 (2003).
    """

    reference = "Saad (2003), Alg. 12.1; Adams et al., JCP 188 (2003)"

    def __init__(self, degree=4, steps=20):
        if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or degree < 1:
            raise InvalidProblemError(f"degree: expected an integer >= 1, got {degree!r}")
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 2:
            raise InvalidProblemError(f"steps: expected an integer >= 2, got {steps!r}")
        self.degree = int(degree)
        self.steps = int(steps)

    def _build(self, A, dtype, matvec):
        from .solvers.linear.precond import chebyshev
        n = A.shape[0]
        try:
            return chebyshev(matvec, operator_diagonal(A), n, dtype, self.degree, steps=self.steps)
        except ValueError as e:
            raise InvalidProblemError(f"precond: {e}") from None


class Multigrid(_CachedPreconditioner):
    """Geometric multigrid for grid operators: one V- (or W-) cycle per application.

    For ``c * js.Laplacian(g)`` and ``c * js.Diffusion(g, kappa)`` (any nonzero scale,
    e.g. ``-L`` for Poisson) on grids whose cell counts are even down to small levels
    (powers of two, or ``m 2^k``).  Cells are agglomerated ``2^d -> 1`` per level,
    coarse operators are rediscretised with the boundary conditions kept and ``kappa``
    restricted by the geometric mean; transfers are cell-centred linear interpolation and
    its transpose; smoothing is red-black Gauss-Seidel.  The cycle is symmetric and
    positive definite for SPD operators, so it preconditions CG; iteration counts do not
    grow with the grid (9 CG iterations to rtol 1e-8 for 2D Poisson from 64^2 to 1024^2).
    The W-cycle is symmetric too, but positive definite only while the cycle itself
    converges: with strongly jumping coefficients (rediscretised coarse operators) it can
    fail that, which CG reports as ``Breakdown``; use the V-cycle (or ``js.AMG()``) there.

    Parameters
    ----------
    cycle : {"V", "W"}
    presmooth, postsmooth : int
        Red-black Gauss-Seidel sweeps before / after the coarse-grid correction.
    coarse_size : int
        Coarsen until a level has at most this many cells (then dense LU).
    coarse_kappa : {"geometric", "arithmetic", "harmonic"}
        How ``kappa`` is averaged over the ``2^d`` children.

    Cost: one V(1,1)-cycle is about 6 stencil applies on the finest grid, times 4/3
    (2D) or 8/7 (3D) for the coarser levels; setup is a few passes over ``kappa``.

    References
    ----------
    Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), ch. 2, 4, sec. 5.7;
    Briggs, Henson, McCormick, *A Multigrid Tutorial* (2000).
    """

    reference = "Trottenberg, Oosterlee, Schüller, Multigrid (2001)"

    def __init__(self, cycle="V", presmooth=1, postsmooth=1, coarse_size=64,
                 coarse_kappa="geometric"):
        if cycle not in ("V", "W"):
            raise InvalidProblemError(f"cycle: expected 'V' or 'W', got {cycle!r}")
        for name, v in (("presmooth", presmooth), ("postsmooth", postsmooth)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise InvalidProblemError(f"{name}: expected an integer >= 0, got {v!r}")
        if presmooth + postsmooth == 0:
            raise InvalidProblemError("presmooth, postsmooth: at least one sweep is needed")
        if coarse_kappa not in ("geometric", "arithmetic", "harmonic"):
            raise InvalidProblemError(
                f"coarse_kappa: expected 'geometric', 'arithmetic' or 'harmonic', got {coarse_kappa!r}")
        self.cycle = cycle
        self.presmooth = int(presmooth)
        self.postsmooth = int(postsmooth)
        self.coarse_size = int(coarse_size)
        self.coarse_kappa = coarse_kappa

    def _build(self, A, dtype, matvec):
        from .solvers.linear.precond import GeometricMultigrid
        if not isinstance(A, GridOperator):
            raise InvalidProblemError(
                f"precond: Multigrid() is geometric and needs a grid operator (js.Laplacian or "
                f"js.Diffusion, optionally scaled); got {type(A).__name__} (use js.AMG() for matrices)")
        s, leaf = _unwrap_scaled(A)
        if type(leaf) not in (Laplacian, Diffusion):
            raise InvalidProblemError(
                f"precond: Multigrid() supports c * Laplacian and c * Diffusion operators, got {A!r}")
        if s == 0.0:
            raise InvalidProblemError("precond: Multigrid() needs a nonzero operator scale")
        shape3 = (1,) * (3 - leaf.grid.ndim) + leaf.grid.shape
        kappa = leaf._k3 if type(leaf) is Diffusion else None
        return GeometricMultigrid(shape3, leaf._c, leaf._per, leaf._sgn, s, kappa,
                                  cycle=self.cycle, presmooth=self.presmooth,
                                  postsmooth=self.postsmooth, coarse_size=self.coarse_size,
                                  coarse_kappa=self.coarse_kappa, dtype=dtype)


class AMG(_CachedPreconditioner):
    """Algebraic multigrid preconditioner from pyamg: one cycle per application.

    ``kind="sa"`` smoothed aggregation (SPD problems; the default), ``kind="rs"``
    classical Ruge-Stüben.  Works on any scipy.sparse matrix, dense array or grid
    operator (assembled to CSR).  pyamg is imported only when the preconditioner is
    set up.  Setup cost is that of pyamg's hierarchy construction (single-threaded).

    References
    ----------
    Vaněk, Mandel, Brezina, Computing 56 (1996); Ruge & Stüben, in *Multigrid Methods*
    (1987); Bell, Olson, Schroder, "PyAMG", JOSS 7 (2022).
    """

    reference = "Vaněk, Mandel, Brezina (1996); pyamg (Bell, Olson, Schroder, 2022)"

    def __init__(self, kind="sa", cycle="V"):
        if kind not in ("sa", "rs"):
            raise InvalidProblemError(f"kind: expected 'sa' or 'rs', got {kind!r}")
        if cycle not in ("V", "W", "F"):
            raise InvalidProblemError(f"cycle: expected 'V', 'W' or 'F', got {cycle!r}")
        self.kind = kind
        self.cycle = cycle

    def _build(self, A, dtype, matvec):
        from .solvers.linear.precond import make_amg
        return make_amg(operator_matrix(A, "precond"), dtype, kind=self.kind, cycle=self.cycle)


def setup_preconditioner(pc, A, dtype, matvec):
    """Turn ``alg.precond`` into ``(r, out) -> out`` (or None)."""
    from scipy.sparse.linalg import LinearOperator
    if pc is None:
        return None
    if isinstance(pc, _CachedPreconditioner):
        return pc.setup(A, dtype, matvec)
    if isinstance(pc, LinearOperator):
        def M(r, out):
            out[:] = np.ravel(pc.matvec(r))
            return out
        return M
    if callable(pc):
        def M(r, out):
            out[:] = np.ravel(pc(r))
            return out
        return M
    raise InvalidProblemError(
        f"precond: expected a js preconditioner, a callable r -> z or a LinearOperator, "
        f"got {type(pc).__name__}")


def _check_precond(precond):
    from scipy.sparse.linalg import LinearOperator
    if precond is None or isinstance(precond, (Preconditioner, LinearOperator)) or callable(precond):
        if isinstance(precond, Preconditioner) and not isinstance(precond, _CachedPreconditioner) \
                and not callable(precond):
            raise InvalidProblemError(f"precond: {type(precond).__name__} has no setup in this build")
        return precond
    raise InvalidProblemError(
        f"precond: expected a js preconditioner (js.Jacobi(), js.Multigrid(), ...), a callable "
        f"r -> z or a scipy LinearOperator, got {type(precond).__name__}")


# ====================================================================== algorithms
class _Krylov(LinearAlgorithm):
    def __init__(self, precond=None):
        if isinstance(precond, type):
            raise InvalidProblemError(f"precond: pass an instance, e.g. {precond.__name__}(), not the class")
        self.precond = _check_precond(precond)


class CG(_Krylov):
    """Conjugate gradients (preconditioned when ``precond`` is given), for Hermitian
    positive definite ``A``.

    Matrix-free; the update ``x += a p, r -= a Ap, |r|^2`` is one fused pass, and the
    residual is recomputed from ``b - A x`` every 50 iterations and before declaring
    convergence, so the reported residual cannot drift from the true one.  A matrix or
    preconditioner that is not positive definite (``p^H A p <= 0``) stops the solve with
    ``ReturnCode.Breakdown``; an indefinite or nonsymmetric matrix never comes back as
    ``Success`` unless the true residual meets the tolerance.

    Parameters
    ----------
    precond : Preconditioner, callable or LinearOperator, optional
        Must be fixed and SPD (use :class:`FlexibleCG` for a variable one).

    Cost per iteration: one matvec, one preconditioner application, 13 vector passes
    unpreconditioned (5 more with a preconditioner: the ``r^H z`` dot and ``z`` itself).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((64, 64))
    >>> sol = js.solve(js.LinearProblem(-js.Laplacian(g), np.ones(g.shape)), js.CG(js.Multigrid()))
    >>> sol.retcode, sol.iters <= 10
    (<ReturnCode.Success: 'Success'>, True)

    References
    ----------
    Hestenes & Stiefel, J. Res. NBS 49 (1952); Saad (2003), Alg. 6.18 and 9.1.
    """

    reference = "Hestenes & Stiefel (1952); Saad (2003), Alg. 9.1"


class FlexibleCG(_Krylov):
    """Flexible CG (Notay's FCG) for preconditioners that vary or are nonlinear.

    Each direction is explicitly A-orthogonalised against the last ``truncate``
    directions, so inexact inner solves (a few multigrid cycles to a loose tolerance, an
    inner Krylov method, a trained network ``r -> z``) do not break convergence.

    Parameters
    ----------
    precond : Preconditioner, callable or LinearOperator, optional
    truncate : int
        Number of previous directions kept (FCG(m)); 1 is often enough.
    restart : int, optional
        Forget the stored directions every ``restart`` iterations.

    Cost per iteration: that of PCG plus ``truncate`` dots and axpys; memory
    ``2 (truncate + 1)`` vectors more.

    References
    ----------
    Notay, "Flexible conjugate gradients", SIAM J. Sci. Comput. 22 (2000).
    """

    reference = "Notay, SIAM J. Sci. Comput. 22 (2000)"

    def __init__(self, precond=None, truncate=1, restart=None):
        super().__init__(precond)
        if isinstance(truncate, bool) or not isinstance(truncate, numbers.Integral) or truncate < 1:
            raise InvalidProblemError(f"truncate: expected an integer >= 1, got {truncate!r}")
        if restart is not None and (isinstance(restart, bool) or not isinstance(restart, numbers.Integral)
                                    or restart < 1):
            raise InvalidProblemError(f"restart: expected None or an integer >= 1, got {restart!r}")
        self.truncate = int(truncate)
        self.restart = restart


class BiCGSTAB(_Krylov):
    """BiCGSTAB for general (nonsymmetric) nonsingular systems, right-preconditioned.

    ``rho = <r0, r> = 0`` or ``omega = 0`` returns ``ReturnCode.Breakdown`` with the last
    iterate.  Cost per iteration: two matvecs, two preconditioner applications, four
    inner products.

    References
    ----------
    van der Vorst, SIAM J. Sci. Stat. Comput. 13 (1992); Saad (2003), Alg. 7.7.
    """

    reference = "van der Vorst (1992); Saad (2003), Alg. 7.7"


class GMRES(_Krylov):
    """Restarted GMRES(``restart``), right-preconditioned, for general systems.

    Arnoldi with classical Gram-Schmidt applied twice and Givens rotations; the true
    residual is recomputed at every restart.  Cost per iteration: one matvec, one
    preconditioner application and ``O(j n)`` orthogonalisation; memory ``restart + 1``
    vectors.

    References
    ----------
    Saad & Schultz, SIAM J. Sci. Stat. Comput. 7 (1986); Saad (2003), Alg. 6.9, 9.5.
    """

    reference = "Saad & Schultz (1986); Saad (2003), Alg. 9.5"

    def __init__(self, restart=30, precond=None):
        super().__init__(precond)
        if isinstance(restart, bool) or not isinstance(restart, numbers.Integral) or restart < 1:
            raise InvalidProblemError(f"restart: expected an integer >= 1, got {restart!r}")
        self.restart = int(restart)


class Direct(LinearAlgorithm):
    """Direct solve: SciPy's sparse LU (SuperLU) for sparse matrices and grid operators
    (assembled to CSR), LAPACK LU for dense arrays.

    ``Failure`` for a singular matrix.  Cost: for 2D grids about ``O(n^1.5)`` time,
    3D grids much more (fill-in); use a Krylov method with multigrid for large grids.

    References
    ----------
    Demmel et al., "A supernodal approach to sparse partial pivoting", SIAM J. Matrix
    Anal. Appl. 20 (1999) (SuperLU).
    """

    reference = "SuperLU (Demmel et al., 1999); LAPACK getrf"


# ====================================================================== solve implementations
def _prepare(prob, alg, atol):
    if np.ndim(atol) != 0:
        raise InvalidProblemError("atol: a linear solve takes one number (a norm), not per-component tolerances")
    A = prob.A
    dtype = work_dtype(A, prob.b)
    b = np.ascontiguousarray(prob.b.ravel(), dtype=dtype)
    x0 = None if prob.x0 is None else np.ascontiguousarray(prob.x0.ravel(), dtype=dtype)
    matvec = operator_matvec(A, dtype)
    return A, dtype, b, x0, matvec


def _finish(prob, alg, res):
    return LinearSolution(res.x.reshape(prob.b.shape), ReturnCode(res.status), res.iters,
                          res.resnorm, res.history, alg=repr(alg))


def _krylov(fn, prob, alg, rtol, atol, maxiter, callback, progress, **extra):
    A, dtype, b, x0, matvec = _prepare(prob, alg, atol)
    M = setup_preconditioner(alg.precond, A, dtype, matvec)
    res = fn(matvec, b, x0, precond=M, rtol=rtol, atol=float(atol), maxiter=maxiter,
             callback=callback, progress=progress, **extra)
    return _finish(prob, alg, res)


@register(LinearProblem, CG)
def _solve_cg(prob, alg, rtol, atol, maxiter, callback, backend, progress):
    from .solvers.linear import cg
    return _krylov(cg, prob, alg, rtol, atol, maxiter, callback, progress)


@register(LinearProblem, FlexibleCG)
def _solve_fcg(prob, alg, rtol, atol, maxiter, callback, backend, progress):
    from .solvers.linear import fcg
    return _krylov(fcg, prob, alg, rtol, atol, maxiter, callback, progress,
                   truncate=alg.truncate, restart=alg.restart)


@register(LinearProblem, BiCGSTAB)
def _solve_bicgstab(prob, alg, rtol, atol, maxiter, callback, backend, progress):
    from .solvers.linear import bicgstab
    return _krylov(bicgstab, prob, alg, rtol, atol, maxiter, callback, progress)


@register(LinearProblem, GMRES)
def _solve_gmres(prob, alg, rtol, atol, maxiter, callback, backend, progress):
    from .solvers.linear import gmres
    return _krylov(gmres, prob, alg, rtol, atol, maxiter, callback, progress, restart=alg.restart)


@register(LinearProblem, Direct)
def _solve_direct(prob, alg, rtol, atol, maxiter, callback, backend, progress):
    from .solvers.linear import direct_solve
    if np.ndim(atol) != 0:
        raise InvalidProblemError("atol: a linear solve takes one number (a norm), not per-component tolerances")
    dtype = work_dtype(prob.A, prob.b)
    A = operator_matrix(prob.A)
    if A.dtype != dtype:
        A = A.astype(dtype)
    b = np.ascontiguousarray(prob.b.ravel(), dtype=dtype)
    return _finish(prob, alg, direct_solve(A, b, rtol=rtol, atol=float(atol)))
