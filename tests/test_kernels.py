"""The compiled kernels against their pure-Python references (tests/reference.py).

Every case checks the return values and their types, every output array (pre-filled with a
sentinel, so rows a kernel must not write are checked too), and that no input was modified.
Inputs are passed read-only wherever a kernel takes them ``const``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from reference import (
    FAULT_DUPLICATE, FAULT_HIGH_LOW, FAULT_MISALIGNED, FAULT_NONE, FAULT_NONFINITE,
    FAULT_OUTSIDE, FAULT_OVERFLOW, FAULT_UNSORTED, FAULT_VOLUME, I64_MAX, I64_MIN, MINUTE, NS,
    T1900, T2200, grids,
)
from sessiondata._core import aggregation, gaps, quality, validation

H = 60 * MINUTE


def readonly(*arrays):
    out = []
    for a in arrays:
        a = np.array(a, copy=True)
        a.setflags(write=False)
        out.append(a)
    return out


def i64(values):
    return np.asarray(values, dtype=np.int64)


def f64(values):
    return np.asarray(values, dtype=np.float64)


def flat_bars(ts, price=1.0):
    """OHLCV columns for ts: a rising price, so every bucket has distinct open/close."""
    n = len(ts)
    o = np.arange(n, dtype=np.float64) + price
    return i64(ts), o, o + 0.5, o - 0.5, o + 0.25, np.arange(n, dtype=np.float64) + 1.0


def assert_unchanged(before, after):
    for b, a in zip(before, after):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- aggregation


def run_aggregate(ts, o, h, lo, c, v, g_open, g_close, g_base, step_ns, base_ns, cap=None):
    """Run kernel and reference on read-only copies; assert they agree; return the result
    and the outputs truncated to n_out."""
    inputs = readonly(i64(ts), f64(o), f64(h), f64(lo), f64(c), f64(v),
                      i64(g_open), i64(g_close), i64(g_base))
    before = [a.copy() for a in inputs]
    if cap is None:
        cap = len(ts)
    out_k = ref.new_outputs(cap)
    out_r = ref.new_outputs(cap)
    got = aggregation.aggregate_bars(*inputs[:9], step_ns, base_ns, *out_k)
    want = ref.aggregate_bars(*inputs[:9], step_ns, base_ns, *out_r)
    assert_unchanged(before, inputs)
    assert all(type(x) is int for x in got), got
    assert got == want
    for name, a, b in zip(ref.OUT_NAMES, out_k, out_r):
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    return got, {name: a[: got[0]] for name, a in zip(ref.OUT_NAMES, out_k)}


def base_slots(g_open, g_close, base_ns):
    return -((i64(g_open) - i64(g_close)) // base_ns)


def test_aggregate_empty():
    got, out = run_aggregate([], [], [], [], [], [], [0], [100], [100], 10, 1)
    assert got == (0, FAULT_NONE, -1)


def test_aggregate_no_window():
    got, _ = run_aggregate(*flat_bars([5]), [], [], [], 10, 1)
    assert got == (0, FAULT_OUTSIDE, 0)


def test_aggregate_one_bar():
    got, out = run_aggregate(*flat_bars([7 * MINUTE]), [0], [H], [60], 5 * MINUTE, MINUTE)
    assert got == (1, FAULT_NONE, -1)
    assert out["ts"].tolist() == [5 * MINUTE]
    assert out["count"].tolist() == [1]
    assert out["coverage"].tolist() == [0.2]


def test_aggregate_full_window_values():
    ts = np.arange(0, 30, dtype=np.int64) * MINUTE
    o = np.arange(30, dtype=np.float64)
    h = o + np.where(np.arange(30) % 5 == 2, 10.0, 1.0)
    lo = o - np.where(np.arange(30) % 5 == 3, 10.0, 1.0)
    c = o + 0.5
    v = np.full(30, 0.1)
    got, out = run_aggregate(ts, o, h, lo, c, v, [0], [30 * MINUTE], [30], 5 * MINUTE, MINUTE)
    assert got == (6, FAULT_NONE, -1)
    assert out["ts"].tolist() == [k * 5 * MINUTE for k in range(6)]
    assert out["open"].tolist() == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
    assert out["high"].tolist() == [12.0, 17.0, 22.0, 27.0, 32.0, 37.0]
    assert out["low"].tolist() == [-7.0, -2.0, 3.0, 8.0, 13.0, 18.0]
    assert out["close"].tolist() == [4.5, 9.5, 14.5, 19.5, 24.5, 29.5]
    assert out["count"].tolist() == [5] * 6
    assert out["coverage"].tolist() == [1.0] * 6
    assert out["count"].dtype == np.int64 and out["coverage"].dtype == np.float64


def test_aggregate_short_last_bucket():
    # Window of 23 minutes, 5m buckets: the last one is [20, 23) and expects 3 base bars.
    ts = [0, 4, 20, 22]
    got, out = run_aggregate(*flat_bars(i64(ts) * MINUTE), [0], [23 * MINUTE], [23],
                             5 * MINUTE, MINUTE)
    assert out["ts"].tolist() == [0, 20 * MINUTE]
    assert out["count"].tolist() == [2, 2]
    assert out["coverage"].tolist() == [2 / 5, 2 / 3]


def test_aggregate_lunch_break_never_spans():
    # 09:30-12:00 and 13:00-16:00 (HKEX-like), 1h buckets aligned to each window's open.
    g_open = i64([570, 780]) * MINUTE
    g_close = i64([720, 960]) * MINUTE
    ts = np.r_[np.arange(570, 720), np.arange(780, 960)].astype(np.int64) * MINUTE
    got, out = run_aggregate(*flat_bars(ts), g_open, g_close,
                             base_slots(g_open, g_close, MINUTE), H, MINUTE)
    assert (out["ts"] // MINUTE).tolist() == [570, 630, 690, 780, 840, 900]
    assert out["count"].tolist() == [60, 60, 30, 60, 60, 60]
    assert out["coverage"].tolist() == [1.0] * 6


def test_aggregate_session_buckets_with_base_slots():
    # step 0: one bucket per grid window (a session of two windows, 150 + 180 base slots).
    g_open, g_close, g_base = i64([570 * MINUTE]), i64([960 * MINUTE]), i64([330])
    ts = np.r_[np.arange(570, 720, 2), np.arange(780, 960)].astype(np.int64) * MINUTE
    got, out = run_aggregate(*flat_bars(ts), g_open, g_close, g_base, 0, MINUTE)
    assert got == (1, FAULT_NONE, -1)
    assert out["count"].tolist() == [75 + 180]
    assert out["coverage"].tolist() == [255 / 330]


def test_aggregate_session_grid_checks_no_alignment():
    # A session [0, 100) whose afternoon window opens at 45 (base 10): its bars 45, 55 are
    # on their own window's grid, not on the session open's; the caller checks them.
    got, out = run_aggregate(*flat_bars([0, 10, 45, 55]), [0], [100], [8], 0, 10)
    assert got == (1, FAULT_NONE, -1)
    assert out["count"].tolist() == [4] and out["coverage"].tolist() == [0.5]


def test_aggregate_sessions_many_windows():
    g_open = i64([0, 100, 200]) * MINUTE
    g_close = i64([50, 150, 260]) * MINUTE
    ts = i64([0, 49, 120, 259]) * MINUTE
    got, out = run_aggregate(*flat_bars(ts), g_open, g_close, [50, 50, 60], 0, MINUTE)
    assert (out["ts"] // MINUTE).tolist() == [0, 100, 200]
    assert out["count"].tolist() == [2, 1, 1]


@pytest.mark.parametrize("origin", [T1900, T2200], ids=["1900", "2200"])
def test_aggregate_huge_timestamps(origin):
    g_open = i64([origin, origin + 10 * H])
    g_close = i64([origin + 7 * H, origin + 17 * H])
    ts = np.r_[np.arange(origin, origin + 7 * H, 7 * MINUTE),
               np.arange(origin + 10 * H, origin + 17 * H, 3 * MINUTE)].astype(np.int64)
    ts = ts[(ts - origin) % MINUTE == 0]
    got, out = run_aggregate(*flat_bars(ts), g_open, g_close,
                             base_slots(g_open, g_close, MINUTE), 2 * H, MINUTE)
    assert got[1] == FAULT_NONE
    assert ((out["ts"] - origin) // H).tolist() == [0, 2, 4, 6, 10, 12, 14, 16]


@pytest.mark.parametrize(
    "ts, fault, row, n_out",
    [
        ([0, 4, 4], FAULT_UNSORTED, 2, 0),          # duplicate: out of order for this kernel
        ([0, 6, 4], FAULT_UNSORTED, 2, 0),
        ([0, 12, 10], FAULT_UNSORTED, 2, 1),         # out of order across buckets
        ([0, 30], FAULT_OUTSIDE, 1, 1),              # in the pause
        ([0, 60], FAULT_OUTSIDE, 1, 1),              # after the last window
        ([-2, 0], FAULT_OUTSIDE, 0, 0),              # before the first window
        ([0, 3], FAULT_MISALIGNED, 1, 0),            # same bucket, off the 2-minute grid
        ([0, 13], FAULT_MISALIGNED, 1, 1),           # next bucket, off the grid
        ([0, 41], FAULT_MISALIGNED, 1, 1),           # second window, off its grid
    ],
)
def test_aggregate_faults(ts, fault, row, n_out):
    g_open, g_close = i64([0, 40]) * MINUTE, i64([25, 50]) * MINUTE
    got, _ = run_aggregate(*flat_bars(i64(ts) * MINUTE), g_open, g_close,
                           base_slots(g_open, g_close, 2 * MINUTE), 10 * MINUTE, 2 * MINUTE)
    assert got == (n_out, fault, row)


@pytest.mark.parametrize("cap", [0, 1, 2, 3])
def test_aggregate_overflow(cap):
    ts = i64([0, 1, 10, 25]) * MINUTE
    got, out = run_aggregate(*flat_bars(ts), [0], [H], [60], 10 * MINUTE, MINUTE, cap=cap)
    if cap >= 3:
        assert got == (3, FAULT_NONE, -1)
    else:
        assert got[1] == FAULT_OVERFLOW
        assert got[0] == cap


def test_aggregate_touching_windows_short_last_bucket():
    """Windows [0, 25) and [25, 50) touch (like the UTC days of a 24/7 calendar); 10-minute
    buckets leave a short [20, 25) at the end of the first.  A bar at 26 belongs to the bucket
    [25, 35) of the second window, not to [20, 25)."""
    g_open, g_close = i64([0, 25]) * MINUTE, i64([25, 50]) * MINUTE
    ts = i64([15, 26]) * MINUTE
    got, out = run_aggregate(*flat_bars(ts), g_open, g_close, [25, 25], 10 * MINUTE, MINUTE)
    assert (out["ts"] // MINUTE).tolist() == [10, 25]
    assert out["coverage"].tolist() == [0.1, 0.1]


def test_aggregate_bar_after_close_is_outside():
    """A bar after the close but within one step of the last bucket's start is outside
    (XNYS 1h: the 15:30 bucket ends at 16:00; a bar at 16:10 must not join it)."""
    g_open, g_close = i64([570]) * MINUTE, i64([960]) * MINUTE
    ts = i64([885, 970]) * MINUTE   # 14:45 and 16:10
    got, _ = run_aggregate(*flat_bars(ts), g_open, g_close, [390], H, MINUTE)
    assert got == (1, FAULT_OUTSIDE, 1)


def test_bucket_capacity_examples():
    g_open, g_close = i64([0, 40, 100]), i64([25, 50, 130])
    for first, last in [(0, 129), (25, 39), (24, 40), (50, 99), (-5, 1000), (200, 300), (0, 0)]:
        for step in (0, 1, 7, 10, 100):
            assert aggregation.bucket_capacity(g_open, g_close, step, first, last) == \
                ref.bucket_capacity(g_open, g_close, step, first, last)
    assert aggregation.bucket_capacity(g_open, g_close, 10, 0, 129) == 3 + 1 + 3
    assert aggregation.bucket_capacity(i64([]), i64([]), 10, 0, 129) == 0


def test_kernels_reject_non_contiguous():
    ts = np.arange(20, dtype=np.int64)[::2]
    with pytest.raises(ValueError):
        gaps.find_gaps_slots(ts, i64([0]), i64([100]), 2, I64_MAX,
                             np.empty(20, np.int64), np.empty(20, np.int64))


# --------------------------------------------------------------------------- gaps


def run_gaps(ts, g_open, g_close, step_ns, until=I64_MAX, cap=None):
    inputs = readonly(i64(ts), i64(g_open), i64(g_close))
    before = [a.copy() for a in inputs]
    if cap is None:
        cap = len(ts) + len(g_open) + 1
    sk, ck = np.full(cap, -7, np.int64), np.full(cap, -7, np.int64)
    sr, cr = sk.copy(), ck.copy()
    got = gaps.find_gaps_slots(*inputs, step_ns, until, sk, ck)
    want = ref.find_gaps_slots(*inputs, step_ns, until, sr, cr)
    assert_unchanged(before, inputs)
    assert all(type(x) is int for x in got), got
    assert got == want
    np.testing.assert_array_equal(sk, sr)
    np.testing.assert_array_equal(ck, cr)
    k = min(got[0], cap)
    return got, list(zip(sk[:k].tolist(), ck[:k].tolist()))


def test_gaps_empty_bars_one_window():
    got, runs = run_gaps([], [0], [10], 1)
    assert got == (1, 10, 0, 10, FAULT_NONE, -1)
    assert runs == [(0, 10)]


def test_gaps_no_window():
    assert run_gaps([], [], [], 1)[0] == (0, 0, 0, 0, FAULT_NONE, -1)
    assert run_gaps([3], [], [], 1)[0] == (0, 0, 0, 0, FAULT_OUTSIDE, 0)


def test_gaps_all_present():
    got, runs = run_gaps(np.arange(10), [0], [10], 1)
    assert got == (0, 10, 10, 0, FAULT_NONE, -1)


def test_gaps_all_missing_many_windows():
    got, runs = run_gaps([], [0, 20, 30], [10, 25, 47], 5)
    # Slots: [0,5) [5,10) | [20,25) | [30,35) [35,40) [40,45) [45,47)
    assert runs == [(0, 2), (20, 1), (30, 4)]
    assert got == (3, 7, 0, 7, FAULT_NONE, -1)


def test_gaps_never_cross_a_touching_window():
    got, runs = run_gaps([0, 35], [0, 25], [25, 50], 10)
    # Slots [0,10) [10,20) [20,25) | [25,35) [35,45) [45,50)
    assert runs == [(10, 2), (25, 1), (45, 1)]


def test_gaps_one_bar_middle():
    got, runs = run_gaps([50], [0], [100], 10)
    assert runs == [(0, 5), (60, 4)]
    assert got == (2, 10, 1, 9, FAULT_NONE, -1)


@pytest.mark.parametrize("until", [I64_MIN, -5, 0, 1, 9, 10, 11, 25, 26, 30, 34, 35, 39, 40,
                                   44, 47, 48, 99, I64_MAX])
def test_gaps_until(until):
    # Windows [0, 25) and [35, 47); step 10: slots end at 10, 20, 25 | 45, 47.
    run_gaps([0, 20, 35], [0, 35], [25, 47], 10, until)


def test_gaps_until_mid_slot_examples():
    # until inside the slot [20, 25): its bar does not count yet, nor its absence.
    got, runs = run_gaps([0, 20], [0, 35], [25, 47], 10, 22)
    assert got == (1, 2, 1, 1, FAULT_NONE, -1)
    assert runs == [(10, 1)]
    # until inside the second window: its first slot closed at 45 and is missing.
    got, runs = run_gaps([0, 20], [0, 35], [25, 47], 10, 46)
    assert runs == [(10, 1), (35, 1)]
    assert got[1:4] == (4, 2, 2)


def test_gaps_session_slots():
    # Each grid window is one slot, so each missing session is a run of its own.
    got, runs = run_gaps([100], [0, 100, 200, 300], [50, 180, 260, 390], 0)
    assert runs == [(0, 1), (200, 1), (300, 1)]
    assert got == (3, 4, 1, 3, FAULT_NONE, -1)
    got, runs = run_gaps([100], [0, 100, 200, 300], [50, 180, 260, 390], 0, 300)
    assert got == (2, 3, 1, 2, FAULT_NONE, -1)


@pytest.mark.parametrize(
    "ts, fault, row",
    [
        ([0, 20, 20], FAULT_UNSORTED, 2),
        ([0, 20, 10], FAULT_UNSORTED, 2),
        ([0, 30], FAULT_OUTSIDE, 1),
        ([0, 60], FAULT_OUTSIDE, 1),
        ([-10], FAULT_OUTSIDE, 0),
        ([0, 15], FAULT_MISALIGNED, 1),
        ([0, 36], FAULT_MISALIGNED, 1),
    ],
)
def test_gaps_faults(ts, fault, row):
    got, _ = run_gaps(ts, [0, 35], [25, 47], 10)
    assert got[4:] == (fault, row)
    assert got[1] == 0


def test_gaps_bars_after_until_are_not_checked():
    got, _ = run_gaps([0, 30, 20], [0, 35], [25, 47], 10, until=25)
    assert got == (1, 3, 1, 2, FAULT_NONE, -1)


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_gaps_more_runs_than_room(cap):
    got, runs = run_gaps([10, 30], [0], [50], 10, cap=cap)
    assert got[0] == 3 and len(runs) == min(cap, 3)


def test_gaps_out_arrays_differ():
    with pytest.raises(ValueError):
        gaps.find_gaps_slots(i64([]), i64([0]), i64([10]), 1, I64_MAX,
                             np.empty(3, np.int64), np.empty(2, np.int64))


@pytest.mark.parametrize("origin", [T1900, T2200], ids=["1900", "2200"])
def test_gaps_huge_timestamps(origin):
    g_open = i64([origin, origin + 10 * H])
    g_close = i64([origin + 7 * H, origin + 17 * H])
    ts = i64([origin + 3 * H, origin + 10 * H, origin + 16 * H])
    got, runs = run_gaps(ts, g_open, g_close, H)
    assert runs == [(origin, 3), (origin + 4 * H, 3), (origin + 11 * H, 5)]
    run_gaps(ts, g_open, g_close, H, until=origin + 11 * H + 1)


# --------------------------------------------------------------------------- quality


def run_quality(ts, coverage, g_open, g_close, step_ns, until=I64_MAX):
    inputs = readonly(i64(ts), f64(coverage), i64(g_open), i64(g_close))
    before = [a.copy() for a in inputs]
    got = quality.score_quality(*inputs, step_ns, until)
    want = ref.score_quality(*inputs, step_ns, until)
    assert_unchanged(before, inputs)
    assert [type(x) for x in got] == [int, int, float, int]
    assert got == want
    return got


def test_quality_examples():
    assert run_quality([], [], [0], [10], 1) == (10, 0, 0.0, 0)
    assert run_quality([], [], [], [], 1) == (0, 0, 0.0, 0)
    assert run_quality([0, 5], [], [0], [10], 5) == (2, 2, 2.0, 0)
    assert run_quality([0, 10], [1.0, 0.6], [0, 10], [10, 20], 5) == (4, 2, 1.6, 1)
    # until inside the second bar's slot: it does not count, and neither does its slot.
    assert run_quality([0, 10], [1.0, 0.6], [0, 10], [10, 20], 5, until=12) == (2, 1, 1.0, 0)
    assert run_quality([0, 10], [1.0, 0.6], [0, 10], [10, 20], 5, until=15) == (3, 2, 1.6, 1)
    # Session slots (step 0).
    assert run_quality([0], [0.5], [0, 100], [50, 180], 0) == (2, 1, 0.5, 1)
    assert run_quality([0, 100], [0.5, 1.0], [0, 100], [50, 180], 0, until=179) == \
        (1, 1, 0.5, 1)


@pytest.mark.parametrize("until", [I64_MIN, 0, 4, 5, 9, 10, 23, 24, 25, 26, 30, I64_MAX])
def test_quality_until(until):
    # Windows [0, 10) and [20, 27); step 5 (short last slot [25, 27)).
    run_quality([0, 5, 20, 25], [1.0, 0.2, 0.4, 1.0], [0, 20], [10, 27], 5, until)
    run_quality([0, 5, 20, 25], [], [0, 20], [10, 27], 5, until)


def test_quality_coverage_length():
    with pytest.raises(ValueError):
        quality.score_quality(i64([0, 1]), f64([1.0]), i64([0]), i64([10]), 1, I64_MAX)


# --------------------------------------------------------------------------- validation


def run_validate(ts, o, h, lo, c, v, w_open, w_close, base_ns, stop_at_first=False,
                 last_ns=I64_MIN, record=True):
    inputs = readonly(i64(ts), f64(o), f64(h), f64(lo), f64(c), f64(v), i64(w_open),
                      i64(w_close))
    before = [a.copy() for a in inputs]
    n = len(ts) if record else 0
    fk, fr = np.full(n, 99, np.uint8), np.full(n, 99, np.uint8)
    got = validation.validate_bars(*inputs, base_ns, fk, stop_at_first, last_ns)
    want = ref.validate_bars(*inputs, base_ns, fr, stop_at_first, last_ns)
    assert_unchanged(before, inputs)
    assert type(got[0]) is int and len(got[1]) == ref.N_FAULTS
    assert got == want
    np.testing.assert_array_equal(fk, fr)
    return got, fk.tolist()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "bar, fault",
    [
        ((1.0, 2.0, 0.5, 1.5, 3.0), FAULT_NONE),
        ((NAN, 2.0, 0.5, 1.5, 3.0), FAULT_NONFINITE),
        ((1.0, INF, 0.5, 1.5, 3.0), FAULT_NONFINITE),
        ((1.0, 2.0, -INF, 1.5, 3.0), FAULT_NONFINITE),
        ((1.0, 2.0, 0.5, NAN, 3.0), FAULT_NONFINITE),
        ((1.0, 0.5, 2.0, 1.5, 3.0), FAULT_HIGH_LOW),     # high < low
        ((1.0, 1.2, 0.5, 1.5, 3.0), FAULT_HIGH_LOW),     # high < close
        ((1.0, 2.0, 1.2, 1.5, 3.0), FAULT_HIGH_LOW),     # low > open
        ((1.0, 2.0, 0.5, 0.4, 3.0), FAULT_HIGH_LOW),     # low > close
        ((1.0, 2.0, 0.5, 1.5, -1.0), FAULT_VOLUME),
        ((1.0, 2.0, 0.5, 1.5, NAN), FAULT_VOLUME),
        ((1.0, 2.0, 0.5, 1.5, 0.0), FAULT_NONE),
        ((1.0, 2.0, 0.5, 1.5, -0.0), FAULT_NONE),
        ((NAN, 0.5, 2.0, 1.5, -1.0), FAULT_NONFINITE),   # the first fault in order wins
        ((1.0, 0.5, 2.0, 1.5, -1.0), FAULT_HIGH_LOW),
    ],
)
def test_validate_prices(bar, fault):
    cols = [[x] for x in bar]
    (first, counts), faults = run_validate([0], *cols, [], [], 0)
    assert faults == [fault]
    assert first == (-1 if fault == FAULT_NONE else 0)


def test_validate_order_and_sessions():
    ts = i64([0, 2, 2, 1, 4, 30, 6, 41, 50, 44, 46])
    n = len(ts)
    ok = np.ones(n)
    (first, counts), faults = run_validate(ts, ok, ok, ok, ok, ok, [0, 40], [25, 47], 2)
    assert faults == [0, 0, FAULT_DUPLICATE, FAULT_UNSORTED, 0, FAULT_OUTSIDE, 0,
                      FAULT_MISALIGNED, FAULT_OUTSIDE, 0, 0]
    assert first == 2
    # Stop at the first fault: nothing after it is written.
    (first, counts), faults = run_validate(ts, ok, ok, ok, ok, ok, [0, 40], [25, 47], 2,
                                           stop_at_first=True)
    assert first == 2 and faults[3:] == [99] * (n - 3) and sum(counts) == 1
    # Without windows, only order is checked; with base_ns 0, no alignment.
    _, faults = run_validate(ts, ok, ok, ok, ok, ok, [], [], 2)
    assert faults == [0, 0, FAULT_DUPLICATE, FAULT_UNSORTED, 0, 0, FAULT_UNSORTED, 0, 0,
                      FAULT_UNSORTED, FAULT_UNSORTED]
    _, faults = run_validate(ts, ok, ok, ok, ok, ok, [0, 40], [25, 47], 0)
    assert faults[7] == 0
    # Not recording the faults.
    run_validate(ts, ok, ok, ok, ok, ok, [0, 40], [25, 47], 2, record=False)


def test_validate_rejected_late_bar_does_not_move_the_cursor():
    ts = i64([5, 25, 6, 7, 21])
    o = f64([1, NAN, 1, 1, 1])
    ok = np.ones(5)
    _, faults = run_validate(ts, o, ok, ok, ok, ok, [0, 20], [10, 30], 1)
    assert faults == [0, FAULT_NONFINITE, 0, 0, 0]
    _, faults = run_validate(i64([5, 15, 6]), *[np.ones(3)] * 5, [0, 20], [10, 30], 1)
    assert faults == [0, FAULT_OUTSIDE, 0]


def test_validate_last_ns():
    ok = np.ones(3)
    _, faults = run_validate([10, 11, 12], ok, ok, ok, ok, ok, [], [], 0, last_ns=10)
    assert faults == [FAULT_DUPLICATE, 0, 0]
    _, faults = run_validate([10, 11, 12], ok, ok, ok, ok, ok, [], [], 0, last_ns=11)
    assert faults == [FAULT_UNSORTED, FAULT_DUPLICATE, 0]


def test_validate_faults_length():
    with pytest.raises(ValueError):
        validation.validate_bars(i64([0, 1]), *[np.ones(2)] * 5, i64([]), i64([]), 0,
                                 np.empty(1, np.uint8), False)


def test_validate_empty():
    assert run_validate([], [], [], [], [], [], [0], [10], 1)[0] == (-1, [0] * ref.N_FAULTS)


# --------------------------------------------------------------------------- properties


def mutate(ts: np.ndarray, grid, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Break the data contract once: out of order, duplicate, off grid or outside."""
    ts = ts.copy()
    if kind == "none" or len(ts) == 0:
        return ts
    i = int(rng.integers(len(ts)))
    if kind == "swap" and len(ts) > 1:
        j = min(i + 1, len(ts) - 1) if i < len(ts) - 1 else i - 1
        ts[i], ts[j] = ts[j], ts[i]
    elif kind == "dup" and len(ts) > 1:
        j = i + 1 if i < len(ts) - 1 else i - 1
        ts[j] = ts[i]
    elif kind == "shift":
        ts[i] += int(rng.integers(1, grid.base_ns)) if grid.base_ns > 1 else 1
    elif kind == "outside":
        cands = [int(grid.w_open[0]) - 1, int(grid.w_close[-1])]
        cands += [int(c) for c, o in zip(grid.w_close[:-1], grid.w_open[1:]) if o > c]
        t = cands[int(rng.integers(len(cands)))]
        ts = np.sort(np.r_[ts, t]).astype(np.int64)
    return ts


