"""Linear solvers and preconditioners of the public API (``js.CG``, ``js.Multigrid``, ...).

These classes only hold options; the numerics live in :mod:`jitsolve.solvers.linear`
(Krylov methods, direct solves, preconditioners) and :mod:`jitsolve.kernels.cpu`
(fused BLAS-1 updates, stencils, multigrid smoothers and transfers).  This module adapts
a problem's operator to what those solvers take: a ``matvec(x, out)`` on flat arrays,
the diagonal, a sparse matrix, or, for geometric multigrid, the plain arrays describing
a grid operator (padded shape, ``1/h^2``, boundary codes, coefficient field, scale).

Tolerances: a solve succeeds when the true residual of the returned iterate satisfies
``||b - A u||_2 <= max(rtol ||b||_2, atol)``; ``sol.resnorm`` is that true residual,
recomputed at the end whatever the outcome.  A tolerance below the accuracy the
precision allows (rtol 1e-8 in float32, or for a 1-D Poisson problem of 10^6 cells in
float64) is not iterated on to ``maxiter`` (10 n by default): CG, FlexibleCG, BiCGSTAB
and GMRES (at its restarts) stop with ``ReturnCode.ConvergenceFailure`` and the best
iterate they evaluated once the true residual has stopped falling (see
:data:`jitsolve.solvers.linear.common.STALL_GAP`).

``callback(iteration, x, resnorm)`` is called after every iteration (``x`` flat; None for
GMRES, which forms its iterate only at restarts); returning True stops the solve with
``ReturnCode.Terminated``.  An exception it raises stops the solve with
:class:`jitsolve.errors.UserFunctionError`, the exception chained.

A zero right-hand side ``b`` has the exact solution ``u = 0``: every Krylov method returns
it at once (``Success``, ``iters == 0``, ``resnorm == 0``), whatever ``x0`` is.

A user preconditioner (a callable ``r -> z`` or a scipy LinearOperator) must return ``r``'s
size, and real values in a real solve (a complex ``z`` whose imaginary part is exactly zero
is accepted); otherwise InvalidProblemError.  An exception it raises stops the solve with
:class:`jitsolve.errors.UserFunctionError`, the exception chained.  The same holds for a
scipy LinearOperator ``A``: its matvec (its rmatvec in the adjoint solve of
``js.gradient``) that raises gives UserFunctionError naming ``A``, and complex output in
a real solve (a LinearOperator of real dtype, real ``b``) is InvalidProblemError unless
its imaginary part is exactly zero.  jitsolve's own errors pass through unchanged.
"""
import importlib
import math
import numbers

import numpy as np

from .algorithms import LinearAlgorithm, Preconditioner
from .errors import (BackendUnavailableError, InvalidProblemError, JitsolveError,
                     UserFunctionError)
from .grid.operators import GridOperator, ScaledOperator, shifted_parts
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

    # a user's scipy LinearOperator (its rmatvec for the A^T of transpose_operator)
    what = f"the LinearOperator's {getattr(A, '_js_method', 'matvec')}"
    apply = A.matvec

    def mv(x, out):
        y = call_user(f"A: {what}", apply, x)
        out[:] = _real_values(np.ravel(y), out, f"A: {what}",
                              "give the LinearOperator a complex dtype, or make b complex")
        return out
    return mv


def _user_error(who, exc, where=""):
    """:class:`~jitsolve.errors.UserFunctionError` for user code ``who`` (``"name: what"``)
    that raised ``exc`` (``where``: e.g. ``" at iteration 3"``); raise it ``from exc``."""
    return UserFunctionError(f"{who} raised {type(exc).__name__}: {exc}{where} "
                             f"(the exception is chained)")


def call_user(who, fn, *args, where=""):
    """``fn(*args)``; an exception other than jitsolve's own becomes the
    :class:`~jitsolve.errors.UserFunctionError` of :func:`_user_error`, chained."""
    try:
        return fn(*args)
    except JitsolveError:
        raise
    except Exception as exc:
        raise _user_error(who, exc, where) from exc


def _real_values(z, out, who, hint):
    """``z`` ready to store into ``out``: a complex ``z`` for a real ``out`` loses its
    imaginary part only when that is exactly zero, else InvalidProblemError (``who``
    returned it; ``hint`` says what to do)."""
    if np.iscomplexobj(z) and out.dtype.kind != "c":
        if np.any(z.imag != 0):
            raise InvalidProblemError(
                f"{who} returned complex values (max |imag| {float(np.max(np.abs(z.imag))):.3e}) "
                f"in a real solve; {hint}")
        return z.real
    return z


def operator_stencil(A, dtype):
    """``A`` as a :class:`jitsolve.solvers.linear.cg.GridStencil` when it is a (scaled)
    Laplacian or Diffusion on the CPU backend of a 2-D or 3-D grid and ``dtype`` is
    float64 (the fused grid CG iteration), else None."""
    if not isinstance(A, GridOperator) or np.dtype(dtype) != np.float64:
        return None
    s, leaf = _unwrap_scaled(A)
    if type(leaf) not in (Laplacian, Diffusion) or leaf.backend != "cpu" or leaf.grid.ndim < 2:
        return None
    from .solvers.linear.cg import GridStencil
    shape3 = (1,) * (3 - leaf.grid.ndim) + leaf.grid.shape
    if type(leaf) is Laplacian:
        return GridStencil("laplacian", shape3, leaf._c * s, leaf._per, leaf._sgn, None)
    return GridStencil("diffusion", shape3, leaf._c * s, leaf._per, leaf._sgn, leaf._k3)


