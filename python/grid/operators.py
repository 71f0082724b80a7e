"""Linear grid operators: the common interface, the algebra, and the face tables.

A grid operator ``A`` maps arrays of the grid's shape to arrays of the same shape.
It is linear; boundary data enter through :meth:`GridOperator.boundary_term`, so that
``A.apply(u) + A.boundary_term()`` is the full affine discretisation.

Matrix-free products go to the Numba kernels of ``jitsolve.kernels.<backend>``; the
face tables here (plain NumPy, built only on request) give the same operator as a
sparse matrix, its diagonal and its boundary term.  The two paths are written
independently, so ``to_csr`` checks ``apply`` in the tests and vice versa.
"""
import importlib
import numbers

import numpy as np

from ..errors import InvalidProblemError
from ..validate import as_state_array
from .boundary import Dirichlet, Periodic
from .mesh import Grid

__all__ = ["GridOperator", "ScaledOperator", "SumOperator", "TransposedOperator",
           "shifted_parts"]

_APPLY_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def kernel_module(backend="cpu", name="stencil"):
    """The kernel module ``jitsolve.kernels.<backend>.<name>`` (imported on first use)."""
    return importlib.import_module(f"jitsolve.kernels.{backend}.{name}")


def shifted_parts(op):
    """``(shift, scale, leaf)`` with ``op == shift * I + scale * leaf``, for ``op`` a sum of
    scaled identities (:class:`~jitsolve.Identity`) and one other scaled leaf operator;
    None for any other operator."""
    terms = []

    def walk(o, c):
        if isinstance(o, ScaledOperator):
            walk(o.op, c * o.c)
        elif isinstance(o, SumOperator):
            walk(o.a, c)
            walk(o.b, c)
        else:
            terms.append((c, o))

    walk(op, 1.0)
    rest = [(c, o) for c, o in terms if not o.is_identity]
    if len(rest) != 1:
        return None
    return sum(c for c, o in terms if o.is_identity), rest[0][0], rest[0][1]


