"""ODE audit fixes: lists of callbacks, a terminating event with ``saveat``, prob_func
ensembles that keep failed trajectories, and HDF5 round trips that keep ``sol(t)``,
ensemble stats and the noise."""
import h5py
import numpy as np
import pytest

import jitsolve as js
from jitsolve.errors import FileFormatError, InvalidProblemError, UnsupportedAlgorithmError


def decay(du, u, p, t):
    du[0] = -u[0]


def blow(du, u, p, t):          # u = 1 / (1 - p t): blows up at t = 1 / p
    du[0] = p[0] * u[0] * u[0]


def fall(du, u, p, t):
    du[0] = u[1]
    du[1] = -9.81


def half(u, t, p):
    return u[0] - 0.5


def reset(u, t, p):
    u[0] = 1.0


def late(u, t, p):
    return 1.0 if t >= 1.2 and u[0] > 0.0 else 0.0


def flip(u, t, p):
    u[0] = -u[0]


def zero_drift(du, u, p, t):
    du[0] = 0.0


def unit_noise(gu, u, p, t):
    gu[0] = 1.0


DECAY = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.5))
BLOW = js.ODEProblem(blow, np.array([1.0]), (0.0, 1.0), p=np.array([0.5]))


# ------------------------------------------------------------------------- callbacks
@pytest.mark.parametrize("container", [list, tuple])
def test_solve_takes_a_list_of_callbacks(container):
    cbs = container([js.ContinuousCallback(half, reset), js.DiscreteCallback(late, flip)])
    sol = js.solve(DECAY, js.Tsit5(), callback=cbs, rtol=1e-10, atol=1e-12)
    assert sol.retcode is js.ReturnCode.Success
    (t1, u1), (t2, u2) = sol.events
    assert abs(t1 - np.log(2)) < 1e-8 and abs(u1[0] - 0.5) < 1e-8      # before the reset
    assert t2 >= 1.2 and abs(u2[0] - np.exp(-(t2 - t1))) < 1e-8        # before the flip
    assert abs(sol.u[-1, 0] + u2[0] * np.exp(-(1.5 - t2))) < 1e-8


def test_callback_arity_message_names_the_callback_form():
    with pytest.raises(InvalidProblemError, match=r"^condition: .*expected 3 \(e\.g\. "
                                                  r"condition\(u, t, p\)\)"):
        js.ContinuousCallback(lambda u, t: u[0])
    with pytest.raises(InvalidProblemError, match=r"affect\(u, t, p\)"):
        js.DiscreteCallback(late, lambda u, t: None)


def test_terminating_event_state_is_saved_with_saveat():
    cb = js.ContinuousCallback(half, terminate=True)
    for saveat, before in ((0.25, [0.0, 0.25, 0.5]), ([0.0, 1.0], [0.0])):
        sol = js.solve(DECAY, js.Tsit5(), saveat=saveat, callback=cb, rtol=1e-10, atol=1e-12)
        assert sol.retcode is js.ReturnCode.Terminated
        te = sol.events[0][0]
        assert abs(te - np.log(2)) < 1e-8
        np.testing.assert_array_equal(sol.t, before + [te])
        np.testing.assert_allclose(sol.u[:, 0], np.exp(-sol.t), rtol=1e-8)
        np.testing.assert_array_equal(sol.u[-1], sol.events[0][1])


# ------------------------------------------------------------------------- ensembles
def test_prob_func_ensemble_keeps_a_failed_trajectory():
    ps = [0.5, 2.0, 0.1]                  # the second blows up at t = 0.5
    ep = js.EnsembleProblem(BLOW, prob_func=lambda pr, i: js.remake(pr, p=[ps[i]]))
    ts = np.array([0.0, 0.25, 0.75, 1.0])
    es = js.solve(ep, js.Tsit5(), trajectories=3, saveat=ts, rtol=1e-8, atol=1e-10)
    assert es.u.shape == (3, 4, 1) and es.stats.shape == (3, 6)
    assert es.retcodes[0] is es.retcodes[2] is js.ReturnCode.Success
    assert not es.retcodes[1].successful and es.retcode is es.retcodes[1]
    np.testing.assert_allclose(es.u[1, :2, 0], 1 / (1 - 2.0 * ts[:2]), rtol=1e-6)
    assert np.isnan(es.u[1, 2:]).all()
    for i in (0, 2):
        single = js.solve(js.remake(BLOW, p=[ps[i]]), js.Tsit5(), saveat=ts, rtol=1e-8,
                          atol=1e-10)
        np.testing.assert_array_equal(es.u[i], single.u)
        assert es.stats[i, 3] == single.stats.naccept
    # without saveat: tspan's ends, as the u0s/ps path
    es = js.solve(ep, js.Tsit5(), trajectories=3)
    np.testing.assert_array_equal(es.t, [0.0, 1.0])
    assert es.u.shape == (3, 2, 1) and np.isnan(es.u[1, 1, 0])


