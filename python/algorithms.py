"""Algorithm types.  An algorithm object says *how* to solve; ``solve`` dispatches on the
(problem type, algorithm type) pair through the registry in :mod:`jitsolve.solve`.

The concrete algorithms (``js.CG``, ``js.Tsit5``, ``js.EM``, ...) are added by the solver
issues, each as a subclass of one of these bases plus one ``register`` line.
"""

__all__ = ["AbstractAlgorithm", "ODEAlgorithm", "SDEAlgorithm", "LinearAlgorithm",
           "Preconditioner", "SensitivityAlgorithm"]


class AbstractAlgorithm:
    """Base class of every algorithm; its options are its constructor arguments."""

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
    """

    order = None
    adaptive = False
    dense = False


class SDEAlgorithm(AbstractAlgorithm):
    """Base of SDE integrators; ``strong_order`` and ``weak_order`` describe the method."""

    strong_order = None
    weak_order = None


class LinearAlgorithm(AbstractAlgorithm):
    """Base of linear solvers (Krylov and direct); ``precond`` is a Preconditioner,
    a callable ``r -> z`` or a scipy LinearOperator."""


class Preconditioner(AbstractAlgorithm):
    """Base of preconditioners: ``setup(A) -> callable r -> z``."""


class SensitivityAlgorithm(AbstractAlgorithm):
    """Base of gradient methods (``sensealg``): discrete and continuous adjoints, forward
    sensitivities, finite differences."""


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
