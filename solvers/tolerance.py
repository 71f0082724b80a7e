"""Per-component tolerance arrays for the compiled loops."""
import numpy as np


def tolerance_array(x, n):
    """A fresh, writable, C-contiguous float64 array of ``n`` tolerances from a scalar or a
    per-component array (never a broadcast view: a read-only array is another type to
    Numba, a second compile of the loop it is passed to)."""
    if np.ndim(x) == 0:
        return np.full(n, float(x))
    return np.array(np.broadcast_to(np.asarray(x, dtype=np.float64), (n,)), order="C")
