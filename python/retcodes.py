"""Return codes of solves, after SciMLBase.ReturnCode."""
import enum

__all__ = ["ReturnCode"]


class ReturnCode(enum.Enum):
    """How a solve ended.  Everything computed up to the end is kept in the solution.

    ``Success`` and ``Terminated`` (stopped by a callback) count as successful
    (``sol.successful``); every other code marks a numerical failure.

    Examples
    --------
    >>> from jitsolve import ReturnCode
    >>> ReturnCode.Success.successful, ReturnCode.MaxIters.successful
    (True, False)
    """

    Success = "Success"
    Terminated = "Terminated"
    MaxIters = "MaxIters"
    DtLessThanMin = "DtLessThanMin"
    Unstable = "Unstable"
    InitialFailure = "InitialFailure"
    Breakdown = "Breakdown"
    ConvergenceFailure = "ConvergenceFailure"
    Failure = "Failure"

    @property
    def successful(self):
        """True for ``Success`` and ``Terminated``."""
        return self in (ReturnCode.Success, ReturnCode.Terminated)

    def __str__(self):
        return f"ReturnCode.{self.value}"
