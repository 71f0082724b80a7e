"""Set-up preconditioners as plain callables (issue 3): ``M = pc.setup(A)`` is
``(r, out=None) -> out``; called with ``r`` alone it returns a new array, so it can be
handed to another solve as a user preconditioner ``r -> z`` -- the multigrid of the
diffusion part preconditioning GMRES and BiCGSTAB on an advection-diffusion operator,
which ``js.Multigrid()`` itself refuses."""
import numpy as np
import pytest

import jitsolve as js


@pytest.mark.parametrize("pc", [js.Jacobi(), js.Chebyshev(4), js.Multigrid(), js.AMG(),
                                js.Multigrid(coarse="galerkin")])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_setup_callable_allocates_its_output(pc, dtype):
    g = js.Grid((32, 24), bc=[js.Dirichlet(), js.Neumann()])
    A = -js.Diffusion(g, np.exp(np.random.default_rng(0).uniform(-1, 1, g.shape)))
    M = pc.setup(A, dtype=dtype)
    rng = np.random.default_rng(1)
    r = rng.standard_normal(g.size).astype(dtype)
    if dtype == np.complex128:
        r += 1j * rng.standard_normal(g.size)
    out = np.empty(g.size, dtype)
    want = M(r.copy(), out).copy()
    got = M(r.copy())
    assert got is not out and got.shape == r.shape and got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    assert np.abs(want).max() > 0


def _advection_diffusion(n=128, speed=20.0):
    g = js.Grid((n, n))
    D = -js.Laplacian(g)
    A = D + js.Advection(g, (np.full(g.shape, speed), np.full(g.shape, 0.5 * speed)),
                         scheme="upwind")
    return g, D, A


def test_multigrid_rejects_a_sum_and_names_the_way_out():
    g, D, A = _advection_diffusion(16)
    with pytest.raises(js.errors.InvalidProblemError, match=r"js\.Multigrid\(\)\.setup\(D\)"):
        js.solve(js.LinearProblem(A, np.ones(g.shape)), js.GMRES(precond=js.Multigrid()))


@pytest.mark.parametrize("alg,most", [(lambda M: js.GMRES(restart=30, precond=M), 40),
                                      (lambda M: js.BiCGSTAB(precond=M), 30)])
def test_diffusion_multigrid_preconditions_advection_diffusion(alg, most):
    """Advection-diffusion at 128^2 (speeds 20 and 10): GMRES(30) without a
    preconditioner needs 397 iterations, BiCGSTAB 215; with one V-cycle of the diffusion
    part 29 and 25."""
    g, D, A = _advection_diffusion()
    b = np.random.default_rng(2).standard_normal(g.shape)
    M = js.Multigrid().setup(D)
    sol = js.solve(js.LinearProblem(A, b), alg(M), rtol=1e-8, maxiter=500)
    assert sol.retcode == js.ReturnCode.Success and sol.iters <= most, sol.iters
    assert np.linalg.norm(b - A.apply(sol.u)) <= 1.01e-8 * np.linalg.norm(b)
    plain = js.solve(js.LinearProblem(A, b), js.GMRES(restart=30), rtol=1e-8, maxiter=most)
    assert plain.retcode == js.ReturnCode.MaxIters
