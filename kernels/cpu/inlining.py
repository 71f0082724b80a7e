"""``llvm_always_inline()``: mark the compiled function that calls it ``alwaysinline`` for LLVM.

Numba's own ``inline="always"`` splices a helper's IR into every caller and types it
again there, at each call site and at each cold compile of each caller (~0.25 s for the
PI controller's factor in every integration loop: Numba's inlining pass, measured).  A
helper that calls ``llvm_always_inline()`` instead is compiled once (and can be
disk-cached like any kernel); its LLVM IR, which Numba links into each caller's module,
carries the ``alwaysinline`` attribute, so LLVM's inliner puts it in line where its own
cost model would have left a call (a call per step cost a short Lorenz solve ~3.5 %).

A helper called from a ``prange`` body should be compiled with ``error_model="numpy"``,
the model Numba gives parallel loop bodies (and so the helper's code had when Numba
inlined it there): under the default Python model every division carries a zero check,
which kept the Diffusion stencil's row loops from vectorising (2.4-3.1x the time;
tests/test_inlining.py checks the grid kernels' helpers).
"""
from numba import types
from numba.extending import intrinsic

__all__ = ["llvm_always_inline"]


@intrinsic
def llvm_always_inline(typingctx):
    """Give the calling compiled function LLVM's ``alwaysinline`` attribute (no code)."""
    def codegen(context, builder, sig, args):
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()

    return types.none(), codegen
