"""EnsembleSolution keeps one small code per trajectory: every way of giving the retcodes
(members, names, arrays of str or bytes) means the same thing, ``retcode`` is the first
failure, ``successful_mask`` agrees with ``retcodes``, and HDF5 keeps them."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitsolve as js
from jitsolve import EnsembleSolution, ReturnCode

CODES = list(ReturnCode)


def _sol(retcodes, n=None):
    n = len(retcodes) if n is None else n
    return EnsembleSolution(np.array([0.0, 1.0]), np.zeros((n, 2, 1)), retcodes)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(CODES), min_size=1, max_size=40))
def test_every_form_gives_the_same_codes(codes):
    names = [c.value for c in codes]
    forms = [codes, names, np.array(names), np.array(names, dtype="S32"),
             np.array(names, dtype=object), tuple(codes)]
    first_bad = next((c for c in codes if c not in (ReturnCode.Success, ReturnCode.Terminated)),
                     ReturnCode.Success)
    for form in forms:
        s = _sol(form, len(codes))
        assert s.retcodes == codes
        assert all(isinstance(r, ReturnCode) for r in s.retcodes)
        assert s.retcode is first_bad
        np.testing.assert_array_equal(s.successful_mask, [c.successful for c in codes])
        assert s.successful is first_bad.successful


def test_terminated_counts_as_successful():
    s = _sol([ReturnCode.Terminated, ReturnCode.Success])
    assert s.retcode is ReturnCode.Success and s.successful_mask.all()
    s = _sol(["Terminated", "Unstable", "MaxIters"])
    assert s.retcode is ReturnCode.Unstable
    np.testing.assert_array_equal(s.successful_mask, [True, False, False])


@pytest.mark.parametrize("form", [["Success", "Nonsense"], np.array(["Success", "Nonsense"]),
                                  np.array([b"Success", b"Nonsense"])])
def test_unknown_name_raises(form):
    with pytest.raises(ValueError, match="Nonsense"):
        _sol(form)


def test_one_code_per_trajectory():
    with pytest.raises(ValueError, match="one retcode per trajectory"):
        _sol(["Success"], n=2)


def test_hdf5_round_trip_keeps_the_codes(tmp_path):
    codes = [ReturnCode.Success, ReturnCode.Unstable, ReturnCode.Terminated, ReturnCode.MaxIters]
    s = _sol(codes)
    s.to_hdf5(tmp_path / "e.h5")
    back = js.load(tmp_path / "e.h5")
    assert back.retcodes == codes and back.retcode is ReturnCode.Unstable
    np.testing.assert_array_equal(back.successful_mask, s.successful_mask)


def test_solved_ensembles_report_their_failures():
    """An SDE and an ODE ensemble with some trajectories blowing up: the mask, the list
    and ``retcode`` agree with the kernels' per-trajectory codes."""
    def f(du, u, p, t):
        du[0] = p[0] * u[0] * u[0]

    def g(gu, u, p, t):
        gu[0] = 0.0

    ps = np.array([[-1.0], [1.0], [-1.0], [1.0]])           # u' = p u^2 blows up for p > 0
    ode = js.EnsembleProblem(js.ODEProblem(f, np.array([1.0]), (0.0, 2.0), p=np.array([1.0])),
                             ps=ps)
    es = js.solve(ode, js.Tsit5(), trajectories=4, saveat=np.array([0.0, 2.0]))
    np.testing.assert_array_equal(es.successful_mask, [True, False, True, False])
    assert es.retcode is es.retcodes[1] and not es.retcode.successful
    sde = js.EnsembleProblem(js.SDEProblem(f, g, np.array([1.0]), (0.0, 2.0), p=np.array([1.0])),
                             ps=ps)
    ss = js.solve(sde, js.sde.EM(), trajectories=4, dt=2.0 ** -8, saveat=np.array([2.0]))
    np.testing.assert_array_equal(ss.successful_mask, [True, False, True, False])
    assert ss.retcodes[1] is ReturnCode.Unstable and ss.retcode is ReturnCode.Unstable


