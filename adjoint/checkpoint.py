"""Binomial checkpointing (Revolve): reverse ``N`` steps holding at most ``C`` states.

With ``C`` snapshots and ``t`` the smallest repetition number with
``beta(C, t) = binom(C + t, C) >= N``, every step is recomputed at most ``t`` times and
the total number of forward steps is minimal, ``t N - beta(C + 1, t - 1)`` (Griewank
1992).  The schedule here splits a segment of ``n`` steps with ``c`` free snapshots so
that the right part (``c - 1`` snapshots) needs ``t`` repetitions and the left part
(already advanced once, ``c`` snapshots) ``t - 1``, the recursion that attains it.

References
----------
Griewank, *Achieving logarithmic growth of temporal and spatial complexity in reverse
automatic differentiation*, Optim. Methods Softw. 1 (1992); Griewank, Walther,
*Algorithm 799: Revolve*, ACM TOMS 26 (2000); Griewank, Walther, *Evaluating
Derivatives* (2008), ch. 12.
"""
from math import comb

__all__ = ["beta", "repetitions", "binomial_reverse", "record_schedule"]


def beta(c, t):
    """Number of steps reversible with ``c`` snapshots and ``t`` repetitions."""
    return comb(c + t, c)


def repetitions(n, c):
    """Smallest ``t`` with ``beta(c, t) >= n``."""
    t = 0
    while beta(c, t) < n:
        t += 1
    return t


def binomial_reverse(n, c, advance, reverse_step, take, restore):
    """Drive a reverse sweep over steps ``0 .. n-1`` with ``c`` snapshot slots.

    Callbacks (the caller owns the states):

    ``advance(i0, i1)``
        recompute steps ``i0 .. i1-1`` from the current state (which is the state
        before step ``i0``), leaving the state before step ``i1`` current.
    ``reverse_step(i)``
        reverse step ``i`` from the current state (the state before step ``i``).
    ``take(i)`` / ``restore(i)``
        store the current state (before step ``i``) in a snapshot / make the snapshot
        of step ``i`` current again; ``restore(i)`` also frees snapshots above ``i``.

    The state before step 0 must be current and is held by the caller (it does not
    count against ``c``).  Returns the number of forward steps recomputed.
    """
    if c < 1:
        raise ValueError("checkpoints: at least one snapshot is needed")
    count = [0]

    def rec(l, r, c):
        # state before step l is current and held
        n = r - l
        if n == 1:
            reverse_step(l)
            return
        if c == 0:                      # no room: recompute from l for every step
            for i in range(r - 1, l - 1, -1):
                restore(l)
                advance(l, i)
                count[0] += i - l
                reverse_step(i)
            return
        t = repetitions(n, c)
        # the right part is reversed with c - 1 snapshots in t repetitions, the left part
        # (already advanced once) with c snapshots in t - 1: n <= beta(c-1, t) + beta(c, t-1)
        # both parts inside their optimal ranges gives t n - beta(c + 1, t - 1) in total
        right = max(beta(c - 1, t - 1), n - beta(c, t - 1))
        right = min(max(right, 1), n - 1)
        left = n - right
        m = l + left
        advance(l, m)
        count[0] += left
        take(m)
        rec(m, r, c - 1)
        restore(l)
        rec(l, m, c)

    take(0)
    rec(0, n, c)
    return count[0]


def record_schedule(N, C):
    """The schedule of :func:`binomial_reverse` as an int64 array of ``(op, a, b)`` rows
    (0 advance ``a..b``, 1 reverse step ``a``, 2 snapshot ``a``, 3 restore ``a``) for the
    compiled executors, and the number of recomputed steps."""
    import numpy as np
    ops = []
    nre = binomial_reverse(N, C, lambda i0, i1: ops.append((0, i0, i1)),
                           lambda i: ops.append((1, i, 0)), lambda i: ops.append((2, i, 0)),
                           lambda i: ops.append((3, i, 0)))
    return np.array(ops, dtype=np.int64).reshape(-1, 3), nre