def test_prob_func_ensemble_bad_trajectories_are_named():
    two = js.ODEProblem(decay, np.ones(2), (0.0, 1.0))
    ep = js.EnsembleProblem(two, prob_func=lambda pr, i: js.remake(pr, u0=np.ones(i + 2)))
    with pytest.raises(InvalidProblemError, match=r"^prob_func: u0 of trajectory 1 .*\(3,\)"):
        js.solve(ep, js.Tsit5(), trajectories=2, saveat=[0.0, 1.0])
    with pytest.raises(InvalidProblemError, match="^prob_func: returned int"):
        js.solve(js.EnsembleProblem(two, prob_func=lambda pr, i: 3), js.Tsit5(), trajectories=2)


def test_unsupported_ensemble_algorithm_message_is_short():
    ep = js.EnsembleProblem(BLOW, ps=np.ones((2, 1)))
    with pytest.raises(UnsupportedAlgorithmError,
                       match="^alg: no solver for EnsembleProblem with CG") as info:
        js.solve(ep, js.CG())     # (stiff ensembles are solved: tests/test_audit_ode2.py)
    msg = str(info.value)
    assert "LinearProblem" not in msg and len(msg) < 200


# ------------------------------------------------------------------------- HDF5
def test_hdf5_keeps_the_dense_interpolant(tmp_path):
    sol = js.solve(js.ODEProblem(fall, np.array([10.0, 0.0]), (0.0, 1.0)), js.Tsit5())
    assert sol.dense and sol.t.size < 10
    tq = np.array([0.123, 0.5, 0.987])
    sol.to_hdf5(tmp_path / "s.h5")
    back = js.load(tmp_path / "s.h5")
    assert back.dense
    np.testing.assert_array_equal(back(tq), sol(tq))
    np.testing.assert_allclose(back(tq)[:, 0], 10.0 - 0.5 * 9.81 * tq * tq, rtol=1e-12)
    np.testing.assert_array_equal(back.steps_t, sol.steps_t)
    np.testing.assert_array_equal(back.steps_h, sol.steps_h)


def test_hdf5_keeps_ensemble_stats_and_noise(tmp_path):
    ode = js.solve(js.EnsembleProblem(DECAY, u0s=np.array([[1.0], [2.0]])), js.Tsit5())
    sde = js.solve(js.EnsembleProblem(js.SDEProblem(zero_drift, unit_noise, np.zeros(1),
                                                    (0.0, 1.0)), u0s=np.zeros((3, 1))),
                   js.EM(), dt=0.125, seed=2, save_noise=True)
    assert ode.stats.shape == (2, 6) and sde.W.shape == (3, 9, 1) and sde.stats.naccept > 0
    for name, sol in (("o", ode), ("s", sde)):
        sol.to_hdf5(tmp_path / f"{name}.h5")
        back = js.load(tmp_path / f"{name}.h5")
        np.testing.assert_array_equal(back.u, sol.u)
        assert back.retcodes == sol.retcodes
    np.testing.assert_array_equal(js.load(tmp_path / "o.h5").stats, ode.stats)
    back = js.load(tmp_path / "s.h5")
    assert back.stats == sde.stats
    np.testing.assert_array_equal(back.W, sde.W)
    np.testing.assert_array_equal(back.u, back.W)           # u = W exactly


def test_load_a_group_where_a_dataset_belongs(tmp_path):
    path = tmp_path / "g.h5"
    js.ODESolution(np.arange(2.0), np.ones((2, 1))).to_hdf5(path)
    with h5py.File(path, "a") as f:
        del f["u"]
        f.create_group("u")
    with pytest.raises(FileFormatError, match="corrupt ODESolution: field 'u' is a Group"):
        js.load(path)