# ---------------------------------------------------------------------- EnsembleSummary
@settings(max_examples=30, deadline=None)
@given(st.integers(2, 9), st.integers(1, 4), st.floats(0.0, 0.5), st.floats(0.5, 1.0),
       st.sampled_from([0, 1]), st.integers(0, 2 ** 16))
def test_summary_against_numpy(N, nt, qlo, qhi, ddof, seed):
    u = np.random.default_rng(seed).standard_normal((N, nt, 2))
    codes = [ReturnCode.Success] * N
    s = EnsembleSolution(np.arange(float(nt)), u, codes).summary(quantiles=(qlo, qhi),
                                                                 ddof=ddof)
    assert s.n == N and s.mean.shape == (nt, 2)
    np.testing.assert_allclose(s.mean, u.sum(axis=0) / N, rtol=1e-13, atol=1e-15)
    ref_var = ((u - u.mean(axis=0)) ** 2).sum(axis=0) / (N - ddof)
    np.testing.assert_allclose(s.var, ref_var, rtol=1e-12, atol=1e-15)
    for q, got in ((qlo, s.qlow), (qhi, s.qhigh)):       # type 7: interpolated order stats
        srt = np.sort(u, axis=0)
        h = (N - 1) * q
        lo = int(np.floor(h))
        hi = min(lo + 1, N - 1)
        np.testing.assert_allclose(got, srt[lo] + (h - lo) * (srt[hi] - srt[lo]), rtol=1e-12,
                                   atol=1e-14)
    assert np.all(s.qlow <= s.qhigh + 1e-15)


def test_summary_leaves_out_failed_trajectories_and_checks_input():
    u = np.arange(12.0).reshape(3, 2, 2)
    u[1, 1] = np.nan                                           # failed after its first save
    s = EnsembleSolution(np.array([0.0, 1.0]), u, ["Success", "Unstable", "Terminated"]).summary()
    assert s.n == 2
    np.testing.assert_array_equal(s.mean, (u[0] + u[2]) / 2)
    assert np.isfinite(s.var).all()
    sol = EnsembleSolution(np.array([0.0, 1.0]), u, ["Success", "Unstable", "MaxIters"])
    with pytest.raises(js.errors.InvalidProblemError, match="^sol: 1 successful"):
        sol.summary()
    assert sol.summary(ddof=0).n == 1
    for bad in ((0.9, 0.1), (-0.1, 0.5), (0.5,), (0.1, np.nan)):
        with pytest.raises(js.errors.InvalidProblemError, match="^quantiles"):
            sol.summary(quantiles=bad, ddof=0)
    with pytest.raises(js.errors.InvalidProblemError, match="^ddof"):
        sol.summary(ddof=2)
    with pytest.raises(js.errors.InvalidProblemError, match="^sol"):
        js.EnsembleSummary(np.zeros(3))


def test_summary_of_an_sde_ensemble_matches_the_ou_moments():
    def ou_f(du, u, p, t):
        du[0] = p[0] * (p[1] - u[0])

    def ou_g(gu, u, p, t):
        gu[0] = p[2]
    prob = js.SDEProblem(ou_f, ou_g, np.array([0.0]), (0.0, 2.0), np.array([1.5, 1.0, 0.4]))
    T = np.array([0.5, 2.0])
    N = 20_000
    s = js.solve(js.EnsembleProblem(prob), js.EM(), dt=2.0 ** -8, saveat=T,
                 trajectories=N, seed=3).summary()
    mean = 1.0 - np.exp(-1.5 * T)
    var = 0.16 / 3.0 * (1 - np.exp(-3.0 * T))
    assert np.all(np.abs(s.mean[:, 0] - mean) < 5 * np.sqrt(var / N))
    assert np.all(np.abs(s.var[:, 0] / var - 1) < 5 * np.sqrt(2.0 / N) + 0.01)  # + EM bias
    z = 1.6448536269514722                                      # the normal's 95 % point
    np.testing.assert_allclose(s.qhigh[:, 0], mean + z * np.sqrt(var), rtol=0.03)
    np.testing.assert_allclose(s.qlow[:, 0], mean - z * np.sqrt(var), atol=0.03)
