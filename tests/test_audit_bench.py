"""Audit of the measuring tools: ``jitsolve bench``, ``perf/roofline.py``, ``js.profile``'s
byte/FLOP models and ``js.work_precision``'s timing.

Byte counts are computed here independently, by hand (fields read once, results written
once); no test asserts a timing figure -- where a formula is checked, the clock is faked.
"""
import importlib.util
import json
import math
import os

import numpy as np
import pytest

import jitsolve as js
from jitsolve import bench
from jitsolve.errors import InvalidProblemError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 2**20


def _strict_loads(text):
    def bad(c):
        raise ValueError(f"non-JSON constant {c}")
    return json.loads(text, parse_constant=bad)


class _Clock:
    """A fake ``time`` module whose ``perf_counter`` advances by given durations."""

    def __init__(self, durations):
        self.t = 0.0
        self.d = list(durations)
        self.calls = 0

    def perf_counter(self):
        # every timed call reads the clock twice: start, end
        self.calls += 1
        if self.calls % 2 == 0:
            self.t += self.d.pop(0)
        return self.t


# ------------------------------------------------------------------ cache size, STREAM rule
def _fake_cache(root, cpu, index, level, ctype, size, shared):
    d = root / f"cpu{cpu}" / "cache" / f"index{index}"
    d.mkdir(parents=True)
    (d / "level").write_text(f"{level}\n")
    (d / "type").write_text(f"{ctype}\n")
    (d / "size").write_text(f"{size}\n")
    (d / "shared_cpu_list").write_text(f"{shared}\n")


def test_llc_bytes_sums_distinct_l3_instances(tmp_path):
    for cpu in range(4):
        _fake_cache(tmp_path, cpu, 0, 1, "Data", "32K", str(cpu))
        _fake_cache(tmp_path, cpu, 1, 1, "Instruction", "32K", str(cpu))
        _fake_cache(tmp_path, cpu, 2, 2, "Unified", "1024K", str(cpu))
        _fake_cache(tmp_path, cpu, 3, 3, "Unified", "16384K", "0-1" if cpu < 2 else "2-3")
    assert bench.llc_bytes(str(tmp_path)) == 2 * 16 * MiB     # two L3s, each counted once
    assert bench.llc_bytes(str(tmp_path / "none")) is None
    assert bench._cache_size("32768K") == 32 * MiB
    assert bench._cache_size("2M") == 2 * MiB
    assert bench._cache_size("512") == 512


def test_stream_rule_sizes(monkeypatch):
    monkeypatch.setattr(bench, "_phys_bytes", lambda: None)
    llc = 32 * MiB
    # triad: each of the 3 arrays >= 4 x LLC -> 384 MiB in all
    assert bench.stream_gib(0.25, llc) == pytest.approx(3 * 4 * llc / 2**30)
    assert bench.stream_gib(1.5, llc) == 1.5
    assert bench.stream_gib(0.25, 0) == 0.25                       # unknown cache: as given
    # stencil grid: 2048^2 float64 is 32 MiB = 1x this LLC (too small); 4096^2 is 128 MiB
    n = bench.stencil_size(llc)
    assert n == 4096 and n * n * 8 >= 4 * llc
    assert bench.stencil_size(1 * MiB) == 2048                    # never below 2048
    big = 480 * MiB                                               # the Intel host's L3
    n = bench.stencil_size(big)
    assert n % 256 == 0 and n * n * 8 >= 4 * big and (n - 256) ** 2 * 8 < 4 * big
    # a memory cap: four arrays within a quarter of the memory
    monkeypatch.setattr(bench, "_phys_bytes", lambda: 16 * 2**30)
    n = bench.stencil_size(big)
    assert n % 256 == 0 and 4 * n * n * 8 <= 16 * 2**30 / 4 < 4 * (n + 256) ** 2 * 8
    assert bench.stream_gib(0.25, big) == 16 / 4


# ------------------------------------------------------------------ triad and copy formulas
def test_triad_counts_three_arrays_copy_two(monkeypatch):
    monkeypatch.setattr(bench, "best_time", lambda fn, repeat=5, warmup=1: 0.5)
    bw = bench.Bandwidth(gib=0.01, repeat=1)
    n = bw.a.size
    assert n == int(0.01 * 2**30 / 24)
    bw.measure()
    assert bw.triads == [3 * 8 * n / 0.5 / 1e9]        # STREAM: b, c read, a written
    assert bw.copies == [2 * 8 * n / 0.5 / 1e9]
    assert bw.triad_median == bw.triads[0]
    for bad in (0, -1.0, "x", None):
        with pytest.raises(InvalidProblemError, match="gib"):
            bench.Bandwidth(gib=bad)


