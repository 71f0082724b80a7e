"""Composite grid operators take ``u`` and ``out`` flat or grid-shaped in any mix, as
the operators they are built from do (a sum added its second term with NumPy's
broadcasting: ``(n,)`` against the grid's shape raised a raw ``ValueError``); and the
Laplacian docstring's Poisson recipe, ``LinearProblem(-L, f + L.boundary_term())``."""
import numpy as np
import pytest

import jitsolve as js

G = js.Grid((16, 12), bc=js.Dirichlet(0.5))
L = js.Laplacian(G)
A = js.Advection(G, (1.0, 0.3), scheme="central")
D = js.Diffusion(G, np.linspace(1.0, 2.0, G.size).reshape(G.shape))
OPS = {"L+A": L + A, "L-A": L - A, "-A": -A, "2A": 2.0 * A, "2L+3D-A": 2.0 * L + 3.0 * D - A,
       "(L+A).T": (L + A).T, "I-0.1D": js.Identity(G) - 0.1 * D}


@pytest.mark.parametrize("name", list(OPS))
def test_composites_take_flat_and_shaped_arrays(name):
    op = OPS[name]
    u = np.random.default_rng(3).standard_normal(G.shape)
    ref = op.to_csr() @ u.ravel()
    for uu, out in ((u, np.empty(G.size)), (u.ravel(), np.empty(G.shape)),
                    (u, np.empty(G.shape)), (u.ravel(), np.empty(G.size))):
        r = op.apply(uu, out=out)
        assert r is out and r.shape == out.shape
        np.testing.assert_allclose(r.ravel(), ref, rtol=1e-13, atol=1e-10)
    assert op.apply(u).shape == G.shape and op.apply(u.ravel()).shape == (G.size,)


def test_laplacian_docstring_poisson_recipe():
    # -u'' = f on (0, 1), u = 1 at both walls: f = 0 gives u = 1 exactly; f = 2 gives
    # u = 1 + x (1 - x) to O(h^2) (the walls' linear ghost values); the recipe's old
    # sign, f - L.boundary_term(), gave u = -1 for f = 0
    g = js.Grid((16,), bc=js.Dirichlet(1.0))
    lap = js.Laplacian(g)
    x = (np.arange(16) + 0.5) / 16
    sol = js.solve(js.LinearProblem(-lap, np.zeros(16) + lap.boundary_term()), js.Direct())
    np.testing.assert_allclose(sol.u, 1.0, rtol=1e-12)
    sol = js.solve(js.LinearProblem(-lap, np.full(16, 2.0) + lap.boundary_term()), js.Direct())
    assert np.abs(sol.u - (1.0 + x * (1.0 - x))).max() < 0.5 / 16 ** 2
