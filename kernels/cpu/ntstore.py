"""Non-temporal (streaming) stores for kernels whose output is far larger than the cache.

A plain store first reads the cache line it writes (write-allocate), so a stencil apply
that reads ``u`` once and writes ``out`` once moves three arrays' bytes, not two: its
bandwidth, counted as the bytes that must move, tops out near 0.89 of a triad's.  A
non-temporal store writes the line straight to memory.  Numba's loops cannot ask for one,
so a kernel computes a row into a small buffer (in L1) and :func:`stream_row` copies it
out: plain stores up to the first 64-byte boundary, then whole 64-byte lines through an
LLVM ``store <8 x double> ... !nontemporal`` (``vmovntpd``), then plain stores for the
tail.  Non-temporal stores are weakly ordered: a kernel that used them calls
:func:`stream_fence` (``sfence``) in each thread before its parallel region ends.

Measured (Intel Sapphire Rapids host, 2 threads, 128 MiB arrays): a plain copy 25.8
GB/s against 34.7 streamed; the 2-D Laplacian apply (4096^2) 0.71-0.73 of the triad
against 0.87-0.89 streamed, which is the one kernel that streams now
(:func:`~jitsolve.kernels.cpu.stencil.laplacian_apply_stream`, on 1-D and 2-D grids).
Measured and left plain: the 3-D Laplacian (0.98-1.07x the time at 256^3 and 512 x
256^2), the Diffusion apply (2-D the same time, 3-D 1.04x: its harmonic means bound
it), the Advection velocity VJP (three output streams: 1.07x at 4096^2, 1.4x at
256^3).  A line that is read again soon (vectors that fit in the cache, as in a Krylov
solve at 1024^2) would be fetched back from memory: outputs of fewer than
:data:`STREAM_MIN_BYTES` are written plainly.

Only x86-64 gets the streaming path (:data:`HAVE_STREAM`); elsewhere :func:`stream_row`
is a plain copy.

References
----------
Intel 64 and IA-32 Architectures Optimization Reference Manual, sec. "Non-temporal
stores"; McCalpin, STREAM (the benchmark's compiled form streams its stores).
"""
import platform

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["HAVE_STREAM", "STREAM_MIN_BYTES", "stream_row", "stream_fence", "use_stream"]

#: whether this machine's kernels stream (x86-64: ``vmovntpd`` and ``sfence``)
HAVE_STREAM = platform.machine().lower() in ("x86_64", "amd64")

#: outputs of at least this many bytes are streamed (far beyond a 2-core share of L3)
STREAM_MIN_BYTES = 64 << 20


@intrinsic
def _nt_line(typingctx, dst, doff, src, soff):
    """``dst[doff:doff + 8] = src[soff:soff + 8]`` (float64), one 64-byte non-temporal
    store; ``dst``'s address at ``doff`` must be 64-byte aligned."""
    sig = types.void(dst, types.intp, src, types.intp)

    def codegen(context, builder, signature, args):
        d, do, s, so = args
        da = context.make_array(signature.args[0])(context, builder, d)
        sa = context.make_array(signature.args[2])(context, builder, s)
        vt = ir.VectorType(ir.DoubleType(), 8)
        v = builder.load(builder.bitcast(builder.gep(sa.data, [so]), vt.as_pointer()), align=8)
        st = builder.store(v, builder.bitcast(builder.gep(da.data, [do]), vt.as_pointer()),
                           align=64)
        st.set_metadata("nontemporal",
                        builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _sfence(typingctx):
    sig = types.void()

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.x86.sse.sfence", fnty=ir.FunctionType(
            ir.VoidType(), []))
        builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


if HAVE_STREAM:
    @njit(inline="always", cache=True)
    def stream_row(dst, off, buf, n):
        """``dst[off:off + n] = buf[:n]`` (``dst`` a flat C-contiguous float64 array), the
        whole 64-byte lines written non-temporally."""
        addr = dst.ctypes.data + 8 * off
        head = min(n, ((64 - addr % 64) % 64) // 8)
        for j in range(head):
            dst[off + j] = buf[j]
        j = head
        while j + 8 <= n:
            _nt_line(dst, off + j, buf, j)
            j += 8
        while j < n:
            dst[off + j] = buf[j]
            j += 1

    @njit(inline="always", cache=True)
    def stream_fence():
        """Order this thread's non-temporal stores before what follows (``sfence``)."""
        _sfence()
else:   # pragma: no cover - exercised on non-x86 machines only
    @njit(inline="always", cache=True)
    def stream_row(dst, off, buf, n):
        """``dst[off:off + n] = buf[:n]`` (plain stores: no streaming on this machine)."""
        for j in range(n):
            dst[off + j] = buf[j]

    @njit(inline="always", cache=True)
    def stream_fence():
        """Nothing to order (no streaming on this machine)."""
        return


def use_stream(out):
    """Whether a kernel writing ``out`` should stream it: float64, C-contiguous, at least
    :data:`STREAM_MIN_BYTES`, on a machine with streaming stores."""
    return (HAVE_STREAM and out.dtype.char == "d" and out.flags.c_contiguous
            and out.nbytes >= STREAM_MIN_BYTES)
