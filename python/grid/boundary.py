"""Boundary conditions of a cell-centred grid.

Boundaries sit on the faces of the outer cells.  Operators stay linear: boundary data
(a Dirichlet value, a Neumann flux) go to the right-hand side through
``operator.boundary_term()``.

``Dirichlet(value)``
    ``u = value`` on the boundary face.  ``value`` is a number, or an array of the
    grid's shape padded by one cell on every side (``(n0 + 2, n1 + 2, ...)``) whose
    outer frame holds the boundary values (corners are ignored).
``Neumann(flux=0.0)``
    ``du/dn = flux`` with ``n`` the outward normal; ``flux`` a number or a padded array.
``Periodic()``
    the last cell neighbours the first; must be used on both sides of an axis.

References
----------
LeVeque, *Finite Volume Methods for Hyperbolic Problems* (2002), sec. 7.1 (ghost cells).
"""
import numbers

import numpy as np

from ..errors import InvalidProblemError

__all__ = ["BoundaryCondition", "Dirichlet", "Neumann", "Periodic", "as_boundary_condition"]


class BoundaryCondition:
    """Base class of boundary conditions: :class:`Dirichlet`, :class:`Neumann` and
    :class:`Periodic`.  A condition holds a number, or its own float64 copy of an array
    of real boundary values of the grid's shape padded by one ghost cell on every side
    (changing the caller's array afterwards does not change the condition).

    Examples
    --------
    >>> import jitsolve as js
    >>> [isinstance(bc, js.BoundaryCondition)
    ...  for bc in (js.Dirichlet(1.0), js.Neumann(), js.Periodic())]
    [True, True, True]
    >>> js.Dirichlet(0.0).homogeneous, js.Neumann(2.0).homogeneous
    (True, False)
    """

    kind = None

    def _check_value(self, value, name):
        if isinstance(value, (bool, np.bool_)):
            raise InvalidProblemError(f"{name}: expected a number or an array, got {value!r}")
        if isinstance(value, (numbers.Real, np.floating, np.integer)):
            v = float(value)
            if not np.isfinite(v):
                raise InvalidProblemError(f"{name}: must be finite, got {v}")
            return v
        try:
            a = np.asarray(value)
        except (TypeError, ValueError):
            a = None
        if a is None or a.dtype.kind not in "fiu":
            # complex values would lose their imaginary part, booleans and strings are
            # no boundary data
            got = type(value).__name__ if a is None else f"dtype {a.dtype}"
            raise InvalidProblemError(f"{name}: expected a real number or an array of real "
                                      f"boundary values, got {got}")
        if a.ndim == 0:
            return self._check_value(float(a), name)
        if not np.isfinite(a).all():
            raise InvalidProblemError(f"{name}: contains NaN or Inf")
        # the condition's own copy: later changes to the caller's array do not reach it
        return np.array(a, dtype=np.float64, order="C")

    @property
    def homogeneous(self):
        v = getattr(self, "value", 0.0)
        return isinstance(v, float) and v == 0.0

    def face_values(self, grid_shape, axis, side):
        """Boundary data on one side of one axis, shape ``grid_shape`` without ``axis``."""
        v = self.value
        face_shape = tuple(n for i, n in enumerate(grid_shape) if i != axis)
        if isinstance(v, float):
            return np.full(face_shape, v)
        padded = tuple(n + 2 for n in grid_shape)
        if v.shape != padded:
            raise InvalidProblemError(
                f"bc: {type(self).__name__} array of boundary values must have the padded grid "
                f"shape {padded} (one ghost cell on each side), got {v.shape}")
        index = tuple((0 if side == 0 else -1) if i == axis else slice(1, -1)
                      for i in range(len(grid_shape)))
        return np.array(v[index]).reshape(face_shape)   # 0-d in 1-D, as for a number

    def __eq__(self, other):
        if type(self) is not type(other):
            return False
        a, b = getattr(self, "value", None), getattr(other, "value", None)
        return np.array_equal(a, b)

    def __hash__(self):
        return hash(type(self).__name__)


class Dirichlet(BoundaryCondition):
    """Prescribed value ``u = value`` on the boundary.

    Imposed at the cell-centred grid's boundary face through the ghost value
    ``u_ghost = 2 value - u_i`` (upwind advection: the inflow face value itself); the
    non-zero data enter ``A.boundary_term()``, the operator itself stays linear.

    References
    ----------
    LeVeque, *Finite Difference Methods for ODEs and PDEs* (2007), ch. 2;
    Trottenberg, Oosterlee, Schüller, *Multigrid* (2001), sec. 5.7.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> g = js.Grid((4,), bc=js.Dirichlet(1.0))          # h = 1/4
    >>> js.Laplacian(g).boundary_term()                  # 2 * 1 / h^2 at each wall
    array([32.,  0.,  0., 32.])
    """

    kind = "dirichlet"

    def __init__(self, value=0.0):
        self.value = self._check_value(value, "Dirichlet(value)")

    def __repr__(self):
        v = self.value if isinstance(self.value, float) else f"array{self.value.shape}"
        return f"Dirichlet({v})"


class Neumann(BoundaryCondition):
    """Prescribed outward normal derivative ``du/dn = flux`` (default 0: insulated).

    Imposed through the ghost value ``u_ghost = u_i + h flux``; the flux enters
    ``A.boundary_term()``.  A pure-Neumann Laplacian is singular (constants are in its
    null space).

    References
    ----------
    LeVeque, *Finite Difference Methods for ODEs and PDEs* (2007), sec. 2.12
    (Neumann boundary conditions).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> L = js.Laplacian(js.Grid((4,), bc=js.Neumann(1.0)))   # h = 1/4
    >>> L.boundary_term(), L.apply(np.ones(4))                # flux / h; constants: 0
    (array([4., 0., 0., 4.]), array([0., 0., 0., 0.]))
    """

    kind = "neumann"

    def __init__(self, flux=0.0):
        self.value = self._check_value(flux, "Neumann(flux)")

    @property
    def flux(self):
        return self.value

    def __repr__(self):
        v = self.value if isinstance(self.value, float) else f"array{self.value.shape}"
        return f"Neumann({v})"


class Periodic(BoundaryCondition):
    """Periodic wrap-around; carries no boundary data.

    The first and last cells of the axis are neighbours (the operators wrap their
    stencils).

    References
    ----------
    LeVeque, *Finite Volume Methods for Hyperbolic Problems* (2002), ch. 7 (ghost
    cells and periodic boundaries).

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> L = js.Laplacian(js.Grid((4,), bc=js.Periodic()))     # h = 1/4
    >>> L.apply(np.arange(4.0))
    array([ 64.,   0.,   0., -64.])
    >>> L.to_csr()[0].toarray()
    array([[-32.,  16.,   0.,  16.]])
    """

    kind = "periodic"
    value = 0.0

    def __repr__(self):
        return "Periodic()"


_BY_NAME = {"dirichlet": Dirichlet, "neumann": Neumann, "periodic": Periodic}


def as_boundary_condition(bc, name="bc"):
    """Accept a BoundaryCondition instance or one of "dirichlet", "neumann", "periodic"."""
    if isinstance(bc, BoundaryCondition):
        return bc
    if isinstance(bc, type) and issubclass(bc, BoundaryCondition):
        return bc()
    if isinstance(bc, str) and bc.lower() in _BY_NAME:
        return _BY_NAME[bc.lower()]()
    raise InvalidProblemError(
        f"{name}: unknown boundary condition {bc!r}; expected js.Dirichlet(value), "
        f"js.Neumann(flux) or js.Periodic() (or 'dirichlet', 'neumann', 'periodic')")