class GridOperator:
    """Base class of linear operators on a :class:`jitsolve.Grid`.

    Subclasses implement ``_apply3(u3, out3)`` on three-dimensional views and
    ``_face_coeffs(axis, side, nb, self_mask)`` for the face tables.  Operators compose:
    ``-A``, ``c * A``, ``A + B`` and ``A - B`` are grid operators with the same methods
    (``apply``, ``T``, ``diagonal``, ``to_csr``, ``boundary_term``, ``param_vjp``).

    References
    ----------
    LeVeque, *Finite Difference Methods for ODEs and PDEs* (2007), ch. 2-3 (the
    discretisations and their boundary treatment); the matrix-free operator interface
    follows SciPy's ``LinearOperator``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((16, 16))
    >>> L = js.Laplacian(g)
    >>> A = 2.0 * L - L
    >>> isinstance(A, js.GridOperator), A.shape
    (True, (256, 256))
    >>> u = np.random.default_rng(0).random(g.shape)
    >>> bool(np.allclose(A.apply(u), L.apply(u))), bool(np.allclose(A.to_csr() @ u.ravel(),
    ...                                                            L.apply(u).ravel()))
    (True, True)

    Cost
    ----
    Per apply of a leaf (``Laplacian``, ``Diffusion``, ``Advection``): one kernel pass,
    see the leaf.  ``c * A`` adds one in-place scaling pass (read and write); ``A + B``
    applies both, allocates one temporary and adds one pass (``out += B u``).  Inside
    ``solve`` a scaled ``Laplacian`` or ``Diffusion`` is applied by one kernel pass
    with the scale folded in.  ``to_csr``, ``diagonal`` and ``boundary_term`` are
    assembled in NumPy from the face tables, on request only.
    """

    #: name of the coefficient field differentiated by ``param_vjp`` (None: no field)
    param_name = None
    #: True for :class:`~jitsolve.Identity` (the shift of ``sigma * I + c * A``)
    is_identity = False
    #: True when the matrix is symmetric, so ``A.T is A``
    symmetric = False
    backend = "cpu"

    def __init__(self, grid):
        if not isinstance(grid, Grid):
            raise InvalidProblemError(f"grid: expected a js.Grid, got {type(grid).__name__}")
        self.grid = grid

    # ---------------------------------------------------------------- shape & checks
    @property
    def shape(self):
        """``(N, N)`` with ``N = grid.size``, as for a matrix."""
        return (self.grid.size, self.grid.size)

    @property
    def dtype(self):
        return np.dtype(np.float64)

    def _view3(self, a):
        return a.reshape((1,) * (3 - self.grid.ndim) + self.grid.shape)

    def _check_in(self, u, name="u"):
        if not isinstance(u, np.ndarray) or u.dtype.type not in _APPLY_DTYPES or not u.flags.c_contiguous:
            u = as_state_array(u, name, dtypes=_APPLY_DTYPES, copy=False, finite=False)
        if u.shape != self.grid.shape and u.shape != (self.grid.size,):
            raise InvalidProblemError(
                f"{name}: expected an array of the grid's shape {self.grid.shape} or flat "
                f"({self.grid.size},), got {u.shape}")
        return u

    def _check_out(self, out, u, dtype=None, also=()):
        """``out`` checked (or allocated) for a result of ``u``'s shape; it must not share
        memory with ``u`` nor with the other inputs ``also`` (the kernels read those
        while they write ``out``)."""
        dtype = u.dtype if dtype is None else dtype
        if out is None:
            return np.empty(u.shape, dtype=dtype)
        if not isinstance(out, np.ndarray):
            raise InvalidProblemError(f"out: expected a NumPy array, got {type(out).__name__}")
        if out.size != self.grid.size or out.shape not in (self.grid.shape, (self.grid.size,)):
            raise InvalidProblemError(f"out: expected shape {self.grid.shape} or ({self.grid.size},), "
                                      f"got {out.shape}")
        if out.dtype != dtype:
            raise InvalidProblemError(f"out: expected dtype {np.dtype(dtype)}, got {out.dtype}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise InvalidProblemError("out: must be a writeable C-contiguous array")
        if any(np.shares_memory(out, a) for a in (u,) + tuple(also)):
            raise InvalidProblemError("out: must not overlap the input (the stencil reads neighbours)")
        return out

    # ---------------------------------------------------------------- public interface
    def apply(self, u, out=None):
        """Return ``A u`` (into ``out`` when given), with ``u`` of the grid's shape or flat.

        ``u`` keeps a float32, float64, complex64 or complex128 dtype (integers become
        float64); ``out`` must be a writeable C-contiguous array of that dtype, of the
        grid's shape or flat, that shares no memory with ``u`` (the stencil reads the
        neighbours of a cell after writing it).
        """
        u = self._check_in(u)
        out = self._check_out(out, u)
        self._apply3(self._view3(u), self._view3(out))
        return out

    def __matmul__(self, u):
        return self.apply(u)

    def __call__(self, u, out=None):
        return self.apply(u, out)

    @property
    def T(self):
        """The exact transpose, applied matrix-free by its own kernel."""
        if self.symmetric:
            return self
        return TransposedOperator(self)

    def param_vjp(self, u, lam, out=None):
        """``(d (A(k) u + b(k)) / d k)^T lam`` for the operator's coefficient field ``k``
        (into ``out`` when given).

        The derivative includes the boundary term ``b(k)`` (so it is the derivative of
        the affine operator; for homogeneous boundaries that is ``d(A(k) u)/dk^T lam``).
        """
        raise InvalidProblemError(
            f"param_vjp: {type(self).__name__} has no coefficient field to differentiate")

    def param_vjps(self, u, lam):
        """List of ``(operator, vjp)`` for every term with a coefficient field."""
        if self.param_name is None:
            return []
        return [(self, self.param_vjp(u, lam))]

    def diagonal(self):
        """Diagonal of the matrix, shape ``grid.shape``."""
        d = np.zeros(self.grid.size)
        for axis, side, nb, s, ghost in _faces(self.grid, self._dirichlet_sign(), full=True):
            w, cself = self._face_coeffs(axis, side, nb, ghost)
            d += cself.ravel() + np.where(nb.ravel() == np.arange(self.grid.size), (w * s).ravel(), 0.0)
        return d.reshape(self.grid.shape)

    def to_csr(self):
        """The operator as a ``scipy.sparse.csr_matrix`` (assembled from the face tables)."""
        import scipy.sparse as sp
        n = self.grid.size
        rows, cols, vals = [], [], []
        idx = np.arange(n)
        for axis, side, nb, s, ghost in _faces(self.grid, self._dirichlet_sign(), full=True):
            w, cself = self._face_coeffs(axis, side, nb, ghost)
            rows += [idx, idx]
            cols += [nb.ravel(), idx]
            vals += [(w * s).ravel(), cself.ravel()]
        m = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n, n)).tocsr()
        m.sum_duplicates()
        return m

    def as_linear_operator(self):
        """A ``scipy.sparse.linalg.LinearOperator`` (matvec = apply, rmatvec = T.apply)."""
        from scipy.sparse.linalg import LinearOperator
        T = self.T
        return LinearOperator(self.shape, matvec=lambda x: self.apply(np.ravel(x)),
                              rmatvec=lambda x: T.apply(np.ravel(x)), dtype=np.float64)

    def boundary_term(self):
        """The vector ``b`` carrying non-zero boundary data: ``A u + b`` is the affine operator."""
        b = np.zeros(self.grid.shape)
        for axis, side, cond, sl in _boundary_faces(self.grid):
            ghost = self._ghost_constant(cond, axis, side)
            if ghost is None:
                continue
            w, _ = self._boundary_coeffs(axis, side, sl)
            b[sl] += w * ghost
        return b

    # ---------------------------------------------------------------- algebra
    def __neg__(self):
        return ScaledOperator(-1.0, self)

    def __mul__(self, c):
        if isinstance(c, bool) or not isinstance(c, (numbers.Real, np.floating, np.integer)):
            return NotImplemented
        if not np.isfinite(c):
            raise InvalidProblemError(f"c: the scale of an operator must be finite, got {c}")
        return ScaledOperator(float(c), self)

    __rmul__ = __mul__

    def __add__(self, other):
        if not isinstance(other, GridOperator):
            return NotImplemented
        return SumOperator(self, other)

    def __sub__(self, other):
        if not isinstance(other, GridOperator):
            return NotImplemented
        return SumOperator(self, ScaledOperator(-1.0, other))

    # ---------------------------------------------------------------- helpers for leaves
    def _dirichlet_sign(self):
        """Ghost sign of the linear part at a Dirichlet face (``u_ghost = 2 g - u_i``)."""
        return -1.0

    def _ghost_constant(self, cond, axis, side):
        """Constant part of the ghost value on one boundary side, or None (none/periodic)."""
        if isinstance(cond, Periodic):
            return None
        vals = cond.face_values(self.grid.shape, axis, side)
        if not vals.any():
            return None
        vals = np.expand_dims(vals, axis)
        if isinstance(cond, Dirichlet):
            return self._dirichlet_factor() * vals
        return self.grid.spacing[axis] * vals  # Neumann: u_ghost = u_i + h q

    def _dirichlet_factor(self):
        return 2.0

    def _kernel_bc(self, dirichlet_sign=None):
        """Padded (c-less) boundary arrays ``per[3]`` and ``sgn[3, 2]`` for the kernels."""
        ds = self._dirichlet_sign() if dirichlet_sign is None else dirichlet_sign
        off = 3 - self.grid.ndim
        per = np.zeros(3, dtype=np.int64)
        sgn = np.ones((3, 2))
        for a, (lo, hi) in enumerate(self.grid.bcs):
            per[off + a] = isinstance(lo, Periodic)
            for side, cond in ((0, lo), (1, hi)):
                sgn[off + a, side] = ds if isinstance(cond, Dirichlet) else 1.0
        return per, sgn

    def _padded_scale(self, power):
        off = 3 - self.grid.ndim
        c = np.zeros(3)
        for a, h in enumerate(self.grid.spacing):
            c[off + a] = 1.0 / h ** power
        return c

    def __repr__(self):
        return f"{type(self).__name__}({self.grid!r})"