MUTATIONS = st.sampled_from(["none"] * 6 + ["swap", "dup", "shift", "outside"])


@given(grid=grids(), step_mult=st.integers(0, 7), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1), kind=MUTATIONS, cap_mode=st.sampled_from(
           ["bound", "bound", "exact", "short"]))
def test_aggregate_property(grid, step_mult, density, seed, kind, cap_mode):
    rng = np.random.default_rng(seed)
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    ts = mutate(ts, grid, rng, kind)
    o, h, lo, c, v = ref.random_prices(rng, len(ts))
    step = step_mult * grid.base_ns
    g_open, g_close, g_base, _g_last = grid.derived(step)
    if cap_mode == "bound":
        cap = len(ts)
        if len(ts):
            cap = min(cap, aggregation.bucket_capacity(g_open, g_close, step,
                                                       int(ts.min()), int(ts.max())))
    elif cap_mode == "exact":
        cap = len(ts) + 2
    else:
        cap = int(rng.integers(0, len(ts) + 1))
    run_aggregate(ts, o, h, lo, c, v, g_open, g_close, g_base, step, grid.base_ns, cap=cap)


@given(grid=grids(), step_mult=st.integers(0, 7), a=st.integers(-50, 400),
       b=st.integers(-50, 400))
def test_bucket_capacity_property(grid, step_mult, a, b):
    step = step_mult * grid.base_ns
    g_open, g_close, _, _g_last = grid.derived(step)
    unit = max(grid.base_ns // 5, 1)
    first = int(g_open[0]) + min(a, b) * unit
    last = int(g_open[0]) + max(a, b) * unit
    got = aggregation.bucket_capacity(g_open, g_close, step, first, last)
    assert got == ref.bucket_capacity(g_open, g_close, step, first, last)


@given(grid=grids(), step_mult=st.integers(0, 7), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_bucket_capacity_bounds_buckets(grid, step_mult, density, seed):
    rng = np.random.default_rng(seed)
    step = step_mult * grid.base_ns
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    if len(ts) == 0:
        return
    g_open, g_close, g_base, _g_last = grid.derived(step)
    out = ref.aggregate_expected(ts, o, h, lo, c, v, g_open, g_close, g_base, step,
                                 grid.base_ns)
    cap = aggregation.bucket_capacity(g_open, g_close, step, int(ts[0]), int(ts[-1]))
    assert len(out["ts"]) <= cap


def until_choices(grid, rng, choice):
    if choice == "max":
        return I64_MAX
    if choice == "min":
        return I64_MIN
    lo = int(grid.w_open[0]) - 3 * grid.base_ns
    hi = int(grid.w_close[-1]) + 3 * grid.base_ns
    if choice == "any":
        return int(rng.integers(lo, hi + 1))
    edges = np.r_[grid.w_open, grid.w_close, grid.slot_starts()]
    return int(rng.choice(edges)) + int(rng.integers(-1, 2))


UNTIL = st.sampled_from(["max", "any", "any", "edge", "edge", "min"])


@given(grid=grids(), step_mult=st.integers(0, 5), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1), kind=MUTATIONS, until=UNTIL,
       short_cap=st.booleans())
def test_find_gaps_property(grid, step_mult, density, seed, kind, until, short_cap):
    rng = np.random.default_rng(seed)
    step = grid.base_ns if step_mult <= 1 else 0 if step_mult == 2 else step_mult * grid.base_ns
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    if step_mult <= 1:
        # Base slots: the bars themselves.
        g_open, g_close = grid.w_open, grid.w_close
    else:
        # Derived slots (or sessions for step 0): the starts of the derived bars.
        g_open, g_close, g_base, _g_last = grid.derived(step)
        ts = ref.aggregate_expected(ts, o, h, lo, c, v, g_open, g_close, g_base, step,
                                    grid.base_ns)["ts"]
    ts = mutate(ts, grid, rng, kind)
    cap = int(rng.integers(0, 4)) if short_cap else None
    run_gaps(ts, g_open, g_close, step, until_choices(grid, rng, until), cap=cap)


@given(grid=grids(), step_mult=st.integers(0, 5), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1), until=UNTIL)
def test_score_quality_property(grid, step_mult, density, seed, until):
    rng = np.random.default_rng(seed)
    step = grid.base_ns if step_mult <= 1 else 0 if step_mult == 2 else step_mult * grid.base_ns
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    if step_mult <= 1:
        g_open, g_close, cov = grid.w_open, grid.w_close, f64([])
    else:
        g_open, g_close, g_base, _g_last = grid.derived(step)
        out = ref.aggregate_expected(ts, o, h, lo, c, v, g_open, g_close, g_base, step,
                                     grid.base_ns)
        ts, cov = out["ts"], out["coverage"]
    run_quality(ts, cov, g_open, g_close, step, until_choices(grid, rng, until))


