"""Bad grids, boundary conditions, coefficients and operator inputs raise InvalidProblemError
naming the argument."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError


@pytest.mark.parametrize("kwargs,name", [
    (dict(shape=()), "shape"),
    (dict(shape=(4, 4, 4, 4)), "shape"),
    (dict(shape=(4, 0)), "shape"),
    (dict(shape=(4, 2.5)), "shape"),
    (dict(shape="abc"), "shape"),
    (dict(shape=(4, 4), extent=((0, 1),)), "extent"),
    (dict(shape=(4, 4), extent=((0, 1), (1, 1))), "extent[1]"),
    (dict(shape=(4, 4), extent=((0, 1), (2, 1))), "extent[1]"),
    (dict(shape=(4,), extent=((0, np.inf),)), "extent[0]"),
    (dict(shape=(4,), extent=(("a", 1),)), "extent[0]"),
    (dict(shape=(4, 4), bc="robin"), "bc[0]"),
    (dict(shape=(4, 4), bc=42), "bc[0]"),
    (dict(shape=(4, 4), bc=[js.Dirichlet()]), "bc"),
    (dict(shape=(4, 4), bc=[(js.Periodic(), js.Dirichlet()), js.Neumann()]), "bc[0]"),
    (dict(shape=(4, 4), bc=js.Dirichlet(np.zeros((4, 4)))), "bc"),
])
def test_bad_grid(kwargs, name):
    with pytest.raises(InvalidProblemError) as err:
        js.Grid(**kwargs)
    assert str(err.value).startswith(name), str(err.value)


@pytest.mark.parametrize("make,name", [
    (lambda: js.Dirichlet(np.nan), "Dirichlet(value)"),
    (lambda: js.Dirichlet("x"), "Dirichlet(value)"),
    (lambda: js.Neumann(np.inf), "Neumann(flux)"),
    (lambda: js.Dirichlet(np.array([1.0, np.nan])), "Dirichlet(value)"),
])
def test_bad_boundary_values(make, name):
    with pytest.raises(InvalidProblemError, match=f"^{name.replace('(', '[(]').replace(')', '[)]')}"):
        make()


def test_string_boundary_conditions():
    g = js.Grid((4, 4), bc="periodic")
    assert g.periodic == (True, True)
    g = js.Grid((4,), bc=js.Neumann)
    assert isinstance(g.bcs[0][0], js.Neumann)


@pytest.mark.parametrize("kappa,msg", [
    (0.0, "> 0"), (-1.0, "> 0"), (np.full((4, 4), np.nan), "NaN"), (np.ones((3, 4)), "shape"),
    (np.ones((4, 4), dtype=bool), "dtype"), (np.where(np.eye(4) > 0, -1.0, 1.0), "> 0"),
])
def test_bad_kappa(kappa, msg):
    g = js.Grid((4, 4))
    with pytest.raises(InvalidProblemError, match=f"^kappa:.*{msg}"):
        js.Diffusion(g, kappa)


def test_bad_velocity_and_scheme():
    g = js.Grid((4, 4))
    with pytest.raises(InvalidProblemError, match="^velocity:"):
        js.Advection(g, (1.0,))
    with pytest.raises(InvalidProblemError, match="^velocity:"):
        js.Advection(g, (1.0, np.nan))
    with pytest.raises(InvalidProblemError, match="^scheme:"):
        js.Advection(g, (1.0, 1.0), scheme="weno")


def test_bad_apply_inputs():
    g = js.Grid((4, 4))
    L = js.Laplacian(g)
    with pytest.raises(InvalidProblemError, match="^u:.*shape"):
        L.apply(np.ones((4, 5)))
    with pytest.raises(InvalidProblemError, match="^u:.*dtype"):
        L.apply(np.ones((4, 4), dtype=bool))
    with pytest.raises(InvalidProblemError, match="^u:"):
        L.apply(np.array([["a"] * 4] * 4))
    with pytest.raises(InvalidProblemError, match="^out:.*shape"):
        L.apply(np.ones((4, 4)), out=np.empty((3, 3)))
    with pytest.raises(InvalidProblemError, match="^out:.*dtype"):
        L.apply(np.ones((4, 4)), out=np.empty((4, 4), dtype=np.float32))
    u = np.ones((4, 4))
    with pytest.raises(InvalidProblemError, match="^out:.*overlap"):
        L.apply(u, out=u)
    with pytest.raises(InvalidProblemError, match="^grid:"):
        js.Laplacian((4, 4))
    with pytest.raises(InvalidProblemError, match="^operators:"):
        js.Laplacian(g) + js.Laplacian(js.Grid((4, 5)))
    with pytest.raises(InvalidProblemError, match="^c:"):
        np.inf * L
    D = js.Diffusion(g, 1.0)
    with pytest.raises(InvalidProblemError, match="^lam:"):
        D.param_vjp(np.ones((4, 4)), np.ones(16))
    with pytest.raises(InvalidProblemError, match="^u, lam:"):
        D.param_vjp(np.ones((4, 4), complex), np.ones((4, 4)))


def test_integer_input_is_promoted():
    g = js.Grid((4, 4), bc=js.Neumann())
    out = js.Laplacian(g).apply(np.ones((4, 4), dtype=np.int64))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, 0.0, atol=1e-12)


@pytest.mark.parametrize("extent", [((-1e308, 1e308),), ((0.0, 1e-320),), ((0.0, 1e160),)])
def test_extent_whose_spacing_the_stencils_cannot_square_is_refused(extent):
    # an infinite or subnormal spacing was accepted: weights 1/h^2 of inf or 0
    with pytest.raises(InvalidProblemError, match=r"^extent: axis 0's cell spacing .* is out "
                                                  r"of range"):
        js.Grid((4,), extent=extent)
    assert js.Grid((4, 4), extent=((0.0, 1e-6), (0.0, 1e6))).spacing == (2.5e-7, 2.5e5)