def test_best_times_interleaves_and_takes_minimum(monkeypatch):
    order = []
    clock = _Clock([5.0, 9.0, 3.0, 8.0, 4.0, 7.0])
    monkeypatch.setattr(bench, "time", clock)
    tf, tg = bench.best_times([lambda: order.append("f"), lambda: order.append("g")],
                              repeat=3, warmup=1)
    assert order == ["f", "g"] * 4                      # warm-up round, then 3 alternating
    assert (tf, tg) == (3.0, 7.0)
    clock = _Clock([0.75, 0.25, 0.5])
    monkeypatch.setattr(bench, "time", clock)
    assert bench.best_time(lambda: None, repeat=3, warmup=1) == 0.25


# ------------------------------------------------------------------ stencil suite
def test_stencil_byte_model_by_hand():
    g = js.Grid((48, 40), bc=js.Dirichlet(0.0))
    n = 48 * 40
    u = np.ones(g.shape)
    out = np.empty(g.shape)
    L, D = js.Laplacian(g), js.Diffusion(g, 2.0)
    cases = {name: nbytes for name, _, nbytes in bench.stencil_cases(L, D, u, out)}
    assert cases == {"Laplacian.apply": 16 * n,        # u read, out written
                     "Diffusion.apply": 24 * n}        # + kappa read


def test_bench_run_stencil_consistent_figures():
    import numba
    res = bench.run("stencil", quick=True, gib=0.02, repeat=1)     # a single name as a string
    assert res["threads"] == numba.get_num_threads()
    n = 512 * 512
    by = {r["case"].split()[0]: r for r in res["rows"]}
    assert by["Laplacian.apply"]["bytes"] == 2 * 8 * n
    assert by["Diffusion.apply"]["bytes"] == 3 * 8 * n
    for r in res["rows"]:
        assert r["array_bytes"] == 8 * n
        # GB/s = bytes / time / 1e9, and the ratio to the best triad in the same unit
        assert r["value"] == pytest.approx(r["bytes"] / r["seconds"] / 1e9, rel=1e-12)
        assert r["ratio"] == pytest.approx(r["value"] / res["triad_gbs"], rel=1e-12)
    assert res["triad_gbs"] == max(res["triad_samples"])
    assert res["triad_median_gbs"] == pytest.approx(float(np.median(res["triad_samples"])))
    assert res["triad_array_bytes"] == 8 * int(0.02 * 2**30 / 24)
    # every field of the result is documented in the module docstring
    doc = bench.__doc__
    for k in res:
        assert f"``{k}``" in doc, k
    for k in res["rows"][0]:
        assert f"``{k}``" in doc, k
    assert "write-allocate" in doc and "10^9" in doc and "minimum" in doc
    text = bench.format_table(res)
    assert "1e9 B/s" in text and "write-allocate not counted" in text and "minimum" in text
    _strict_loads(bench.to_json(res))


def test_run_passes_repeat_to_suites(monkeypatch):
    seen = {}

    def fake(triad, quick=False, repeat=99):
        seen["repeat"] = repeat
        return [dict(suite="sde", case="x", seconds=1.0, value=1.0, unit="ms", ratio=1.0,
                     ratio_to="itself")]
    monkeypatch.setitem(bench._SUITE_FUNCS, "sde", fake)
    bench.run(["sde"], quick=True, gib=0.01, repeat=2)
    assert seen["repeat"] == 2
    bench.run(["sde"], quick=True, gib=0.01)
    assert seen["repeat"] == 99                          # the suite's own default


def test_unknown_suite_names_the_argument(capsys):
    for bad in (["foo"], ["stencil", "nope"], []):
        with pytest.raises(InvalidProblemError, match="suites") as e:
            bench.run(bad, quick=True, gib=0.01)
        if bad:
            assert repr(bad[-1]) in str(e.value)
    from jitsolve import cli
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "foo"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "suite" in err and "'foo'" in err


