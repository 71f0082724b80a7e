"""Binomial checkpointing (Revolve): reverse ``N`` steps holding at most ``C`` states.

``C`` counts every snapshot held at once, the state before step 0 included (Griewank's
convention).  With ``t`` the smallest repetition number with
``beta(C, t) = binom(C + t, C) >= N``, every step is recomputed at most ``t`` times and
the total number of recomputed forward steps is the minimum ``t N - beta(C + 1, t - 1)``
(Griewank 1992).  The schedule splits a segment of ``n`` steps whose first state is held
with ``c`` snapshots (that one included) so that the right part (``c - 1`` snapshots)
needs ``t`` repetitions and the left part (already advanced once, ``c`` snapshots)
``t - 1``, the recursion that attains it; with ``c = 1`` every step is recomputed from
the held state.  The recursion is run with an explicit stack (any ``N`` and ``C``).

References
----------
Griewank, *Achieving logarithmic growth of temporal and spatial complexity in reverse
automatic differentiation*, Optim. Methods Softw. 1 (1992); Griewank, Walther,
*Algorithm 799: Revolve*, ACM TOMS 26 (2000); Griewank, Walther, *Evaluating
Derivatives* (2008), ch. 12.
"""
from math import comb
from numbers import Integral

__all__ = ["beta", "repetitions", "binomial_reverse", "record_schedule", "snapshot_slots"]


def _count(x, name, least):
    """``x`` as a Python int ``>= least`` (bools and non-integers refused)."""
    from ..errors import InvalidProblemError
    if isinstance(x, bool) or not isinstance(x, Integral):
        raise InvalidProblemError(f"{name}: expected an integer >= {least}, got {x!r}")
    if x < least:
        raise InvalidProblemError(f"{name}: expected an integer >= {least}, got {x!r}")
    return int(x)


def snapshot_slots(n, c):
    """The snapshots a schedule of ``n`` steps with ``c`` checkpoints uses: ``min(c, n)``
    (``c >= n`` stores every state once; the schedule is the same for every such ``c``),
    at least 1, checked as :func:`binomial_reverse` does.  The compiled executors size
    their snapshot arrays by it, so a huge ``c`` costs nothing."""
    n = _count(n, "n", 0)
    c = _count(c, "checkpoints", 1)
    return max(min(c, n), 1)


def beta(c, t):
    """Number of steps reversible with ``c`` snapshots and ``t`` repetitions,
    ``binom(c + t, c)`` (0 for ``t < 0``)."""
    if t < 0:
        return 0
    return comb(c + t, c)


def repetitions(n, c):
    """Smallest ``t`` with ``beta(c, t) >= n`` (``c >= 1`` snapshots, or ``n <= 1``)."""
    n = _count(n, "n", 0)
    c = _count(c, "checkpoints", 0)
    if c == 0 and n > 1:
        from ..errors import InvalidProblemError
        raise InvalidProblemError(f"checkpoints: {n} steps need at least one snapshot")
    t = 0
    while beta(c, t) < n:
        t += 1
    return t


def binomial_reverse(n, c, advance, reverse_step, take, restore):
    """Drive a reverse sweep over steps ``0 .. n-1`` with at most ``c`` snapshots.

    Callbacks (the caller owns the states):

    ``advance(i0, i1)``
        recompute steps ``i0 .. i1-1`` (``i1 > i0``) from the current state (which is the
        state before step ``i0``), leaving the state before step ``i1`` current.
    ``reverse_step(i)``
        reverse step ``i`` from the current state (the state before step ``i``).
    ``take(i)`` / ``restore(i)``
        store the current state (before step ``i``) in a snapshot / make the snapshot
        of step ``i`` current again; ``restore(i)`` also frees snapshots above ``i``.

    The state before step 0 must be current; it is taken as the first snapshot and
    counts against ``c``: at most ``c`` snapshots are held at once (a stack: a restore
    frees those above), plus the current state.  Returns the number of forward steps
    recomputed, ``t n - beta(c + 1, t - 1)`` with ``t = repetitions(n, c)``.  Raises
    :class:`~jitsolve.errors.InvalidProblemError` for ``c`` not an integer ``>= 1`` or
    ``n`` not an integer ``>= 0`` (``n = 0`` does nothing).
    """
    c = snapshot_slots(n, c)
    if n == 0:
        return 0
    count = 0
    take(0)
    # tasks: (restore first?, l, r, c): the state before step l is held in a snapshot
    # and, unless restore first, current; c snapshots for the segment, l's included
    stack = [(False, 0, n, c)]
    while stack:
        back, l, r, c = stack.pop()
        if back:
            restore(l)
        while True:
            n = r - l
            if n == 1:
                reverse_step(l)
                break
            if c == 1:                  # no room: recompute from l for every step
                for i in range(r - 1, l - 1, -1):
                    if i < r - 1:
                        restore(l)
                    if i > l:
                        advance(l, i)
                        count += i - l
                    reverse_step(i)
                break
            t = repetitions(n, c)
            # the right part is reversed with c - 1 snapshots in t repetitions, the left
            # part (already advanced once) with c snapshots in t - 1:
            # n <= beta(c - 1, t) + beta(c, t - 1); both parts inside their optimal
            # ranges gives t n - beta(c + 1, t - 1) in total
            right = max(beta(c - 1, t - 1), n - beta(c, t - 1))
            right = min(max(right, 1), n - 1)
            m = r - right
            advance(l, m)
            count += m - l
            take(m)
            stack.append((True, l, m, c))       # then the left part, from l again
            l, c = m, c - 1                     # the right part first
    return count


def record_schedule(N, C):
    """The schedule of :func:`binomial_reverse` as an int64 array of ``(op, a, b)`` rows
    (0 advance ``a..b``, 1 reverse step ``a``, 2 snapshot ``a``, 3 restore ``a``) for the
    compiled executors, and the number of recomputed steps.  At most ``C`` snapshots are
    held at once (the state before step 0 included)."""
    import numpy as np
    ops = []
    nre = binomial_reverse(N, C, lambda i0, i1: ops.append((0, i0, i1)),
                           lambda i: ops.append((1, i, 0)), lambda i: ops.append((2, i, 0)),
                           lambda i: ops.append((3, i, 0)))
    return np.array(ops, dtype=np.int64).reshape(-1, 3), nre