def transpose_operator(A):
    """``A^T`` of any supported operator (grid operators use their exact transpose kernels;
    a LinearOperator's is its rmatvec, named so in the errors of :func:`operator_matvec`)."""
    from scipy.sparse.linalg import LinearOperator
    if isinstance(A, GridOperator):
        return A.T
    if isinstance(A, np.ndarray):
        return np.ascontiguousarray(A.T)
    AT = A.T
    if isinstance(A, LinearOperator) and AT is not A and getattr(AT, "A", None) is A:
        AT._js_method = "rmatvec"       # SciPy's transpose, calling A's rmatvec
    return AT


def operator_diagonal(A):
    import scipy.sparse as sp
    if isinstance(A, GridOperator):
        return np.asarray(A.diagonal()).ravel()
    if sp.issparse(A):
        return A.diagonal()
    if isinstance(A, np.ndarray):
        return np.diag(A).copy()
    return None


def _is_matrix(A):
    import scipy.sparse as sp
    return sp.issparse(A) or isinstance(A, np.ndarray)


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
def _operator_state(A):
    """What a preconditioner built for ``A`` depends on besides ``A``'s identity, as a
    flat list of scalars and arrays: the scales of a composed grid operator and its
    leaves' coefficient fields (their array objects and copies of their values:
    ``D.kappa = k`` replaces the array, ``D.kappa[:] = k`` changes it in place), a
    sparse matrix's index arrays and a copy of its values, a dense array's values.
    (Keyed on the object alone, a ``js.Multigrid()`` reused after ``D.kappa`` changed
    kept the old hierarchy: 90 CG iterations instead of 12 on a 64^2 grid, Jacobi 6,789
    instead of 259.)"""
    import scipy.sparse as sp
    out = []
    if isinstance(A, GridOperator):
        def walk(o):
            out.extend((type(o), id(o), getattr(o, "c", None)))
            subs = [o.__dict__.get(name) for name in ("op", "a", "b")]
            subs = [sub for sub in subs if isinstance(sub, GridOperator)]
            for sub in subs:
                walk(sub)
            if not subs and o.param_name is not None:      # a leaf with a field
                v = getattr(o, o.param_name, None)
                for a in (v if isinstance(v, (tuple, list)) else (v,)):
                    if isinstance(a, np.ndarray):
                        out.extend((id(a), a.copy()))
        walk(A)
    elif sp.issparse(A):
        A = A.tocsr() if A.format not in ("csr", "csc", "bsr") else A
        out.extend((A.format, A.shape, id(A.indices), id(A.indptr), A.nnz,
                    np.array(A.data, copy=True)))
    elif isinstance(A, np.ndarray):
        out.append(np.array(A, copy=True))
    return out


def _same_state(s1, s2):
    """Whether two :func:`_operator_state` lists are equal (arrays by shape, dtype and
    values)."""
    def same(x, y):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            return (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
                    and x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y))
        return x == y
    return len(s1) == len(s2) and all(same(x, y) for x, y in zip(s1, s2))