def test_to_json_strict():
    res = dict(a=float("nan"), b=[float("inf"), -float("inf"), 1.5], c=np.int64(826),
               d=np.float64(2.5), e=np.array([1.0, np.nan]), f=np.bool_(True), g=None)
    text = bench.to_json(res)
    back = _strict_loads(text)
    assert back == dict(a=None, b=[None, None, 1.5], c=826, d=2.5, e=[1.0, None], f=True, g=None)
    assert isinstance(back["c"], int)


# ------------------------------------------------------------------ profile byte / FLOP models
def _events(fn):
    with js.profile(bandwidth=10.0) as prof:
        fn()
    return prof.events


def test_profile_composite_operator_bytes_and_names():
    g = js.Grid((40, 30), bc=js.Dirichlet(0.0))
    n = g.size
    u = np.random.default_rng(1).standard_normal(g.shape)
    L = js.Laplacian(g)
    D = js.Diffusion(g, 1.0 + np.abs(u))
    ev = _events(lambda: (2.0 * L).apply(u))
    assert ev["ScaledOperator.apply"]["bytes"] == 2 * 8 * n       # out *= c: read + write out
    assert ev["Laplacian.apply"]["bytes"] == 2 * 8 * n
    ev = _events(lambda: (L + D).apply(u))
    assert ev["SumOperator.apply"]["bytes"] == 3 * 8 * n          # out += D u: 2 reads, 1 write
    assert ev["SumOperator.apply"]["flops"] == (9 + 21 + 1) * n   # inclusive, PETSc-style
    # a shifted operator: one fused pass out = u + (c/sigma) out (+ out *= sigma)
    ev = _events(lambda: (js.Identity(g) - 0.1 * L).apply(u))
    assert set(ev) == {"SumOperator.apply", "Laplacian.apply"}   # named, not "apply"
    assert ev["SumOperator.apply"]["bytes"] == 3 * 8 * n
    assert ev["SumOperator.apply"]["flops"] == (9 + 2) * n
    ev = _events(lambda: (2.0 * js.Identity(g) - L).apply(u))
    assert ev["SumOperator.apply"]["bytes"] == 5 * 8 * n
    assert ev["SumOperator.apply"]["flops"] == (9 + 3) * n
    ev = _events(lambda: js.Identity(g).apply(u))
    assert ev["Identity.apply"]["bytes"] == 2 * 8 * n and ev["Identity.apply"]["flops"] == 0


def test_profile_bytes_follow_the_item_size():
    g = js.Grid((32, 24), bc=js.Dirichlet(0.0))
    n = g.size
    L, D = js.Laplacian(g), js.Diffusion(g, 1.5)
    A = js.Advection(g, np.ones((2,) + g.shape))
    u32 = np.ones(g.shape, np.float32)
    u128 = np.ones(g.shape, np.complex128)
    ev = _events(lambda: (L.apply(u32), D.apply(u32)))
    assert ev["Laplacian.apply"]["bytes"] == (4 + 4) * n
    assert ev["Diffusion.apply"]["bytes"] == (4 + 8 + 4) * n      # kappa is float64
    ev = _events(lambda: (L.apply(u128), D.apply(u128)))
    assert ev["Laplacian.apply"]["bytes"] == (16 + 16) * n
    assert ev["Diffusion.apply"]["bytes"] == (16 + 8 + 16) * n
    u = np.ones(g.shape)
    ev = _events(lambda: (A.apply(u), A.T.apply(u), A.param_vjp(u, u), D.param_vjp(u, u)))
    assert ev["Advection.apply"]["bytes"] == (1 + 2 + 1) * 8 * n     # u, 2 velocities, out
    assert ev["Advection.T.apply"]["bytes"] == (1 + 2 + 1) * 8 * n
    assert ev["Advection.param_vjp"]["bytes"] == (2 + 2 + 2) * 8 * n  # u, lam, v, grad (2 each)
    assert ev["Diffusion.param_vjp"]["bytes"] == 4 * 8 * n