# ------------------------------------------------------------------- face tables
def _faces(grid, dirichlet_sign, full=True):
    """Yield ``(axis, side, nb, s, ghost)`` for every cell face of every axis and side.

    ``nb`` is the flat index of the neighbour across the face (the cell itself at a
    non-periodic boundary), ``s`` the ghost sign there (1 elsewhere) and ``ghost`` a
    boolean mask of boundary ghost faces; all arrays have the grid's shape.
    """
    idx = np.arange(grid.size).reshape(grid.shape)
    for axis, (lo, hi) in enumerate(grid.bcs):
        for side, cond in ((0, lo), (1, hi)):
            nb = np.roll(idx, 1 if side == 0 else -1, axis=axis)
            s = np.ones(grid.shape)
            ghost = np.zeros(grid.shape, dtype=bool)
            if not isinstance(cond, Periodic):
                edge = [slice(None)] * grid.ndim
                edge[axis] = 0 if side == 0 else grid.shape[axis] - 1
                edge = tuple(edge)
                nb[edge] = idx[edge]
                s[edge] = dirichlet_sign if isinstance(cond, Dirichlet) else 1.0
                ghost[edge] = True
            yield axis, side, nb, s, ghost


def _boundary_faces(grid):
    """Yield ``(axis, side, condition, slice)`` for the non-periodic boundary sides."""
    for axis, (lo, hi) in enumerate(grid.bcs):
        for side, cond in ((0, lo), (1, hi)):
            if isinstance(cond, Periodic):
                continue
            sl = [slice(None)] * grid.ndim
            sl[axis] = slice(0, 1) if side == 0 else slice(grid.shape[axis] - 1, grid.shape[axis])
            yield axis, side, cond, tuple(sl)


