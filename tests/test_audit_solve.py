"""Audit of ``solve``'s options (forty-third session): ``saveat=[]`` saved nothing (SciML:
every step); the rtol floor was skipped with a per-component ``atol``, which let a solve
run to MaxIters; ``save_noise`` took any truthy value; a per-component ``atol`` of another
shape than the state's was raveled silently; a user function indexing a matrix state as 2-D
failed to compile without saying that states reach it flattened; the stiff methods stepped
onto every saved time."""
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import CompileError, InvalidProblemError


def osc(du, u, p, t):
    du[0] = u[1]
    du[1] = -u[0]


PROB = js.ODEProblem(osc, np.array([1.0, 0.0]), (0.0, 1.0))


@pytest.mark.parametrize("empty", [[], np.array([]), ()], ids=["list", "array", "tuple"])
def test_an_empty_saveat_saves_every_step(empty):
    every = js.solve(PROB, js.Tsit5())
    sol = js.solve(PROB, js.Tsit5(), saveat=empty)
    assert sol.t.size == every.t.size > 2
    np.testing.assert_array_equal(sol.t, every.t)
    np.testing.assert_array_equal(sol.u, every.u)
    assert abs(sol(0.5)[0] - np.cos(0.5)) < 1e-3


def test_the_rtol_floor_holds_with_a_per_component_atol():
    for atol in (1e-30, np.array([1e-30, 1e-30])):
        with pytest.raises(InvalidProblemError, match="^rtol: 1e-20 is below"):
            js.solve(PROB, js.Tsit5(), rtol=1e-20, atol=atol)


def test_save_noise_must_be_a_bool():
    def drift(du, u, p, t):
        du[0] = 0.0

    def noise(gu, u, p, t):
        gu[0] = 1.0
    sde = js.SDEProblem(drift, noise, np.zeros(1), (0.0, 1.0))
    for bad in ("no", 1, None):
        with pytest.raises(InvalidProblemError, match="^save_noise: expected True or False"):
            js.solve(sde, js.EM(), dt=0.25, save_noise=bad)
    with pytest.raises(InvalidProblemError, match="^save_noise: "):
        js.solve(PROB, js.Tsit5(), save_noise="yes")
    sol = js.solve(sde, js.EM(), dt=0.25, save_noise=np.True_)
    np.testing.assert_allclose(sol.u[:, 0], sol.W[:, 0], rtol=0, atol=1e-15)  # du = dW


def decay_flat(du, u, p, t):
    for i in range(u.size):
        du[i] = -u[i]


def test_a_per_component_atol_has_the_states_shape_or_is_flat():
    prob = js.ODEProblem(decay_flat, np.ones((2, 3)), (0.0, 1.0))
    with pytest.raises(InvalidProblemError, match=r"^atol: .*\(3, 2\).*\(2, 3\)"):
        js.solve(prob, js.Tsit5(), atol=np.full((3, 2), 1e-8))
    a = js.solve(prob, js.Tsit5(), atol=np.full((2, 3), 1e-8))
    b = js.solve(prob, js.Tsit5(), atol=np.full(6, 1e-8))
    np.testing.assert_array_equal(a.u, b.u)
    assert a.u.shape[1:] == (2, 3)
    np.testing.assert_allclose(a.u[-1], np.exp(-1.0), rtol=1e-3)


def matrix_indexing(du, u, p, t):
    du[0, 0] = -u[0, 0]


def test_a_matrix_state_indexed_as_2d_says_states_are_flattened():
    with pytest.raises(CompileError, match=r"^f: .*flattened, entry \[i, j\] at \[i \* k \+ j\]"):
        js.solve(js.ODEProblem(matrix_indexing, np.ones((2, 2)), (0.0, 1.0)), js.Tsit5())


@pytest.mark.parametrize("alg", [js.Rodas5P(), js.KenCarp4(), js.Rosenbrock23(),
                                 js.ImplicitEuler()], ids=lambda a: type(a).__name__)
def test_stiff_saveat_is_interpolated_not_stepped_onto(alg):
    """The stiff methods stepped onto every saved time (Rodas5P: 18 steps -> 2,001 with
    2,001 times, ~10x the work); adaptive ones now save from the interpolant inside
    steps, as the explicit ones and SciML do: the same steps as without saveat, and the
    saved values those of ``sol(t)`` of the every-step solve."""
    ts = np.linspace(0.0, 10.0, 401)
    prob = js.ODEProblem(osc, np.array([1.0, 0.0]), (0.0, 10.0))
    every = js.solve(prob, alg, rtol=1e-6, atol=1e-9)
    sol = js.solve(prob, alg, saveat=ts, rtol=1e-6, atol=1e-9)
    assert sol.stats.naccept == every.stats.naccept
    if isinstance(alg, (js.Rodas5P, js.KenCarp4)):
        assert sol.stats.naccept < 100          # far fewer steps than saved times
    np.testing.assert_array_equal(sol.t, ts)
    np.testing.assert_allclose(sol.u, every(ts), rtol=0, atol=1e-13)
    ens = js.solve(js.EnsembleProblem(prob, u0s=np.array([[1.0, 0.0], [2.0, 0.0]])), alg,
                   saveat=ts, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(ens.u[0], sol.u)       # each trajectory its own solve