def test_profile_rates_gbs_self_gflops_inclusive():
    from jitsolve.profile import Profile
    p = Profile(bandwidth=20.0)
    p.wall = 1.0
    p.events = {"ScaledOperator.apply": dict(
        calls=3, time=0.3, inclusive=1.5, bytes=3 * 1000, first=0.1, first_bytes=1000,
        flops=3 * 5000, first_flops=5000, first_inclusive=0.5)}
    r = p.rows[0]
    assert r["gbs"] == pytest.approx(2000 / 0.2 / 1e9)               # self bytes / self time
    assert r["roofline"] == pytest.approx(r["gbs"] / 20.0)
    assert r["gflops"] == pytest.approx(10000 / 1.0 / 1e9)           # inclusive / inclusive
    # a JSON written before first_inclusive existed still reads (falls back to first)
    old = json.loads(p.to_json())
    for ev in old["events"].values():
        ev.pop("first_inclusive")
    back = Profile.from_json(json.dumps(old))
    assert back.rows[0]["gflops"] == pytest.approx(10000 / (1.5 - 0.1) / 1e9)


def test_profile_keeps_name_when_a_count_fails():
    from jitsolve.profile import _timed

    def boom(out, *a):
        raise RuntimeError("no count")
    f = _timed(lambda *a: "my.event", boom, lambda x: x + 1, boom)
    with js.profile(bandwidth=1.0) as prof:
        assert f(1) == 2
    assert prof.events["my.event"]["calls"] == 1
    assert prof.events["my.event"]["bytes"] is None and prof.events["my.event"]["flops"] is None


def test_profile_to_json_strict():
    from jitsolve.profile import Profile
    p = Profile(bandwidth=float("nan"))
    p.wall = 1.0
    p.events = {"x": dict(calls=1, time=float("inf"), inclusive=1.0, bytes=None, first=0.1,
                          first_bytes=None, flops=None, first_flops=None)}
    d = _strict_loads(p.to_json())
    assert d["bandwidth_gbs"] is None and d["events"]["x"]["time"] is None


# ------------------------------------------------------------------ perf/roofline.py
def _roofline():
    spec = importlib.util.spec_from_file_location("_audit_roofline",
                                                  os.path.join(ROOT, "perf", "roofline.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_roofline_byte_models_by_hand():
    rl = _roofline()
    got = {(label, name): nbytes for label, name, _fn, nbytes in rl.stencil_cases(quick=True)}
    n2, n3 = 1024 * 1024, 64 ** 3
    want = {}
    for label, n, d in (("2D 1024^2", n2, 2), ("3D 64^3", n3, 3)):
        want[(label, "Laplacian.apply")] = (1 + 1) * 8 * n              # u, out
        want[(label, "Diffusion.apply")] = (1 + 1 + 1) * 8 * n          # u, kappa, out
        want[(label, "Diffusion.param_vjp")] = (1 + 1 + 1 + 1) * 8 * n  # u, lam, kappa, grad
        want[(label, "Advection.apply")] = (1 + d + 1) * 8 * n          # u, v_1..v_d, out
        want[(label, "Advection.T.apply")] = (1 + d + 1) * 8 * n
        want[(label, "Advection.param_vjp")] = (1 + 1 + d + d) * 8 * n  # u, lam, v, grad_v
    assert got == want
    assert rl._shape_of("2D 4096^2") == (4096, 4096) and rl._shape_of("3D 256^3") == (256,) * 3


def test_roofline_table_states_conventions():
    rl = _roofline()
    res = dict(threads=2, array_gib=1.5, triad_gbs=30.0, copy_gbs=40.0, triad_samples=[30.0],
               llc_bytes=32 * MiB, repeat=7,
               rows=[dict(grid="2D 1024^2", kernel="Laplacian.apply", seconds=1e-3, gbs=16.8,
                          cache=True, ratio_to_triad=0.56, ratio_to_copy=0.42)])
    text = rl.format_table(res)
    assert "32 MiB" in text and "write-allocate" in text and "(cache)" in text
    assert "0.89" in rl.__doc__ and "1.33" in rl.__doc__


# ------------------------------------------------------------------ work_precision timing
def test_work_precision_time_is_min_of_warm_repeats(monkeypatch):
    from jitsolve import workprecision as wp

    def decay(du, u, p, t):
        du[0] = -p[0] * u[0]
    prob = js.ODEProblem(decay, np.array([1.0]), (0.0, 1.0), p=np.array([2.0]))
    calls = []
    real = wp._run

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(wp, "_run", counting)
    monkeypatch.setattr(wp, "time", _Clock([0.5, 0.25, 0.375]))
    res = wp.work_precision(prob, [js.Tsit5()], [1e-6], reference=math.exp(-2.0) * np.ones(1),
                            repeat=3)
    assert len(calls) == 4                               # one untimed warm-up + 3 timed
    assert res.rows[0]["time"] == 0.25
