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
