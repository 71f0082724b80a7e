"""Algorithm types.  An algorithm object says *how* to solve; ``solve`` dispatches on the
(problem type, algorithm type) pair through the registry in :mod:`jitsolve.solve`.

The concrete algorithms (``js.CG``, ``js.Tsit5``, ``js.EM``, ...) are added by the solver
issues, each as a subclass of one of these bases plus one ``register`` line.
"""

__all__ = ["AbstractAlgorithm", "ODEAlgorithm", "SDEAlgorithm", "LinearAlgorithm",
           "Preconditioner", "SensitivityAlgorithm"]


class AbstractAlgorithm:
    """Base class of every algorithm; its options are its constructor arguments.

    Two algorithms are equal when they have the same type and options; ``repr`` shows
    the options.

    Examples
    --------
    >>> import jitsolve as js
    >>> js.GMRES(restart=10)
    GMRES(precond=None, restart=10)
    >>> js.CG(js.Jacobi()) == js.CG(js.Jacobi()), isinstance(js.Tsit5(),
    ...                                                    js.AbstractAlgorithm)
    (True, True)
    """

    #: method reference, shown by ``help`` and ``repr``
    reference = None

    def _options(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self):
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options().items())
        return f"{type(self).__name__}({opts})"

    def __eq__(self, other):
        return type(self) is type(other) and self._options() == other._options()

    def __hash__(self):
        return hash(type(self).__name__)


class ODEAlgorithm(AbstractAlgorithm):
    """Base of ODE integrators (explicit, stiff, exponential).

    Attributes ``order`` (of the solution), ``adaptive`` (has an error estimate) and
    ``dense`` (has its own interpolant) describe the method.

    Examples
    --------
    >>> import jitsolve as js
    >>> [(type(a).__name__, a.order, a.adaptive) for a in (js.RK4(), js.Tsit5())]
    [('RK4', 4, False), ('Tsit5', 5, True)]
    >>> isinstance(js.Rodas5P(), js.ODEAlgorithm)
    True
    """

    order = None
    adaptive = False
    dense = False


class SDEAlgorithm(AbstractAlgorithm):
    """Base of SDE integrators; ``strong_order`` and ``weak_order`` describe the method.

    Examples
    --------
    >>> import jitsolve as js
    >>> isinstance(js.EM(), js.SDEAlgorithm), js.EM().strong_order, js.EM().weak_order
    (True, 0.5, 1.0)
    """

    strong_order = None
    weak_order = None


class LinearAlgorithm(AbstractAlgorithm):
    """Base of linear solvers (Krylov and direct); ``precond`` is a Preconditioner,
    a callable ``r -> z`` or a scipy LinearOperator.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> isinstance(js.CG(), js.LinearAlgorithm), isinstance(js.Direct(), js.LinearAlgorithm)
    (True, True)
    >>> A = np.diag([2.0, 4.0])
    >>> sol = js.solve(js.LinearProblem(A, np.ones(2)), js.CG(lambda r: r / np.diag(A)))
    >>> sol.retcode, sol.iters
    (<ReturnCode.Success: 'Success'>, 1)
    """


class Preconditioner(AbstractAlgorithm):
    """Base of preconditioners: ``setup(A) -> callable (r, out) -> out`` approximating
    ``A^{-1} r``.

    Examples
    --------
    >>> import numpy as np, jitsolve as js
    >>> M = js.Jacobi().setup(np.diag([2.0, 4.0]))
    >>> isinstance(js.Jacobi(), js.Preconditioner), M(np.ones(2), np.empty(2))
    (True, array([0.5 , 0.25]))
    """


class SensitivityAlgorithm(AbstractAlgorithm):
    """Base of gradient methods (``sensealg``): discrete and continuous adjoints, forward
    sensitivities, finite differences.

    Examples
    --------
    >>> import jitsolve as js
    >>> [isinstance(s, js.SensitivityAlgorithm)
    ...  for s in (js.DiscreteAdjoint(), js.InterpolatingAdjoint(), js.FiniteDifference())]
    [True, True, True]
    >>> js.DiscreteAdjoint(checkpoints="binomial")
    DiscreteAdjoint(checkpoints=16, store=None)
    """


def document(cls, cost, example=None):
    """Append numpydoc ``Examples`` (when the class has none) and ``Cost`` sections to the
    docstring of the algorithm class ``cls`` (kept as data beside the class, so every
    method's page has the same shape)."""
    doc = (cls.__doc__ or "").rstrip()
    if example is not None and "Examples\n" not in doc:
        body = "\n".join("    " + line if line else "" for line in example.strip("\n").split("\n"))
        doc += "\n\n    Examples\n    --------\n" + body
    import textwrap
    text = textwrap.fill(" ".join(cost.split()), width=84, initial_indent="    ",
                         subsequent_indent="    ")
    doc += "\n\n    Cost\n    ----\n" + text + "\n    "
    cls.__doc__ = doc
    return cls