@given(grid=grids(), density=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       n_bad=st.integers(0, 6), sessions=st.booleans(), check_grid=st.booleans(),
       stop=st.booleans(), last=st.sampled_from(["none", "before", "inside"]))
def test_validate_property(grid, density, seed, n_bad, sessions, check_grid, stop, last):
    rng = np.random.default_rng(seed)
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    cols = [o.copy(), h.copy(), lo.copy(), c.copy(), v.copy()]
    for _ in range(n_bad):
        kind = rng.choice(["nan", "inf", "hl", "vol", "swap", "dup", "shift", "outside"])
        if kind in ("swap", "dup", "shift", "outside"):
            new = mutate(ts, grid, rng, kind)
            if len(new) != len(ts):  # an inserted bar: give it sound prices
                pos = int(np.flatnonzero(np.r_[new[: len(ts)] != ts, True])[0])
                cols = [np.insert(col, pos, col[pos - 1] if pos else 1.0) for col in cols]
            ts = new
        elif len(ts):
            i = int(rng.integers(len(ts)))
            if kind == "nan":
                cols[int(rng.integers(5))][i] = NAN
            elif kind == "inf":
                cols[int(rng.integers(4))][i] = -INF if rng.random() < 0.5 else INF
            elif kind == "hl":
                cols[1][i], cols[2][i] = cols[2][i] - 1.0, cols[1][i] + 1.0
            else:
                cols[4][i] = -1.0 - cols[4][i]
    w_open, w_close = (grid.w_open, grid.w_close) if sessions else (i64([]), i64([]))
    base = grid.base_ns if check_grid else 0
    last_ns = {"none": I64_MIN, "before": int(grid.w_open[0]) - 1,
               "inside": int(ts[len(ts) // 2]) if len(ts) else I64_MIN}[last]
    run_validate(ts, *cols, w_open, w_close, base, stop_at_first=stop, last_ns=last_ns)


# --------------------------------------------------------------------------- score_groups


def run_score_groups(ts, cov, starts):
    ts, cov, starts = (np.ascontiguousarray(a) for a in (ts, cov, starts))
    before = [a.copy() for a in (ts, cov, starts)]
    for a in (ts, cov, starts):
        a.flags.writeable = False  # read-only inputs must work
    ng = len(starts)
    present = np.full(ng, -7, np.int64)       # garbage: the kernel overwrites every value
    covered = np.full(ng, np.nan)
    partial = np.full(ng, -7, np.int64)
    quality.score_groups(ts, cov, starts, present, covered, partial)
    want = ref.score_groups(ts, cov, starts)
    assert present.tolist() == want[0]
    np.testing.assert_allclose(covered, want[1], rtol=0, atol=1e-9)
    assert partial.tolist() == want[2]
    assert present.dtype == np.int64 and covered.dtype == np.float64
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip((ts, cov, starts), before))


@given(n=st.integers(0, 60), ng=st.integers(0, 8), seed=st.integers(0, 2**32 - 1),
       weighted=st.booleans())
def test_score_groups_property(n, ng, seed, weighted):
    """The engine's per-session quality kernel against its reference: bars before the first
    group, groups with no bar, ties on a group start, partial coverage, huge timestamps."""
    rng = np.random.default_rng(seed)
    lo = int(rng.choice([0, -(2**62), 2**62 - 10_000]))
    ts = np.unique(rng.integers(lo, lo + 1000, n)).astype(np.int64)
    starts = np.unique(rng.integers(lo - 50, lo + 1050, ng)).astype(np.int64)
    if len(ts) and len(starts) and rng.random() < 0.5:  # a bar exactly on a group start
        starts[rng.integers(len(starts))] = ts[rng.integers(len(ts))]
        starts = np.unique(starts)
    cov = (np.where(rng.random(len(ts)) < 0.3, rng.random(len(ts)), 1.0) if weighted
           else np.empty(0, np.float64))
    run_score_groups(ts, cov, starts)


def test_score_groups_edges():
    run_score_groups(i64([]), f64([]), i64([]))
    run_score_groups(i64([5]), f64([]), i64([]))            # no group: nothing counted
    run_score_groups(i64([1, 2, 3]), f64([]), i64([10]))    # every bar before the groups
    run_score_groups(i64([10, 20]), f64([0.5, 1.0]), i64([10, 20, 30]))
    strided = np.arange(20, dtype=np.int64)[::2]
    with pytest.raises(ValueError):                          # ::1 is required
        quality.score_groups(strided, f64([]), i64([0]), np.empty(1, np.int64),
                              np.empty(1), np.empty(1, np.int64))
    with pytest.raises(ValueError, match="coverage has 1 values for 2 bars"):
        quality.score_groups(i64([1, 2]), f64([1.0]), i64([0]), np.empty(1, np.int64),
                              np.empty(1), np.empty(1, np.int64))
