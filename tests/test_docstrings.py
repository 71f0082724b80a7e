"""Docstrings of the integrators (issue 7): numpydoc with an example that runs, a method
reference and a cost section; ``help(js.Tsit5)`` is useful."""
import doctest

import pytest

import jitsolve as js

INTEGRATORS = ["Euler", "RK4", "Tsit5", "DP5", "Vern7", "ImplicitEuler", "Rosenbrock23",
               "Rodas5P", "KenCarp4", "Kvaerno5", "ETDRK4", "EM", "EulerHeun", "Milstein", "SRIW1",
               "SRA1"]


@pytest.mark.parametrize("name", INTEGRATORS)
def test_integrator_docstring_sections(name):
    doc = getattr(js, name).__doc__
    for section in ("References\n", "Examples\n", "Cost\n"):
        assert section in doc, f"{name}: no {section.strip()} section"
    cost = doc.split("Cost\n")[1]
    assert "per step" in " ".join(cost.lower().split())
    assert all(len(line) <= 92 for line in doc.splitlines()), name


@pytest.mark.parametrize("name", INTEGRATORS)
def test_integrator_docstring_example_runs(name):
    cls = getattr(js, name)
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(cls, name, globs={"js": js})
    assert tests and tests[0].examples, name
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in tests:
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.failed == 0 and res.attempted >= 3, (name, res)


# ------------------------------------------------------------------ the other public names
#: every public class and function of ``js.__all__`` besides the integrators (modules and
#: ``__version__`` are left out), with the phrase its ``Cost`` section must contain (None:
#: no Cost section required)
COST = {
    "CG": "per iteration", "FlexibleCG": "per iteration", "BiCGSTAB": "per iteration",
    "GMRES": "per iteration", "Direct": "per solve",
    "Jacobi": "per application", "Chebyshev": "per application",
    "Multigrid": "per application", "AMG": "per application",
    "GridOperator": "per apply", "Laplacian": "per apply", "Diffusion": "per apply",
    "Advection": "per apply", "Identity": "per apply",
    "DiscreteAdjoint": "per step", "InterpolatingAdjoint": "per step",
    "BacksolveAdjoint": "per step", "QuadratureAdjoint": "per step",
    "ForwardSensitivity": "per step", "FiniteDifference": "per entry",
    "HDF5Store": "per checkpoint", "ExplicitRK": "per step",
    "ContinuousCallback": "per step", "DiscreteCallback": "per step",
    "gradient": "per call", "check_gradient": "per call", "fit": "per evaluation",
    "MomentLoss": "per ``js.gradient`` call", "EnsembleLoss": "per ``js.gradient`` call",
    "local_sensitivities": "per call", "parameter_covariance": "per call",
    "Tikhonov": "per evaluation", "TotalVariation": "per evaluation",
    "reverse_sde": "per evaluation", "profile": "per call", "work_precision": "per call",
}
#: names that involve no numerical method (containers, registries, base classes): a
#: References section is optional for them
NO_METHOD = {"remake", "AbstractAlgorithm", "ODEAlgorithm", "SDEAlgorithm", "LinearAlgorithm",
             "Preconditioner", "SensitivityAlgorithm", "solve", "register", "solve_registry",
             "ReturnCode", "SolverStats", "ODESolution", "SDESolution", "LinearSolution",
             "EnsembleSolution", "load", "Loss", "L2Loss", "FitResult", "HDF5Store",
             "BoundaryCondition", "LinearProblem", "EnsembleProblem", "ParameterCovariance"}
OTHERS = [n for n in js.__all__
          if n not in INTEGRATORS and n != "__version__"
          and not isinstance(getattr(js, n), type(js))]


def test_every_public_name_is_listed():
    assert set(COST) <= set(OTHERS) and NO_METHOD <= set(OTHERS)
    assert len(OTHERS) + len(INTEGRATORS) + 5 == len(js.__all__)   # + version, 4 modules


@pytest.mark.parametrize("name", OTHERS)
def test_public_docstring_sections(name):
    doc = getattr(js, name).__doc__
    assert doc, name
    assert "Examples\n" in doc, f"{name}: no Examples section"
    if name not in NO_METHOD:
        assert "References\n" in doc, f"{name}: no References section"
    if name in COST:
        assert "Cost\n" in doc, f"{name}: no Cost section"
        cost = " ".join(doc.split("Cost\n")[1].lower().split())
        assert COST[name] in cost, (name, COST[name])
    assert all(len(line) <= 92 for line in doc.splitlines()), name


@pytest.mark.parametrize("name", OTHERS)
def test_public_docstring_example_runs(name):
    obj = getattr(js, name)
    finder = doctest.DocTestFinder(recurse=False)
    tests = [t for t in finder.find(obj, name, globs={"js": js}) if t.examples]
    assert tests, name
    examples = [ex for t in tests for ex in t.examples]
    assert not any(ex.options.get(doctest.SKIP) for ex in examples), f"{name}: skipped example"
    assert any(ex.want.strip() for ex in examples), f"{name}: the example checks no value"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    res = runner.summarize(verbose=False)
    assert res.failed == 0 and res.attempted >= 2, (name, res)