# ------------------------------------------------------------------- algebra
def _n_fields(op):
    """How many terms of ``op`` (through sums and scales) have a coefficient field."""
    if isinstance(op, ScaledOperator):
        return _n_fields(op.op)
    if isinstance(op, SumOperator):
        return _n_fields(op.a) + _n_fields(op.b)
    return 0 if op.param_name is None else 1


class ScaledOperator(GridOperator):
    """``c * A``."""

    def __init__(self, c, op):
        super().__init__(op.grid)
        self.c = float(c)
        self.op = op
        self.symmetric = op.symmetric
        self.param_name = op.param_name

    def apply(self, u, out=None):
        out = self.op.apply(u, out)
        out *= self.c
        return out

    @property
    def T(self):
        return self if self.symmetric else ScaledOperator(self.c, self.op.T)

    def param_vjp(self, u, lam, out=None):
        g = self.op.param_vjp(u, lam, out)
        g *= self.c
        return g

    def param_vjps(self, u, lam):
        return [(o, self.c * g) for o, g in self.op.param_vjps(u, lam)]

    def diagonal(self):
        return self.c * self.op.diagonal()

    def to_csr(self):
        return (self.c * self.op.to_csr()).tocsr()

    def boundary_term(self):
        return self.c * self.op.boundary_term()

    def __repr__(self):
        return f"{self.c!r} * {self.op!r}"


class SumOperator(GridOperator):
    """``A + B`` for two operators on the same grid."""

    def __init__(self, a, b):
        if not a.grid.same_as(b.grid):
            raise InvalidProblemError(
                f"operators: cannot add operators on different grids ({a.grid!r} and {b.grid!r})")
        super().__init__(a.grid)
        self.a, self.b = a, b
        self.symmetric = a.symmetric and b.symmetric
        names = {n for n in (a.param_name, b.param_name) if n is not None}
        self.param_name = names.pop() if len(names) == 1 else (None if not names else "mixed")
        self._shifted = shifted_parts(self)

    def apply(self, u, out=None):
        u = self._check_in(u)
        sh = self._shifted
        if sh is not None and sh[0] != 0.0:
            # shift * u + scale * (leaf u): the leaf's pass, then one fused pass
            shift, scale, leaf = sh
            out = leaf.apply(u, out)
            blas = kernel_module(self.backend, "blas")
            blas.xpay(u.reshape(-1), scale / shift, out.reshape(-1))
            if shift != 1.0:
                out *= shift
            return out
        out = self.a.apply(u, out)
        out += self.b.apply(u).reshape(out.shape)    # ``out`` may be flat, ``u`` shaped
        return out

    @property
    def T(self):
        return self if self.symmetric else SumOperator(self.a.T, self.b.T)

    def param_vjps(self, u, lam):
        return self.a.param_vjps(u, lam) + self.b.param_vjps(u, lam)

    def param_vjp(self, u, lam, out=None):
        na, nb = _n_fields(self.a), _n_fields(self.b)
        if na + nb != 1:
            raise InvalidProblemError(
                f"param_vjp: this sum has {na + nb} terms with coefficient fields; "
                f"use param_vjps(u, lam) to get one gradient per term")
        return (self.a if na else self.b).param_vjp(u, lam, out)

    def diagonal(self):
        return self.a.diagonal() + self.b.diagonal()

    def to_csr(self):
        return (self.a.to_csr() + self.b.to_csr()).tocsr()

    def boundary_term(self):
        return self.a.boundary_term() + self.b.boundary_term()

    def __repr__(self):
        return f"({self.a!r} + {self.b!r})"


class TransposedOperator(GridOperator):
    """``A^T`` of a non-symmetric leaf operator, applied by the leaf's transpose kernel."""

    def __init__(self, op):
        super().__init__(op.grid)
        self.op = op

    def apply(self, u, out=None):
        u = self._check_in(u)
        out = self._check_out(out, u)
        self.op._apply_transpose3(self._view3(u), self._view3(out))
        return out

    @property
    def T(self):
        return self.op

    def diagonal(self):
        return self.op.diagonal()

    def to_csr(self):
        return self.op.to_csr().T.tocsr()

    def boundary_term(self):
        raise InvalidProblemError("boundary_term: a transposed operator has no boundary term")

    def param_vjp(self, u, lam, out=None):
        raise InvalidProblemError(
            f"param_vjp: the transpose of {type(self.op).__name__} is not differentiated "
            f"with respect to a coefficient field; (d (A^T u)/dp)^T lam is the linear part "
            f"of A.param_vjp(lam, u) (u and lam swapped)")

    def __repr__(self):
        return f"{self.op!r}.T"
