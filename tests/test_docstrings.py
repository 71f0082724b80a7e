"""Docstrings of the integrators (issue 7): numpydoc with an example that runs, a method
reference and a cost section; ``help(js.Tsit5)`` is useful."""
import doctest

import pytest

import jitsolve as js

INTEGRATORS = ["Euler", "RK4", "Tsit5", "DP5", "Vern7", "ImplicitEuler", "Rosenbrock23",
               "Rodas5P", "KenCarp4", "Kvaerno5", "EM", "EulerHeun", "Milstein", "SRIW1", "SRA1"]


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
