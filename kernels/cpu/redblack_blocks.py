"""Red-black Gauss-Seidel updates of one row in vector blocks (explicit SIMD).

A red-black half-sweep updates every other cell of a row, ``j = js, js + 2, ...``, from
its neighbours of the other colour.  Written as a stride-2 loop, LLVM vectorises it with
gathers for the strided loads and scatters for the strided stores (the store has gaps, so
it cannot form an interleaved group), which is slow: on the Intel Sapphire Rapids host of
the thirty-fifth session a 128^3 half-sweep took 1.30 ms.  Here a block of
:data:`RB_WIDTH` consecutive cells ``j0 .. j0 + W - 1`` (``j0`` of the colour being
updated) is loaded as contiguous vectors, the update is evaluated in every lane, and a
constant lane mask keeps the new values in the even lanes and the old ones in the odd
lanes, which are stored back unchanged.  The neighbours along the row come from the same
vector ``U`` shifted by one lane: ``U[i - 1]`` with the cell left of the block (the
``carry``, the other colour, so unchanged) in lane 0, and ``U[i + 1]`` (the last lane,
of the other colour, needs no right neighbour).  So a block reads each input row once, no
load overlaps the previous block's store (no failed store forwarding), and the values
are the scalar loop's bit for bit: the same IEEE operations in the same order, no
fast-math flags.  Measured: the 128^3 half-sweep 0.70 ms against 1.30 (gathers).  The
Diffusion blocks read the face weights and the diagonal as contiguous vectors too (the
division done in every lane).  The fused sweeps of ``multigrid.py`` run 0.67-0.94x the
time of their stride-2 loops (RESULTS.md, Krylov, thirty-fifth session).

The blocks take raw addresses (:func:`data_address`) rather than arrays, and their
callers index flat arrays instead of taking row views: row views are reference-counted,
and with the block loop between their creation and last use Numba's reference-count
pruning kept the counting, which made the serial coarse-level sweeps 1.5-2.9x slower.

The IR is plain LLVM vector code (``<W x double>``, ``shufflevector``, ``select``),
legalised on any target; the block functions are Numba intrinsics, inlined into the
calling loop.  Numba's disk cache keys a kernel on its own file only: after editing this
module, touch the modules whose kernels use it (``multigrid.py``) or clear the cache.

References
----------
Trottenberg, Oosterlee, Schueller, *Multigrid* (2001), sec. 2.1 (red-black
Gauss-Seidel); Intel 64 and IA-32 Architectures Optimization Reference Manual (store
forwarding).
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["RB_WIDTH", "gs_block_lap3", "gs_block_lap2", "gs_block_dif3", "gs_block_dif2",
           "has_vector_blocks", "data_address", "load_real"]

#: cells a block spans (the updated colour in its even lanes)
RB_WIDTH = 8


def _vload(context, builder, dt, addr, off, n, widen=True):
    """``n`` entries of dtype ``dt`` at address ``addr``, entry ``off`` on, as a vector
    (unaligned); ``widen``: float32 entries widened to double exactly, as Numba's scalar
    code widens them before it mixes them with float64."""
    et = context.get_data_type(dt)
    base = builder.inttoptr(addr, et.as_pointer())
    ptr = builder.bitcast(builder.gep(base, [off]), ir.VectorType(et, n).as_pointer())
    v = builder.load(ptr, align=dt.bitwidth // 8)
    return _widen(builder, dt, v) if widen else v


def _widen(builder, dt, v):
    """A vector of ``dt`` entries as doubles (exact)."""
    if dt == types.float32:
        return builder.fpext(v, ir.VectorType(ir.DoubleType(), v.type.count))
    return v


def _vstore(context, builder, dt, addr, off, v):
    """The ``n`` entries at ``addr``, entry ``off`` on, set to ``v`` (float32 entries
    rounded, as a scalar store rounds them)."""
    et = context.get_data_type(dt)
    n = v.type.count
    if dt == types.float32:
        v = builder.fptrunc(v, ir.VectorType(et, n))
    base = builder.inttoptr(addr, et.as_pointer())
    ptr = builder.bitcast(builder.gep(base, [off]), ir.VectorType(et, n).as_pointer())
    builder.store(v, ptr, align=dt.bitwidth // 8)


def _splat(builder, x, n):
    i32 = ir.IntType(32)
    vt = ir.VectorType(ir.DoubleType(), n)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.Constant(i32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(i32, n), [0] * n))


_REAL = (types.float32, types.float64)


def _row_neighbours(builder, U, carry):
    """``(left, right)``: the vector ``U`` shifted by one lane each way, ``left[0] =
    carry`` (the cell before the block) and ``right[W - 1]`` a copy of ``U[W - 1]`` (a
    lane of the other colour: its value is not used)."""
    i32 = ir.IntType(32)
    W = U.type.count
    cv = builder.insert_element(ir.Constant(U.type, ir.Undefined), carry, ir.Constant(i32, 0))
    left = builder.shuffle_vector(cv, U, ir.Constant(
        ir.VectorType(i32, W), [0] + [W + i for i in range(W - 1)]))
    right = builder.shuffle_vector(U, ir.Constant(U.type, ir.Undefined), ir.Constant(
        ir.VectorType(i32, W), [i + 1 for i in range(W - 1)] + [W - 1]))
    return left, right


@intrinsic
def has_vector_blocks(typingctx, uf, ff):
    """Whether rows of ``uf`` (and ``ff``) take the vector blocks: a constant, True for
    float32 and float64 rows of one dtype (LLVM drops the branch it decides)."""
    real = uf.dtype in _REAL and ff.dtype == uf.dtype

    def codegen(context, builder, signature, args):
        return ir.Constant(ir.IntType(1), int(real))

    return types.boolean(uf, ff), codegen


@intrinsic
def load_real(typingctx, addr, dt, i):
    """Entry ``i`` of dtype ``dt`` at address ``addr`` as a float64 (a block's first
    carry; 0.0 for other dtypes, whose rows take no blocks)."""
    def codegen(context, builder, signature, args):
        a, _dt, k = args
        if dt.dtype not in _REAL:
            return ir.Constant(ir.DoubleType(), 0.0)
        et = context.get_data_type(dt.dtype)
        v = builder.load(builder.gep(builder.inttoptr(a, et.as_pointer()), [k]))
        return builder.fpext(v, ir.DoubleType()) if dt.dtype == types.float32 else v

    return types.float64(types.intp, dt, types.intp), codegen


@intrinsic
def data_address(typingctx, a):
    """The address of ``a``'s first entry (an integer: no reference is taken, so passing
    it on costs no reference counting)."""
    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.ptrtoint(arr.data, ir.IntType(64))

    return types.intp(a), codegen


def _make_block(axis0, W=RB_WIDTH):
    """The block intrinsic; ``axis0``: the stencil has neighbours along axis 0 (3-D)."""

    def block(typingctx, ua, fa, dt, base, j0, m0, p0, m1, p1, wm0, wp0, wm1, wp1, c2, inv,
              idg, carry):
        real = dt.dtype in _REAL
        f8 = types.float64
        ip = types.intp
        sig = f8(ip, ip, dt, ip, ip, ip, ip, ip, ip, f8, f8, f8, f8, f8, f8, f8, f8)

        def codegen(context, builder, signature, args):
            (u, f, _dt, base, j0, m0, p0, m1, p1, wm0, wp0, wm1, wp1, c2, inv, idg,
             carry) = args
            if not real:
                return carry      # never called: see has_vector_blocks
            ut = signature.args[2].dtype
            i32 = ir.IntType(32)
            bj = builder.add(base, j0)
            U = _vload(context, builder, ut, u, bj, W, widen=False)
            if ut == types.float32:                     # exact: it was a float32 entry
                carry = builder.fptrunc(carry, context.get_data_type(ut))
            left, right = _row_neighbours(builder, U, carry)
            # the two row neighbours are summed in the entries' type, as the scalar loop
            # sums them (float32 + float32 rounds to float32), then widened
            lr = _widen(builder, ut, builder.fadd(left, right))
            F = _vload(context, builder, ut, f, bj, W)
            M1 = _vload(context, builder, ut, u, builder.add(m1, j0), W)
            P1 = _vload(context, builder, ut, u, builder.add(p1, j0), W)
            # off = wm0 m0 + wp0 p0 + wm1 m1 + wp1 p1 + c2 (left + right), left to right
            if axis0:
                M0 = _vload(context, builder, ut, u, builder.add(m0, j0), W)
                P0 = _vload(context, builder, ut, u, builder.add(p0, j0), W)
                t = builder.fmul(_splat(builder, wm0, W), M0)
                t = builder.fadd(t, builder.fmul(_splat(builder, wp0, W), P0))
                t = builder.fadd(t, builder.fmul(_splat(builder, wm1, W), M1))
            else:
                t = builder.fmul(_splat(builder, wm1, W), M1)
            t = builder.fadd(t, builder.fmul(_splat(builder, wp1, W), P1))
            t = builder.fadd(t, builder.fmul(_splat(builder, c2, W), lr))
            new = builder.fmul(builder.fsub(builder.fmul(F, _splat(builder, inv, W)), t),
                               _splat(builder, idg, W))
            keep = ir.Constant(ir.VectorType(ir.IntType(1), W), [1 - i % 2 for i in range(W)])
            _vstore(context, builder, ut, u, bj,
                    builder.select(keep, new, _widen(builder, ut, U)))
            last = builder.extract_element(U, ir.Constant(i32, W - 1))
            return builder.fpext(last, ir.DoubleType()) if ut == types.float32 else last

        return sig, codegen

    return intrinsic(block)


gs_block_lap3 = _make_block(True)
gs_block_lap3.__doc__ = """``gs_block_lap3(ua, fa, dtype, base, j0, m0, p0, m1, p1, wm0, wp0, wm1,
wp1, c2, inv, idg, carry) -> carry``: one block of a red-black half-sweep of the 7-point
Laplacian.  ``ua``, ``fa``: addresses of the flat ``u`` and ``f`` (:func:`data_address`),
entries of ``dtype``; the cells ``j0, j0 + 2, .., j0 + W - 2`` of the row at flat offset
``base`` become ``(f * inv - off) * idg`` with ``off = wm0 u[m0 + j] + wp0 u[p0 + j] +
wm1 u[m1 + j] + wp1 u[p1 + j] + c2 (u[j - 1] + u[j + 1])`` (the neighbouring rows at flat
offsets ``m0 .. p1``), summed left to right as the scalar loop sums them; the cells
between are stored unchanged.  ``carry``: ``u[base + j0 - 1]``; returns ``u[base + j0 +
W - 1]``, the next block's carry.  Needs ``j0 >= 1`` and ``j0 + W <= n2``."""
gs_block_lap2 = _make_block(False)
gs_block_lap2.__doc__ = """:func:`gs_block_lap3` without the axis-0 terms (a 2-D grid: ``m0``,
``p0``, ``wm0``, ``wp0`` are ignored; the sum starts at ``wm1 u[m1 + j]``)."""




