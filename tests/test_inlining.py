"""``llvm_always_inline`` (kernels/cpu/inlining.py): a helper compiled once, put in line by
LLVM in its callers."""
import re

from numba import njit

from jitsolve.kernels.cpu.stepcontrol import pi_factor, reject_factor


@njit(cache=False)
def _controller(err, err_prev):
    return (pi_factor(err, err_prev, 0.14, 0.08, 0.9, 0.2, 10.0)
            + reject_factor(err, 0.14, 0.9, 0.2))


def _called(fn):
    ir = fn.inspect_llvm(fn.signatures[0])
    return {re.sub(r"B\d+v\d+.*", "", c) for c in re.findall(r'call [^@]*@"?([^"( ]+)', ir)}


def test_marked_helper_is_inlined_and_gives_the_same_bits():
    a = _controller(0.5, 0.3)
    assert a == pi_factor(0.5, 0.3, 0.14, 0.08, 0.9, 0.2, 10.0) + reject_factor(0.5, 0.14, 0.9, 0.2)
    calls = _called(_controller)
    assert not any(c.endswith("9pi_factor") for c in calls), calls
    # the control: the unmarked helper of the same kind (one fast power) stays a call, so
    # the attribute, not LLVM's own cost model, put pi_factor in line
    assert any(c.endswith("13reject_factor") for c in calls), calls
