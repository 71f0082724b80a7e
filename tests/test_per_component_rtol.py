"""Per-component ``rtol`` (forty-seventh session): an ODE/SDE solve takes ``rtol`` as a
number or an array of the state's size or shape, as SciML's ``reltol`` (and as ``atol``
already was).  The loops' error norms always took arrays; an array of equal entries is
the scalar bit for bit on every path that takes tolerances (explicit, Rosenbrock,
ESDIRK, Newton-Krylov, SDE, ensembles in lockstep and per trajectory, the discrete and
continuous adjoints), and unequal entries weight the components apart."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import InvalidProblemError

from ode_models import lotka

P = np.array([1.5, 1.0, 3.0, 1.0])
LV = js.ODEProblem(lotka, np.array([1.0, 1.0]), (0.0, 5.0), p=P)
TD = np.linspace(0.5, 5.0, 10)
LOSS = js.L2Loss(TD, np.ones((10, 2)))


def _noise(du, u, p, t):
    for i in range(u.size):
        du[i] = 0.1 * u[i]


def _cubic(du, u, p, t):
    for i in range(u.size):
        du[i] = -u[i] ** 3


def _grid_problem():
    g = js.Grid((48, 48), extent=((0.0, 1.0), (0.0, 1.0)), bc=js.Dirichlet(0.0))
    return js.SplitODEProblem(js.Laplacian(g), _cubic, np.ones(g.shape), (0.0, 0.05))


def _ensemble(N):
    return js.EnsembleProblem(LV, u0s=np.outer(np.linspace(0.5, 1.5, N), [1.0, 1.0]))


SDE = js.SDEProblem(lotka, _noise, np.array([1.0, 1.0]), (0.0, 1.0), p=P)
GRID = _grid_problem()

PATHS = {
    "Tsit5": lambda r: js.solve(LV, js.Tsit5(), rtol=r, atol=1e-8).u,
    "Rodas5P": lambda r: js.solve(LV, js.Rodas5P(), rtol=r, atol=1e-8).u,
    "KenCarp4": lambda r: js.solve(LV, js.KenCarp4(), rtol=r, atol=1e-8).u,
    "Newton-Krylov": lambda r: js.solve(GRID, js.KenCarp4(), rtol=r, atol=1e-8).u,
    "SRIW1": lambda r: js.solve(SDE, js.SRIW1(), rtol=r, atol=1e-3, seed=1).u,
    "lockstep ensemble": lambda r: js.solve(_ensemble(100), js.Tsit5(), rtol=r, atol=1e-8,
                                            saveat=TD).u,
    "ensemble": lambda r: js.solve(_ensemble(5), js.Rodas5P(), rtol=r, atol=1e-8,
                                   saveat=TD).u,
    "DiscreteAdjoint": lambda r: js.gradient(LV, js.Tsit5(), LOSS, wrt=("p", "u0"), rtol=r,
                                             atol=1e-8)[1]["p"],
    "InterpolatingAdjoint": lambda r: js.gradient(
        LV, js.Rodas5P(), LOSS, wrt="p", sensealg=js.InterpolatingAdjoint(), rtol=r,
        atol=1e-8)[1]["p"],
}


@pytest.mark.parametrize("path", list(PATHS))
def test_equal_entries_are_the_scalar_bit_for_bit(path):
    n = GRID.u0.size if path == "Newton-Krylov" else 2
    a = np.asarray(PATHS[path](1e-6))
    b = np.asarray(PATHS[path](np.full(n, 1e-6)))
    assert np.isfinite(a).all()
    assert np.array_equal(a.view(np.int64), b.view(np.int64))


def test_unequal_entries_weight_the_components():
    """Two decoupled decays, one with rtol 1e-10 and one with 1e-3: the tight component
    sets the steps (the norm is an RMS over components) and meets its tolerance; the
    steps are many more than the scalar 1e-3 takes (90 vs 12), fewer than 1e-10 (174)."""
    def decay(du, u, p, t):
        du[0] = -u[0]
        du[1] = -2.0 * u[1]
    prob = js.ODEProblem(decay, np.array([1.0, 1.0]), (0.0, 3.0))
    exact = np.exp(-np.array([1.0, 2.0]) * 3.0)
    mixed = js.solve(prob, js.Tsit5(), rtol=np.array([1e-10, 1e-3]), atol=1e-14)
    tight = js.solve(prob, js.Tsit5(), rtol=1e-10, atol=1e-14)
    loose = js.solve(prob, js.Tsit5(), rtol=1e-3, atol=1e-14)
    assert loose.stats.naccept * 5 < mixed.stats.naccept <= tight.stats.naccept
    err = np.abs(mixed.u[-1] - exact) / exact
    assert err[0] < 1e-10 < err[1] < 1e-4      # (8e-12, 6e-10; 1e-3 alone: 1e-6, 2e-4)
    # the same per-component array in the state's shape
    again = js.solve(prob, js.Tsit5(), rtol=np.array([[1e-10], [1e-3]]).ravel(), atol=1e-14)
    assert np.array_equal(again.u, mixed.u)


@pytest.mark.parametrize("rtol, atol, match", [
    (np.full(3, 1e-6), 1e-8, r"^rtol: per-component tolerance needs 2 entries, got 3"),
    (np.array([1e-6, -1e-6]), 1e-8, r"^rtol: entries must be >= 0"),
    (np.array([1e-6, np.nan]), 1e-8, r"^rtol"),
    (np.array([1e-6, 0.0]), np.array([1e-8, 0.0]),
     r"^rtol, atol: both are zero at 1 component\(s\)"),
    (np.array([1e-6, 0.0]), 0.0, r"^rtol, atol: both are zero at 1 component\(s\)"),
    (np.array([1e-6, 1e-17]), 1e-8, r"^rtol: 1e-17 is below what float64"),
    ([1e-6, [1e-6, 2.0]], 1e-8, r"^rtol: expected a number or an array of numbers"),
    (1e-6, [1e-8, [1e-8]], r"^atol: expected a number or an array of numbers"),
], ids=["size", "negative", "nan", "both-zero-arrays", "both-zero-scalar-atol", "tiny",
        "ragged-rtol", "ragged-atol"])
def test_bad_per_component_rtol_names_it(rtol, atol, match):
    with pytest.raises(InvalidProblemError, match=match):
        js.solve(LV, js.Tsit5(), rtol=rtol, atol=atol)


def test_linear_solve_takes_one_rtol():
    A = js.Laplacian(js.Grid((8,), bc=js.Dirichlet(0.0)))
    for name in ("rtol", "atol"):
        with pytest.raises(InvalidProblemError, match=rf"^{name}: a linear solve takes one "
                                                      rf"number \(a norm\), not per-component"):
            js.solve(js.LinearProblem(-A, np.ones(8)), js.CG(), **{name: np.full(8, 1e-8)})