class _CachedPreconditioner(Preconditioner):
    """Preconditioners remember their last setup, keyed on the operator object itself
    and on its state (:func:`_operator_state`: coefficient fields, scales, a matrix's
    values), so that the adjoint solve of a symmetric operator (``A.T is A``) reuses it
    and an operator changed since (``D.kappa = k``) gets a new one."""

    def _build(self, A, dtype, matvec):
        raise NotImplementedError

    def setup(self, A, dtype=np.float64, matvec=None):
        """The callable ``(r, out=None) -> out`` approximating ``A^{-1}`` for this operator.

        Called with ``r`` alone it returns a new array, so a set-up preconditioner is
        also a user preconditioner ``r -> z`` for another solve: e.g. the multigrid of
        the diffusion part, ``js.Multigrid().setup(-js.Laplacian(g))``, for GMRES on an
        advection-diffusion operator, which ``js.Multigrid()`` itself does not take.
        The setup is reused while ``A`` is the same object in the same state (its
        ``kappa``, its scales, a matrix's values) and ``dtype`` the same; otherwise it is
        built anew (the callable returned before keeps the old operator's)."""
        dtype = np.dtype(dtype)
        state = _operator_state(A)
        last = self.__dict__.get("_last")
        if (last is not None and last[0] is A and last[1] == dtype
                and _same_state(last[3], state)):
            return last[2]
        self.__dict__.pop("_last", None)        # the old hierarchy freed before the new
        M = self._build(A, dtype, matvec if matvec is not None else operator_matvec(A, dtype))
        self.__dict__["_last"] = (A, dtype, M, state)
        return M

    def _options(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class Jacobi(_CachedPreconditioner):
    """Diagonal (Jacobi) preconditioner ``z = D^{-1} r``.

    Needs the diagonal: grid operators, scipy.sparse matrices and arrays have one; a bare
    LinearOperator does not.

    References
    ----------
    Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed. (2003), sec. 10.2.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> A = np.diag([1.0, 10.0, 100.0])
    >>> sol = js.solve(js.LinearProblem(A, np.ones(3)), js.CG(js.Jacobi()))
    >>> sol.retcode, sol.iters
    (<ReturnCode.Success: 'Success'>, 1)
    >>> M = js.Jacobi().setup(A)
    >>> M(np.ones(3), np.empty(3))
    array([1.  , 0.1 , 0.01])

    Cost
    ----
    Per application: one fused pass over three vectors (read ``r`` and the stored
    inverse diagonal, write ``z``: 3 x 8 bytes per unknown), no matvec.  Setup: the
    diagonal (face tables for a grid operator) and one vector of its inverses; memory
    one vector.
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

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((32, 32))
    >>> prob = js.LinearProblem(-js.Laplacian(g), np.ones(g.shape))
    >>> plain, cheb = js.solve(prob, js.CG()), js.solve(prob, js.CG(js.Chebyshev(degree=4)))
    >>> cheb.retcode, cheb.iters < plain.iters / 2
    (<ReturnCode.Success: 'Success'>, True)

    Cost
    ----
    Per application: ``degree - 1`` matvecs and no inner products; three vector
    operations for the Jacobi-scaled first term and five per matvec (residual update,
    scaling of the direction, Jacobi scaling, axpy, accumulation into ``z``), each one
    full pass of 2-3 vectors.  Setup: ``steps`` matvecs of Lanczos
    (one dot and one norm each) plus a small tridiagonal eigenproblem.  Memory: four
    vectors (inverse diagonal, residual, direction, temporary).
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
    e.g. ``-L`` for Poisson), and their shifts ``sigma * js.Identity(g) + c * L`` with
    ``sigma * c <= 0`` (implicit time steps, ``I - dt L``: the shift is kept on every
    level; 7-10 iterations for any ``dt``), on grids of any size: the hierarchy halves
    the grid down to ``coarse_size`` cells, an odd axis to ``(n - 1) / 2`` (the extra cell
    interpolated from its ghost; a Dirichlet far side keeps its place on every level
    through the ghost sign, so 1025^2 takes the 8 iterations of 1024^2; a Neumann far
    side 10-12).  An odd periodic axis has no red-black ordering: the level there is the
    coarsest, factorised, densely up to 64 cells and by a sparse LU above; a coarsest
    level of more than 2^18 cells in 2-D (2^15 in 3-D, 2^22 in 1-D) and ``coarse_size``
    is refused, the periodic axis named (``js.AMG()`` takes any grid).  Cells are
    agglomerated ``2^d -> 1`` per level along the axes whose coupling ``1/h^2`` is at
    least half the strongest (semi-coarsening: on stretched cells the short axes are
    halved alone until the cells are square, which keeps 16 : 1 cells at 8 CG
    iterations instead of 100), coarse operators are rediscretised with the
    boundary conditions kept and ``kappa`` restricted by the geometric mean; transfers
    are cell-centred linear interpolation and its transpose; smoothing is red-black
    Gauss-Seidel (symmetric, red-black-red, for a 3-D Laplacian); the finest level's
    coarse correction is over-corrected by 1.15 (2-D) or 1.2 (3-D) (``overcorrection``).
    The cycle is symmetric and positive definite for SPD operators, so it
    preconditions CG; iteration counts do not grow with the grid (8 CG iterations to
    rtol 1e-8 for 2D Poisson from 32^2 to 2048^2, 7 for 3D from 32^3 to 128^3).
    The W-cycle is symmetric too, but positive definite only while the cycle itself
    converges: with strongly jumping coefficients (rediscretised coarse operators) it can
    fail that, which CG reports as ``Breakdown``; use the V-cycle (or ``js.AMG()``) there.

    Parameters
    ----------
    cycle : {"V", "W"}
    presmooth, postsmooth : int
        Red-black Gauss-Seidel sweeps before / after the coarse-grid correction.
    coarse_size : int
        Coarsen until a level has at most this many cells (then its LU: dense up to 64
        cells, sparse above).
    coarse_kappa : {"geometric", "arithmetic", "harmonic"}
        How ``kappa`` is averaged over the ``2^d`` children (rediscretised levels).
    coarse : {"auto", "rediscretised", "galerkin"}
        Coarse operators rediscretised on each coarse grid (no setup beyond restricting
        ``kappa``), or the Galerkin products ``R A P`` of the cycle's own transfers,
        assembled once as sparse matrices (up to 25 / 125 points per row in 2-D / 3-D:
        linear transfers widen the stencil) and smoothed by Gauss-Seidel (forward before,
        backward after the coarse correction; multicolour and threaded on large levels).
        Galerkin levels follow jumping coefficients that averaging ``kappa`` blurs: on a
        32^3 checkerboard of 8^3 blocks with kappa 1 : 1000, 40 CG iterations against
        198 to rtol 1e-10 (V(1,1)); a rediscretised W-cycle is indefinite from a ratio of
        about 100 (CG breaks down).  ``"auto"`` (the default) takes Galerkin levels when
        ``kappa`` jumps between neighbouring cells by more than ``JUMP_RATIO`` (300 for
        V-cycles, read on the second coarse level, where cell-scale noise has been
        averaged out and interfaces, blocks and channels remain; 30 for W-cycles, read on
        the grid), or where the first two rediscretised levels misstate the fine
        conductances (``conductance_ratio`` above ``MISMATCH_RATIO`` = 32 either way on
        connected cells, at least a quarter of the grid's side: one- or two-cell
        channels and barriers from a contrast of ~1e4, cell-by-cell checkerboards,
        which averaging blurs), rediscretised levels otherwise; the Laplacian is always
        rediscretised.
    smoother : {"auto", "rbgs", "srbgs", "jacobi"}
        Red-black Gauss-Seidel (red then black before the coarse correction, black then
        red after), symmetric red-black Gauss-Seidel (red, black, red both before and
        after: the red-black analogue of SSOR, one pass over the grid for a Laplacian), or
        damped Jacobi.  ``"srbgs"`` contracts more per cycle (two-grid factor 0.20 against
        0.31 for the cell-centred 2-D Laplacian; with the default over-correction 7 CG
        iterations against 8 to rtol 1e-8 in 2-D, 7 against 10 in 3-D) for half a sweep
        more work on every level.  ``"auto"`` (the default) takes ``"srbgs"`` for a
        Laplacian (shifted or not) on a 3-D grid and for ``Diffusion`` in 2-D and 3-D,
        ``"rbgs"`` otherwise; measured (paired runs, Intel host): ``"srbgs"`` 0.86-0.90x
        the time of ``"rbgs"`` on 3-D Laplacians from 32^3 to 256 x 128^2 (0.82-0.94x
        shifted, 0.87-0.91x W-cycles and Neumann sides), 1.00-1.03x on 2-D Laplacians
        with a random right-hand side (0.92 with ``b = 1``: it depends on ``b``),
        0.88-0.96x on ``Diffusion`` (9-10 against 12-13 iterations; 1 : 1000 jumps
        included).
    omega : float, optional
        Jacobi damping in (0, 2); ``2d / (2d + 1)`` for a ``d``-dimensional grid by
        default (the smoothing-optimal value for the Laplacian).
    overcorrection : float in (0, 2), optional
        Factor of the finest level's coarse-grid correction, ``u += w P e_c``.  By
        default 1.15 on 2-D and 1.2 on 3-D grids for V-cycles on rediscretised levels
        (the cell-centred correction undershoots: CG's residual falls 0.093 instead of
        0.119 an iteration for the 2-D Laplacian, 0.140 instead of 0.155 in 3-D, about
        one iteration in ten saved), 1 on 1-D grids, Galerkin levels, W-cycles and
        hierarchies that halve an odd axis with a Neumann side (where a factor gains
        nothing or slows).  Any positive factor keeps the cycle symmetric and positive
        definite; 1 is the textbook cycle.

    References
    ----------
    Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), ch. 2, 4, sec. 5.7 (sec.
    2.7.2 and A.3.4: Galerkin coarse operators); Briggs, Henson, McCormick, *A Multigrid
    Tutorial* (2000); Blaheta, J. Comput. Appl. Math. 24 (1988) (over-correction).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((32, 32))
    >>> sol = js.solve(js.LinearProblem(-js.Laplacian(g), np.ones(g.shape)),
    ...                js.CG(js.Multigrid()))
    >>> sol.retcode, sol.iters
    (<ReturnCode.Success: 'Success'>, 8)

    Cost
    ----
    Per application (one V(1,1)-cycle from a zero guess) on the finest level: two
    red-black Gauss-Seidel sweeps (both colours in one pass; for ``Diffusion`` from face
    weights and a diagonal computed once per level, so the sweeps form no harmonic
    means), one residual pass, one restriction and one prolongation, i.e. about five
    passes over the grid (four for a Laplacian, whose restriction forms the residual
    rows itself: row by row in 2-D, plane by plane in 3-D; the 3-D Laplacian's default
    symmetric sweeps take three colours a pass), times 4/3 (2D) or 8/7 (3D) for the
    coarser levels, plus the LU solve
    on the coarsest (forward and back substitution in-process when dense; SuperLU's
    when sparse: 0.6 ms at 125^2, 4.6 ms at 25^3).  The stride-2 smoother loops are
    compute bound: measured (one thread, 1024^2) a cycle takes about the time of 14
    stencil applies, not 5-6.  A W-cycle visits every coarse level twice.  Setup: two
    arrays per level (``u``, ``f``: 2 x 4/3 vectors in 2D; a third, ``r``, where a
    level forms its residual in a pass of its own), ``kappa`` restricted per level (and
    for ``Diffusion`` the face weights and diagonal: four more arrays per level), the
    coarsest matrix assembled and factorised.  Galerkin levels: the fine matrix assembled
    in one threaded pass and the sparse products ``P^T (A P)`` formed once (SciPy;
    setup about 0.7 s at 1024^2, 3-4 s at 128^3), the levels then smoothed on those
    matrices (up to 21 and 81 points per row in 2-D and 3-D on the second level, 25 and
    125 below; rows stored by colour on levels of more than 2^18 entries, a colour a
    threaded pass): a Galerkin V-cycle costs about three rediscretised ones in 2-D.
    ``smoother="jacobi"``: one residual pass and one update pass per sweep, each
    level's diagonal computed at setup (from the face weights, without assembling the
    matrix; from the Galerkin matrix on those levels).
    """

    reference = "Trottenberg, Oosterlee, Schüller, Multigrid (2001)"

    def __init__(self, cycle="V", presmooth=1, postsmooth=1, coarse_size=64,
                 coarse_kappa="geometric", coarse="auto", smoother="auto", omega=None,
                 overcorrection=None):
        if cycle not in ("V", "W"):
            raise InvalidProblemError(f"cycle: expected 'V' or 'W', got {cycle!r}")
        if overcorrection is not None and (
                isinstance(overcorrection, bool) or not isinstance(overcorrection, numbers.Real)
                or not 0.0 < float(overcorrection) < 2.0):
            raise InvalidProblemError(
                f"overcorrection: expected a number in (0, 2), got {overcorrection!r}")
        for name, v in (("presmooth", presmooth), ("postsmooth", postsmooth)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise InvalidProblemError(f"{name}: expected an integer >= 0, got {v!r}")
        if presmooth + postsmooth == 0:
            raise InvalidProblemError("presmooth, postsmooth: at least one sweep is needed")
        if coarse_kappa not in ("geometric", "arithmetic", "harmonic"):
            raise InvalidProblemError(
                f"coarse_kappa: expected 'geometric', 'arithmetic' or 'harmonic', got {coarse_kappa!r}")
        if coarse not in ("auto", "rediscretised", "galerkin"):
            raise InvalidProblemError(
                f"coarse: expected 'auto', 'rediscretised' or 'galerkin', got {coarse!r}")
        if smoother not in ("auto", "rbgs", "srbgs", "jacobi"):
            raise InvalidProblemError(
                f"smoother: expected 'auto', 'rbgs', 'srbgs' or 'jacobi', got {smoother!r}")
        if omega is not None:
            if (isinstance(omega, bool) or not isinstance(omega, numbers.Real)
                    or not 0.0 < float(omega) < 2.0):
                raise InvalidProblemError(f"omega: expected a number in (0, 2), got {omega!r}")
            if smoother != "jacobi":
                raise InvalidProblemError("omega: only the Jacobi smoother takes a damping "
                                          "(smoother='jacobi')")
        self.cycle = cycle
        self.presmooth = int(presmooth)
        self.postsmooth = int(postsmooth)
        self.coarse_size = int(coarse_size)
        self.coarse_kappa = coarse_kappa
        self.coarse = coarse
        self.smoother = smoother
        self.omega = None if omega is None else float(omega)
        self.overcorrection = None if overcorrection is None else float(overcorrection)

    def _build(self, A, dtype, matvec):
        from .solvers.linear.precond import GeometricMultigrid
        from .solvers.linear.precond.multigrid import coarsening_refusal
        if not isinstance(A, GridOperator):
            raise InvalidProblemError(
                f"precond: Multigrid() is geometric and needs a grid operator (js.Laplacian or "
                f"js.Diffusion, optionally scaled); got {type(A).__name__} (use js.AMG() for matrices)")
        terms = shifted_parts(A)
        shift, s, leaf = terms if terms is not None else (0.0, 1.0, None)
        if type(leaf) not in (Laplacian, Diffusion):
            raise InvalidProblemError(
                f"precond: Multigrid() supports c * Laplacian and c * Diffusion operators, and "
                f"their shifts sigma * js.Identity(g) + c * L; got {A!r} (for a sum such as "
                f"advection-diffusion, precondition with the multigrid of its diffusion part: "
                f"precond=js.Multigrid().setup(D))")
        if s == 0.0:
            raise InvalidProblemError("precond: Multigrid() needs a nonzero operator scale")
        if shift * s > 0.0:
            raise InvalidProblemError(
                f"precond: Multigrid(): the shift {shift:g} * I and the part {s:g} * "
                f"{type(leaf).__name__} have opposite definiteness (an indefinite, Helmholtz-like "
                f"operator, which smoothing does not converge on); Multigrid() takes "
                f"sigma * I + c * L with sigma * c <= 0, e.g. I - dt * L")
        shape3 = (1,) * (3 - leaf.grid.ndim) + leaf.grid.shape
        refusal = coarsening_refusal(shape3, leaf._c, self.coarse_size, leaf._per)
        if refusal is not None:     # checked before any level is allocated
            raise InvalidProblemError(f"precond: Multigrid(): {refusal}")
        kappa = leaf._k3 if type(leaf) is Diffusion else None
        return GeometricMultigrid(shape3, leaf._c, leaf._per, leaf._sgn, s, kappa, shift=shift,
                                  cycle=self.cycle, presmooth=self.presmooth,
                                  postsmooth=self.postsmooth, coarse_size=self.coarse_size,
                                  coarse_kappa=self.coarse_kappa, coarse=self.coarse,
                                  smoother=self.smoother, omega=self.omega, dtype=dtype,
                                  overcorrection=self.overcorrection)


class AMG(_CachedPreconditioner):
    """Algebraic multigrid preconditioner from pyamg: one cycle per application.

    ``kind="sa"`` smoothed aggregation (SPD problems; the default), ``kind="rs"``
    classical Ruge-Stüben (real matrices only).  Works on any scipy.sparse matrix, dense
    array or grid operator (assembled to CSR), of any dtype: the hierarchy is built in
    the solve's precision.  pyamg is imported only when the preconditioner is set up
    (without it, :class:`~jitsolve.errors.BackendUnavailableError` then); a bare
    LinearOperator, which has no matrix, is refused (InvalidProblemError).

    References
    ----------
    Vaněk, Mandel, Brezina, Computing 56 (1996); Ruge & Stüben, in *Multigrid Methods*
    (1987); Bell, Olson, Schroder, "PyAMG", JOSS 7 (2022).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((32, 32))
    >>> A = (-js.Laplacian(g)).to_csr()
    >>> sol = js.solve(js.LinearProblem(A, np.ones(g.size)), js.CG(js.AMG()))
    >>> sol.retcode, sol.iters <= 12
    (<ReturnCode.Success: 'Success'>, True)

    Cost
    ----
    Per application: one pyamg cycle (``cycle="V"``: pre- and post-smoothing and a
    sparse residual on every level, sparse restriction and prolongation, a direct
    coarsest solve), run by pyamg in Python and SciPy on one thread, plus a copy into
    ``z``.  pyamg reports a cycle complexity of about 2.6 (the cycle costs about 2.6
    sparse matvecs of ``A``) for smoothed aggregation on the 2D Laplacian.  Setup: the
    CSR matrix (assembled for a grid operator) and pyamg's hierarchy construction
    (single-threaded); memory: the hierarchy, about 1.3 times ``A``'s storage
    (operator complexity) in that case.
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
        try:
            importlib.import_module("pyamg")
        except ImportError as e:
            raise BackendUnavailableError(
                f"precond: AMG() needs the pyamg package, which is not importable ({e}); "
                f"install it (pip install pyamg), or use js.Multigrid() for a grid "
                f"operator, js.Jacobi() or js.Chebyshev()") from e
        if not isinstance(A, GridOperator) and not _is_matrix(A):
            raise InvalidProblemError(
                f"precond: AMG() needs an explicit matrix (a scipy.sparse matrix, an array "
                f"or a grid operator); A is a {type(A).__name__}, which has none (use "
                f"js.Chebyshev(), a preconditioner that needs only products with A, or "
                f"pass A as a scipy.sparse matrix)")
        M = operator_matrix(A, "precond")
        if self.kind == "rs" and M.dtype.kind == "c":
            raise InvalidProblemError("precond: AMG(kind='rs') needs a real matrix (pyamg's "
                                      "Ruge-Stuben is real only); use AMG(kind='sa')")
        return make_amg(M, dtype, kind=self.kind, cycle=self.cycle)


def _user_preconditioner(apply, what):
    """``(r, out) -> out`` from a user's ``r -> z``.

    ``z`` must have ``r``'s size and, in a real solve, be real: a complex ``z`` is
    accepted only when its imaginary part is exactly zero (it is dropped), otherwise
    InvalidProblemError.  An exception raised by ``apply`` becomes
    :class:`~jitsolve.errors.UserFunctionError` with it chained (jitsolve's own errors
    pass through unchanged).
    """
    def M(r, out):
        z = call_user(f"precond: {what}", apply, r)
        size = np.size(z) if z is not None else 0
        if size != r.size:
            got = "None" if z is None else f"shape {np.shape(z)}"
            raise InvalidProblemError(f"precond: {what} returned {got}; expected an array of "
                                      f"{r.size} values (the size of r)")
        out[:] = _real_values(np.ravel(z), out, f"precond: {what}",
                              "return a real array (or make A or b complex)")
        return out
    return M


def _user_callback(callback):
    """``callback(iteration, x, resnorm) -> bool`` (True: stop) around the user's, whose
    exception becomes :class:`~jitsolve.errors.UserFunctionError` with it chained
    (jitsolve's own errors pass through unchanged)."""
    def cb(it, x, rnorm):
        return bool(call_user("callback: the callback", callback, it, x, rnorm,
                              where=f" at iteration {it}"))
    return cb


def setup_preconditioner(pc, A, dtype, matvec):
    """Turn ``alg.precond`` into ``(r, out) -> out`` (or None)."""
    from scipy.sparse.linalg import LinearOperator
    if pc is None:
        return None
    if isinstance(pc, _CachedPreconditioner):
        return pc.setup(A, dtype, matvec)
    if isinstance(pc, LinearOperator):
        if tuple(pc.shape) != tuple(A.shape):
            raise InvalidProblemError(f"precond: the LinearOperator has shape {pc.shape}, "
                                      f"expected {tuple(A.shape)} (that of A)")
        return _user_preconditioner(pc.matvec, "its matvec")
    if callable(pc):
        return _user_preconditioner(pc, "the callable")
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

    References
    ----------
    Hestenes & Stiefel, J. Res. NBS 49 (1952); Saad (2003), Alg. 6.18 and 9.1.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((64, 64))
    >>> prob = js.LinearProblem(-js.Laplacian(g), np.ones(g.shape))
    >>> sol = js.solve(prob, js.CG(js.Multigrid()), rtol=1e-8)
    >>> sol.retcode, sol.iters <= 10, bool(sol.resnorm <= 1e-8 * 64)
    (<ReturnCode.Success: 'Success'>, True, True)

    Cost
    ----
    Per iteration: one matvec and one preconditioner application; unpreconditioned 13
    vector passes (BLAS-1): ``p^H A p`` (2 reads), the fused ``x += a p, r -= a Ap,
    r^H r`` (4 reads, 2 writes), ``p = z + b p`` (2 reads, 1 write) and the matvec's read
    and write.  A preconditioner adds the ``r^H z`` dot (2 reads) and its own passes.
    Every 50 iterations, and when the recursive residual meets the tolerance, the true
    residual ``b - A x`` costs one more matvec and a norm.  Memory: ``x``, ``r``, ``p``,
    ``Ap`` (plus ``z`` with a preconditioner), besides ``b``.
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

    References
    ----------
    Notay, "Flexible conjugate gradients", SIAM J. Sci. Comput. 22 (2000).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((32, 32))
    >>> prob = js.LinearProblem(-js.Laplacian(g), np.ones(g.shape))
    >>> sol = js.solve(prob, js.FlexibleCG(js.Multigrid(), truncate=1))
    >>> sol.retcode, sol.iters
    (<ReturnCode.Success: 'Success'>, 8)

    Cost
    ----
    Per iteration: one matvec and one preconditioner application (a copy ``z = r``
    without one); the direction ``p = z`` (1 pass) orthogonalised against the
    ``truncate`` stored directions (one dot and one axpy each), ``p^H A p`` and
    ``p^H r`` (two dots) and the fused ``x, r, r^H r`` update of CG.  With
    ``truncate=1`` that is about 17 vector passes besides the matvec and the
    preconditioner.  True residual as CG (every 50 iterations and at convergence).
    Memory: ``x``, ``r``, ``z``, a temporary and ``2 (truncate + 1)`` vectors for the
    stored ``p`` and ``A p``.
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
    iterate.

    References
    ----------
    van der Vorst, SIAM J. Sci. Stat. Comput. 13 (1992); Saad (2003), Alg. 7.7.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((32, 32))
    >>> A = -js.Laplacian(g) + js.Advection(g, velocity=(20.0, 0.0))   # nonsymmetric
    >>> sol = js.solve(js.LinearProblem(A, np.ones(g.shape)), js.BiCGSTAB())
    >>> sol.retcode, sol.iters < 100
    (<ReturnCode.Success: 'Success'>, True)

    Cost
    ----
    Per iteration: two matvecs, two preconditioner applications (two copies without
    one), four inner products (``<r0, r>``, ``<r0, v>``, ``<t, t>``, ``<t, s>``), two
    norms and six axpy-type updates (each a separate BLAS-1 pass, not fused): about 30
    vector passes besides the matvecs.  Convergence is checked on the true residual
    (one more matvec) when the recursive one meets the tolerance and every 50
    iterations.  Memory: ``x``, ``r``, ``r0``, ``p``, ``v``, ``p_hat``, ``s_hat``,
    ``t`` and a temporary: 9 vectors besides ``b``.
    """

    reference = "van der Vorst (1992); Saad (2003), Alg. 7.7"


class GMRES(_Krylov):
    """Restarted GMRES(``restart``), right-preconditioned, for general systems.

    Arnoldi with classical Gram-Schmidt applied twice and Givens rotations; the true
    residual is recomputed at every restart.  ``callback`` gets ``x = None`` (the
    iterate is formed only at restarts).

    References
    ----------
    Saad & Schultz, SIAM J. Sci. Stat. Comput. 7 (1986); Saad (2003), Alg. 6.9, 9.5.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((32, 32))
    >>> A = -js.Laplacian(g) + js.Advection(g, velocity=(20.0, 0.0))   # nonsymmetric
    >>> sol = js.solve(js.LinearProblem(A, np.ones(g.shape)), js.GMRES(precond=js.AMG()))
    >>> sol.retcode, sol.iters <= 10
    (<ReturnCode.Success: 'Success'>, True)

    Cost
    ----
    Per iteration ``j`` (1-based within a cycle): one matvec and one preconditioner
    application, then classical Gram-Schmidt twice: four products with the ``j``
    basis vectors (``V^H w`` and ``w -= V h``, twice; BLAS-2, about ``4 j`` vector
    passes), a norm and a scaling.  A cycle of ``m = restart`` iterations costs about
    ``2 m^2`` vector passes of orthogonalisation; at every restart one more
    preconditioner application and matvec form ``x`` and the true residual.  Memory:
    ``restart + 1`` basis vectors plus ``x``, ``r`` and three work vectors.
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

    Succeeds, like the Krylov solvers, when the true residual meets
    ``max(rtol ||b||, atol)``; otherwise (a singular or inconsistent system, or ``rtol``
    below what LU reaches in the dtype) ``Failure`` with the computed ``u``.
    ``sol.iters`` is 1; ``sol.resnorm`` is the true residual.

    References
    ----------
    Demmel et al., "A supernodal approach to sparse partial pivoting", SIAM J. Matrix
    Anal. Appl. 20 (1999) (SuperLU).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> sol = js.solve(js.LinearProblem(np.array([[2.0, 1.0], [1.0, 3.0]]),
    ...                                 np.array([3.0, 5.0])), js.Direct())
    >>> sol.retcode, np.round(sol.u, 12)
    (<ReturnCode.Success: 'Success'>, array([0.8, 1.4]))

    Cost
    ----
    Per solve: one factorisation and one pair of triangular solves, not iterations.
    Sparse (SuperLU with COLAMD ordering, after a CSR -> CSC copy; grid operators are
    first assembled to CSR from their face tables): about ``O(n^1.5)`` time and
    ``O(n log n)`` memory for 2D grids, much more fill-in for 3D grids; dense (LAPACK
    ``getrf``): ``2 n^3 / 3`` flops and an ``n x n`` copy.  Then one sparse (or dense)
    matvec and two norms for the true residual.  Nothing is reused between solves; use
    a Krylov method with multigrid for large grids.
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


def constants_in_null_spaces(A):
    """Whether the grid operator ``A`` maps the constants to zero, and so does ``A^T``
    (a Laplacian or Diffusion with no Dirichlet side: pure Neumann or periodic
    problems, singular with the constants as both null spaces)."""
    from .grid.boundary import Dirichlet
    if not isinstance(A, GridOperator):
        return False
    if any(isinstance(side, Dirichlet) for pair in A.grid.bcs for side in pair):
        return False                            # a Dirichlet side: no constant null space
    one = np.ones(A.grid.shape)
    scale = np.abs(A.diagonal()).max() * one.size ** 0.5
    if not scale > 0:
        return False
    tol = 1e-12 * scale
    return (np.linalg.norm(A.apply(one)) <= tol
            and np.linalg.norm(A.T.apply(one)) <= tol)


def _check_consistent(A, b, rtol, atol):
    """Refuse ``b`` when ``A`` is singular with the constants as the null space of
    ``A^T`` (pure Neumann or periodic grids) and ``b``'s component along them is above
    the tolerance: ``1^T (b - A x) = 1^T b`` for every ``x``, so no solve can reach it
    (GMRES(30) crept toward it for 10 n iterations, CG diverged)."""
    if not constants_in_null_spaces(A):
        return
    bnorm = float(np.linalg.norm(b))
    tol = max(rtol * bnorm, float(atol))
    c = abs(complex(np.sum(b))) / math.sqrt(b.size)       # ||projection onto constants||
    if c > tol:
        raise InvalidProblemError(
            f"b: not in the range of A: the grid has no Dirichlet side, so A is singular "
            f"(constants are its null space) and b - A x keeps b's constant component, of "
            f"norm {c:.3e}, for every x, above the tolerance {tol:.3e}; make b sum to zero "
            f"(b - b.mean(), the compatibility condition of a pure Neumann or periodic "
            f"problem) or put a Dirichlet condition on a side")


def _finish(prob, alg, res):
    x, resnorm, h = res.x, res.resnorm, res.history
    if (res.status in ("ConvergenceFailure", "Breakdown") and h is not None and len(h)
            and math.isfinite(h[0]) and not resnorm <= h[0]):
        # a broken or stalled solve is never worse than its starting guess (CG on a
        # nonsymmetric or an inconsistent singular system diverges: residuals 1e4-1e9
        # times ||b||); MaxIters keeps its last iterate (CG's residual is not monotone:
        # an iterate of larger residual can be closer in the energy norm)
        x = (np.zeros(prob.b.size, dtype=x.dtype) if prob.x0 is None
             else np.asarray(prob.x0, dtype=x.dtype).ravel().copy())
        resnorm = float(h[0])
    return LinearSolution(x.reshape(prob.b.shape), ReturnCode(res.status), res.iters,
                          resnorm, h, alg=repr(alg))


def _krylov(fn, prob, alg, rtol, atol, maxiter, callback, progress, **extra):
    A, dtype, b, x0, matvec = _prepare(prob, alg, atol)
    _check_consistent(A, b, rtol, atol)
    M = setup_preconditioner(alg.precond, A, dtype, matvec)
    if callback is not None:
        callback = _user_callback(callback)
    res = fn(matvec, b, x0, precond=M, rtol=rtol, atol=float(atol), maxiter=maxiter,
             callback=callback, progress=progress, **extra)
    h0 = res.history[0] if len(res.history) else np.nan
    if res.status == "Breakdown" and res.iters == 0 and not 1e-150 < h0 < 1e150:
        res = _rescaled(fn, matvec, b, x0, M, rtol, float(atol), maxiter, callback,
                        progress, extra)
    return _finish(prob, alg, res)


def _rescaled(fn, matvec, b, x0, M, rtol, atol, maxiter, callback, progress, extra):
    """The solve of ``A x = b`` as ``A (x / s) = b / s``, ``s = max |b|``: a residual norm
    below 1e-150 or above 1e150 under- or overflows in the squared norms of CG and
    BiCGSTAB (``r^T z``), which then report Breakdown at once; the problem itself is
    linear, so the scaled one has the same iterates over ``s``."""
    from .solvers.linear.common import KrylovResult
    sc = float(np.abs(b).max()) if b.size else 0.0      # no squares: no under/overflow
    if not (np.isfinite(sc) and sc > 0):
        return fn(matvec, b, x0, precond=M, rtol=rtol, atol=atol, maxiter=maxiter,
                  callback=callback, progress=progress, **extra)
    cb = None if callback is None else (lambda it, x, r: callback(it, x * sc, r * sc))
    res = fn(matvec, b / sc, None if x0 is None else x0 / sc, precond=M, rtol=rtol,
             atol=atol / sc, maxiter=maxiter, callback=cb, progress=progress, **extra)
    return KrylovResult(res.x * sc, res.status, res.iters, res.resnorm * sc,
                        np.asarray(res.history) * sc)


@register(LinearProblem, CG)
def _solve_cg(prob, alg, rtol, atol, maxiter, callback, backend, progress):
    from .solvers.linear import cg
    # fused stencil + CG kernels for Laplacian/Diffusion operators (any preconditioner)
    grid = operator_stencil(prob.A, work_dtype(prob.A, prob.b))
    return _krylov(cg, prob, alg, rtol, atol, maxiter, callback, progress, grid=grid)


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
    _check_consistent(prob.A, b, rtol, atol)
    return _finish(prob, alg, direct_solve(A, b, rtol=rtol, atol=float(atol)))
