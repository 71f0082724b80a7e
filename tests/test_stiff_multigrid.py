"""The stiff methods' Newton-Krylov path on grid problems, preconditioned by a multigrid
cycle of the shifted operator ``I - h gamma L`` (issue 4's large stiff problems with
issue 3's multigrid): the same solutions as unpreconditioned GMRES, fewer GMRES
iterations, and the threshold that leaves short steps unpreconditioned."""
import importlib

import numpy as np
import pytest

import jitsolve as js
import jitsolve.ode_stiff as OS

ESDIRK = importlib.import_module("jitsolve.solvers.ode.esdirk")


def _counting(monkeypatch):
    """Count the stage solves, their GMRES iterations and the preconditioned ones."""
    count = dict(solves=0, iters=0, preconditioned=0)
    gmres = ESDIRK.gmres

    def counted(*a, **k):
        res = gmres(*a, **k)
        count["solves"] += 1
        count["iters"] += res.iters
        count["preconditioned"] += k.get("precond") is not None
        return res

    monkeypatch.setattr(ESDIRK, "gmres", counted)
    return count


@pytest.mark.parametrize("alg", [js.KenCarp4, js.Kvaerno5])
@pytest.mark.parametrize("op", ["laplacian", "diffusion"])
def test_preconditioned_stage_solves(alg, op, monkeypatch):
    g = js.Grid((128, 128))                 # h gamma rho ~ 40-300: stiff stage systems
    x, y = g.mesh()
    u0 = np.sin(np.pi * x) * np.sin(np.pi * y) + 0.1 * np.cos(3 * np.pi * x)
    A = (js.Laplacian(g) if op == "laplacian"
         else js.Diffusion(g, np.exp(np.random.default_rng(1).uniform(-1, 1, g.shape))))
    prob = js.ODEProblem(2.0 * A, u0, (0.0, 0.02))
    runs = {}
    for name, thr in (("plain", np.inf), ("multigrid", OS.STIFF_PRECOND)):
        monkeypatch.setattr(OS, "STIFF_PRECOND", thr)
        count = _counting(monkeypatch)
        sol = js.solve(prob, alg(dense_max=100), rtol=1e-6, atol=1e-8, saveat=[0.02])
        assert sol.retcode == js.ReturnCode.Success
        runs[name] = (sol.u[-1], count["iters"], count["preconditioned"])
        monkeypatch.undo()
    (u_plain, it_plain, pre_plain), (u_mg, it_mg, pre_mg) = runs["plain"], runs["multigrid"]
    assert pre_plain == 0 and pre_mg > 0
    np.testing.assert_allclose(u_mg, u_plain, rtol=0, atol=2e-5 * np.abs(u_plain).max())
    assert it_mg < 0.7 * it_plain, (it_mg, it_plain)


def test_short_steps_stay_unpreconditioned(monkeypatch):
    """ImplicitEuler's steps at rtol 1e-6 are short (h gamma rho below the threshold):
    a cycle per step would cost more than the few GMRES iterations it saves."""
    g = js.Grid((32, 32))
    x, y = g.mesh()
    prob = js.ODEProblem(js.Laplacian(g), np.sin(np.pi * x) * np.sin(np.pi * y), (0.0, 1e-3))
    count = _counting(monkeypatch)
    sol = js.solve(prob, js.ImplicitEuler(dense_max=100), rtol=1e-6, atol=1e-8,
                   saveat=[1e-3])
    assert sol.retcode == js.ReturnCode.Success and count["solves"] > 0
    assert count["preconditioned"] == 0


def test_implicit_reaction_with_preconditioned_diffusion():
    """A SplitODEProblem with the reaction treated implicitly (Kvaerno5): the cycle of
    ``I - h gamma L`` preconditions ``I - h gamma (L + diag f')``; the solution matches
    the dense path's."""
    g = js.Grid((24, 24), bc=js.Neumann())
    L = 0.05 * js.Laplacian(g)

    def reaction(du, u, p, t):
        for i in range(u.size):
            du[i] = p[0] * (u[i] - u[i] * u[i] * u[i])

    u0 = np.random.default_rng(0).uniform(-0.5, 0.5, g.shape)
    p = np.array([1.0])
    prob = js.SplitODEProblem(L, reaction, u0, (0.0, 0.5), p)
    ref = js.solve(prob, js.Kvaerno5(), rtol=1e-8, atol=1e-10, saveat=[0.5])
    sol = js.solve(prob, js.Kvaerno5(dense_max=100), rtol=1e-8, atol=1e-10, saveat=[0.5])
    assert sol.retcode == js.ReturnCode.Success
    np.testing.assert_allclose(sol.u[-1], ref.u[-1], atol=1e-6)


def test_stage_multigrid_only_for_laplacian_and_diffusion():
    g = js.Grid((16, 16))
    assert OS._stage_multigrid(js.Advection(g, np.ones((2, 16, 16)))) is None
    assert OS._stage_multigrid(js.Laplacian(g) + js.Advection(g, np.ones((2, 16, 16)))) is None
    pre = OS._stage_multigrid(2.0 * js.Laplacian(g) - 3.0 * js.Identity(g))
    rho = 2.0 * 4.0 * 2 * 16 ** 2
    assert pre(0.5 * OS.STIFF_PRECOND / rho) is None
    M = pre(2.0 * OS.STIFF_PRECOND / rho)
    assert M is not None and M.shift == pytest.approx(1.0 + 3.0 * 2.0 * OS.STIFF_PRECOND / rho)
