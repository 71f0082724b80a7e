"""Uniform cell-centred grids in one, two and three dimensions."""
import numbers

import numpy as np

from ..errors import InvalidProblemError
from .boundary import Dirichlet, Periodic, as_boundary_condition

__all__ = ["Grid"]


class Grid:
    """A uniform cell-centred grid on a box, with its boundary conditions.

    Parameters
    ----------
    shape : tuple of int
        Cells per axis, 1 to 3 axes.
    extent : sequence of (lo, hi), optional
        The box; default the unit box.  Cell ``i`` of axis ``a`` has centre
        ``lo + (i + 1/2) h_a`` with spacing ``h_a = (hi - lo) / n_a``.
    bc : BoundaryCondition or sequence, optional
        One condition for every side (default ``Dirichlet(0.0)``), or one entry per
        axis, each a condition or a ``(low, high)`` pair of conditions.

    Examples
    --------
    >>> import jitsolve as js
    >>> g = js.Grid(shape=(256, 128), extent=((0, 2), (0, 1)), bc=js.Neumann())
    >>> g.spacing
    (0.0078125, 0.0078125)
    >>> g2 = js.Grid((64,), bc=[(js.Dirichlet(1.0), js.Neumann())])
    >>> g2.size, g2.bcs
    (64, ((Dirichlet(1.0), Neumann(0.0)),))

    Notes
    -----
    Cell-centred finite volumes: every boundary condition uses the same cells; grids
    of ``2^k`` cells coarsen by two, others too (:class:`~jitsolve.Multigrid`).

    References
    ----------
    Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 5.7.
    """

    def __init__(self, shape, extent=None, bc=None):
        if isinstance(shape, (numbers.Integral, np.integer)) and not isinstance(shape, bool):
            shape = (shape,)
        try:
            shape = tuple(shape)
        except TypeError:
            raise InvalidProblemError(f"shape: expected a tuple of 1 to 3 positive integers, got {shape!r}") from None
        if not 1 <= len(shape) <= 3:
            raise InvalidProblemError(f"shape: expected 1 to 3 axes, got {len(shape)}")
        for n in shape:
            if isinstance(n, bool) or not isinstance(n, (numbers.Integral, np.integer)) or n < 1:
                raise InvalidProblemError(f"shape: every entry must be a positive integer, got {shape!r}")
        self.shape = tuple(int(n) for n in shape)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.extent = self._check_extent(extent)
        self.spacing = tuple((hi - lo) / n for (lo, hi), n in zip(self.extent, self.shape))
        for a, h in enumerate(self.spacing):
            # the stencils divide by h^2: an infinite or subnormal h gives inf / 0 weights
            if not (np.isfinite(h) and np.finfo(np.float64).tiny <= h * h < np.inf):
                raise InvalidProblemError(
                    f"extent: axis {a}'s cell spacing {h!r} is out of range (the operators "
                    f"divide by h^2); rescale the domain")
        self.bcs = self._check_bc(bc)

    def _check_extent(self, extent):
        if extent is None:
            return tuple((0.0, 1.0) for _ in self.shape)
        try:
            ext = [tuple(e) for e in extent]
        except TypeError:
            raise InvalidProblemError(f"extent: expected one (lo, hi) pair per axis, got {extent!r}") from None
        if len(ext) != self.ndim:
            raise InvalidProblemError(f"extent: expected {self.ndim} (lo, hi) pairs, got {len(ext)}")
        out = []
        for a, e in enumerate(ext):
            if len(e) != 2:
                raise InvalidProblemError(f"extent[{a}]: expected a pair (lo, hi), got {e!r}")
            try:
                lo, hi = float(e[0]), float(e[1])
            except (TypeError, ValueError):
                raise InvalidProblemError(f"extent[{a}]: expected numbers, got {e!r}") from None
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise InvalidProblemError(f"extent[{a}]: must be finite, got {e!r}")
            if hi == lo:
                raise InvalidProblemError(f"extent[{a}]: is empty (lo == hi == {lo})")
            if hi < lo:
                raise InvalidProblemError(f"extent[{a}]: is inverted (hi = {hi} < lo = {lo})")
            out.append((lo, hi))
        return tuple(out)

    def _check_bc(self, bc):
        if bc is None:
            bc = Dirichlet(0.0)
        if isinstance(bc, (list, tuple)):
            if len(bc) != self.ndim:
                hint = (" (one axis with different sides: bc=[(low, high)])"
                        if self.ndim == 1 and len(bc) == 2 else "")
                raise InvalidProblemError(
                    f"bc: a per-axis list needs {self.ndim} entries, got {len(bc)}{hint}")
            per_axis = list(bc)
        else:
            per_axis = [bc] * self.ndim
        pairs = []
        for a, entry in enumerate(per_axis):
            if isinstance(entry, (list, tuple)):
                if len(entry) != 2:
                    raise InvalidProblemError(f"bc[{a}]: expected a condition or a (low, high) pair")
                lo = as_boundary_condition(entry[0], f"bc[{a}][0]")
                hi = as_boundary_condition(entry[1], f"bc[{a}][1]")
            else:
                lo = hi = as_boundary_condition(entry, f"bc[{a}]")
            if isinstance(lo, Periodic) != isinstance(hi, Periodic):
                raise InvalidProblemError(f"bc[{a}]: Periodic() must be used on both sides of an axis")
            for side, cond in ((0, lo), (1, hi)):
                if not isinstance(cond.value, float):
                    cond.face_values(self.shape, a, side)  # checks the padded shape now
            pairs.append((lo, hi))
        return tuple(pairs)

    @property
    def periodic(self):
        """Tuple of booleans, one per axis."""
        return tuple(isinstance(lo, Periodic) for lo, _ in self.bcs)

    def cell_centers(self):
        """Tuple of 1-D arrays of cell-centre coordinates, one per axis."""
        return tuple(lo + (np.arange(n) + 0.5) * h
                     for (lo, _), n, h in zip(self.extent, self.shape, self.spacing))

    def mesh(self):
        """Cell-centre coordinates as arrays of the grid's shape (``indexing="ij"``)."""
        return np.meshgrid(*self.cell_centers(), indexing="ij")

    @property
    def cell_volume(self):
        return float(np.prod(self.spacing))

    def zeros(self, dtype=np.float64):
        return np.zeros(self.shape, dtype=dtype)

    def same_as(self, other):
        """Same shape, extent and boundary conditions."""
        return (isinstance(other, Grid) and self.shape == other.shape
                and self.extent == other.extent and self.bcs == other.bcs)

    def __eq__(self, other):
        return self.same_as(other)

    def __hash__(self):
        return hash((self.shape, self.extent))

    def __repr__(self):
        def one(p):
            return repr(p[0]) if p[0] == p[1] else f"({p[0]!r}, {p[1]!r})"
        bcs = [one(p) for p in self.bcs]
        bc = bcs[0] if len(set(bcs)) == 1 else "[" + ", ".join(bcs) + "]"
        return f"Grid(shape={self.shape}, extent={self.extent}, bc={bc})"