def _make_block_dif(axis0, W=RB_WIDTH):
    """The Diffusion block intrinsic (face weights and diagonal in float64 arrays)."""

    def block(typingctx, ua, fa, wa, da, dt, ws, base, j0, m0, p0, m1, p1, l0, u0, l1, u1,
              inv, carry):
        real = dt.dtype in _REAL
        f8 = types.float64
        ip = types.intp
        sig = f8(ip, ip, ip, ip, dt, ip, ip, ip, ip, ip, ip, ip, ip, ip, ip, ip, f8, f8)

        def codegen(context, builder, signature, args):
            (u, f, w, d, _dt, ws, base, j0, m0, p0, m1, p1, l0, u0, l1, u1, inv,
             carry) = args
            if not real:
                return carry      # never called: see has_vector_blocks
            ut = signature.args[4].dtype
            i32 = ir.IntType(32)
            i64 = ir.IntType(64)
            bj = builder.add(base, j0)
            U = _vload(context, builder, ut, u, bj, W)
            left, right = _row_neighbours(builder, U, carry)

            def wrow(axis, off):    # w[axis, off + j0 ..]
                start = builder.add(builder.add(builder.mul(ws, ir.Constant(i64, axis)), off),
                                    j0)
                return _vload(context, builder, types.float64, w, start, W)

            F = _vload(context, builder, ut, f, bj, W)
            D = _vload(context, builder, types.float64, d, bj, W)
            # off = wl0 m0 + wu0 p0 + wl1 m1 + wu1 p1 + w2[j - 1] u[j - 1] + w2[j] u[j + 1]
            t = None
            if axis0:
                t = builder.fmul(wrow(0, l0), _vload(context, builder, ut, u,
                                                     builder.add(m0, j0), W))
                t = builder.fadd(t, builder.fmul(wrow(0, u0), _vload(
                    context, builder, ut, u, builder.add(p0, j0), W)))
            x = builder.fmul(wrow(1, l1), _vload(context, builder, ut, u, builder.add(m1, j0), W))
            t = x if t is None else builder.fadd(t, x)
            t = builder.fadd(t, builder.fmul(wrow(1, u1), _vload(
                context, builder, ut, u, builder.add(p1, j0), W)))
            w2m = _vload(context, builder, types.float64, w,
                         builder.add(builder.mul(ws, ir.Constant(i64, 2)),
                                     builder.sub(bj, ir.Constant(i64, 1))), W)
            t = builder.fadd(t, builder.fmul(w2m, left))
            t = builder.fadd(t, builder.fmul(wrow(2, base), right))
            new = builder.fdiv(builder.fsub(builder.fmul(F, _splat(builder, inv, W)), t), D)
            keep = ir.Constant(ir.VectorType(ir.IntType(1), W), [1 - i % 2 for i in range(W)])
            _vstore(context, builder, ut, u, bj, builder.select(keep, new, U))
            return builder.extract_element(U, ir.Constant(i32, W - 1))

        return sig, codegen

    return intrinsic(block)


gs_block_dif3 = _make_block_dif(True)
gs_block_dif3.__doc__ = """``gs_block_dif3(ua, fa, wa, da, dtype, ws, base, j0, m0, p0, m1, p1, l0,
u0, l1, u1, inv, carry) -> carry``: one block of a red-black half-sweep of ``scale *
D(k)`` from its face weights ``w`` (float64, shape ``(3, ws)``, address ``wa``) and
diagonal (float64, address ``da``): the cells ``j0, j0 + 2, ..`` of the row at flat offset
``base`` become ``(f * inv - off) / dg`` with ``off = w[0, l0 + j] u[m0 + j] + w[0, u0 +
j] u[p0 + j] + w[1, l1 + j] u[m1 + j] + w[1, u1 + j] u[p1 + j] + w[2, base + j - 1] u[j -
1] + w[2, base + j] u[j + 1]``, summed as the scalar loop sums it; ``carry`` as in
:func:`gs_block_lap3`."""
gs_block_dif2 = _make_block_dif(False)
gs_block_dif2.__doc__ = """:func:`gs_block_dif3` without the axis-0 terms (a 2-D grid)."""
