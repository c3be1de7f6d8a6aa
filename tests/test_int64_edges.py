"""The kernels at the int64 edges (issue 11 item 4): windows that open at the int64 minimum,
close at the maximum or span the whole range, steps as long as a quarter of it, and
``until_ns`` at both ends.  Every kernel is compared with its Python reference
(tests/reference.py), whose integers cannot overflow; counts that int64 cannot hold are an
OverflowError, never a wrong number.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sessiondata._core import aggregation, gaps, quality, stream

import reference as ref
from reference import I64_MAX as MAX, I64_MIN as MIN

MINUTE = 60_000_000_000
Q = 2**62  # a quarter of the int64 range


def arr(*values) -> np.ndarray:
    return np.array(values, np.int64)


# (name, g_open, g_close, step_ns, base_ns): grids whose slot arithmetic leaves int64 if done
# naively (end = start + step, close - open, ts - open, ts + step ...).
GRIDS = [
    ("whole-range, step 2^62", arr(MIN), arr(MAX), Q, Q),
    ("whole-range, odd step", arr(MIN), arr(MAX), 3 * 10**18 + 7, 3 * 10**18 + 7),
    ("whole-range, 4 base per bucket", arr(MIN), arr(MAX), Q, Q // 4),
    ("whole-range session slot", arr(MIN), arr(MAX), 0, Q),
    ("two halves", arr(MIN, 0), arr(0, MAX), Q, Q // 2),
    ("halves apart, session slots", arr(MIN, 5), arr(-5, MAX), 0, 2**61),
    ("minutes closing at max", arr(MAX - 17 * MINUTE - 5), arr(MAX), 5 * MINUTE, MINUTE),
    ("minutes closing at max, aligned", arr(MAX - 15 * MINUTE), arr(MAX), 5 * MINUTE, MINUTE),
    ("minutes opening at min", arr(MIN), arr(MIN + 17 * MINUTE + 5), 5 * MINUTE, MINUTE),
    ("minutes at both ends", arr(MIN, MAX - 13 * MINUTE - 1),
     arr(MIN + 13 * MINUTE + 1, MAX), 5 * MINUTE, MINUTE),
    ("one-minute bucket at max", arr(MAX - 3 * MINUTE + 1), arr(MAX), MINUTE, MINUTE),
    ("short window at max", arr(MAX - 7), arr(MAX), 5, 1),
    ("short window at min", arr(MIN), arr(MIN + 7), 5, 1),
    ("step longer than the window", arr(MAX - 100), arr(MAX), Q, 8),
]
IDS = [g[0] for g in GRIDS]
UNTILS = [MAX, MAX - 1, MIN, MIN + 1, 0, MAX - 2 * MINUTE - 3, MIN + 7 * MINUTE]


def slot_starts(g_open, g_close, step):
    return np.array([s for _w, s, _e in ref.all_slots(g_open, g_close, step)], np.int64)


def subsets(starts: np.ndarray, seed: int):
    """Every bar, none, the first, the last, and random halves of the slot starts."""
    rng = np.random.default_rng(seed)
    yield starts
    yield starts[:0]
    yield starts[:1]
    yield starts[-1:]
    yield starts[1:]
    yield starts[:-1]
    for _ in range(4):
        yield starts[rng.random(len(starts)) < 0.5]


def prices(n: int, seed: int = 0):
    return ref.random_prices(np.random.default_rng(seed), n)


@pytest.mark.parametrize("name,g_open,g_close,step,base", GRIDS, ids=IDS)
def test_find_gaps_slots_at_the_edges(name, g_open, g_close, step, base):
    starts = slot_starts(g_open, g_close, step)
    for ts, until in itertools.product(list(subsets(starts, 1)), UNTILS):
        cap = len(ts) + len(g_open) + 1
        got_s, got_c = np.full(cap, -7, np.int64), np.full(cap, -7, np.int64)
        exp_s, exp_c = got_s.copy(), got_c.copy()
        got = gaps.find_gaps_slots(ts, g_open, g_close, step, until, got_s, got_c)
        exp = ref.find_gaps_slots(ts, g_open, g_close, step, until, exp_s, exp_c)
        assert got == exp, (name, ts.tolist(), until)
        np.testing.assert_array_equal(got_s[:got[0]], exp_s[:exp[0]])
        np.testing.assert_array_equal(got_c[:got[0]], exp_c[:exp[0]])


@pytest.mark.parametrize("name,g_open,g_close,step,base", GRIDS, ids=IDS)
def test_score_quality_at_the_edges(name, g_open, g_close, step, base):
    starts = slot_starts(g_open, g_close, step)
    for ts, until in itertools.product(list(subsets(starts, 2)), UNTILS):
        for coverage in (np.empty(0), np.linspace(0.25, 1.0, len(ts))):
            got = quality.score_quality(ts, coverage, g_open, g_close, step, until)
            exp = ref.score_quality(ts, coverage, g_open, g_close, step, until)
            assert got[0] == exp[0] and got[1] == exp[1] and got[3] == exp[3], (name, until)
            assert got[2] == pytest.approx(exp[2])


@pytest.mark.parametrize("name,g_open,g_close,step,base", GRIDS, ids=IDS)
def test_aggregate_bars_at_the_edges(name, g_open, g_close, step, base):
    base_starts = slot_starts(g_open, g_close, base)
    base_slots = np.array([ref.ceil_div(int(c) - int(o), base) for o, c in zip(g_open, g_close)],
                          np.int64)
    if step == 0:
        g_base = np.array([base_slots.sum()], np.int64)
        go, gc = arr(int(g_open[0])), arr(int(g_close[-1]))
    else:
        g_base, go, gc = base_slots, g_open, g_close
    for k, ts in enumerate(subsets(base_starts, 3)):
        o, h, lo, c, v = prices(len(ts), k)
        got_out, exp_out = ref.new_outputs(len(ts)), ref.new_outputs(len(ts))
        got = aggregation.aggregate_bars(ts, o, h, lo, c, v, go, gc, g_base, step, base,
                                         *got_out)
        exp = ref.aggregate_bars(ts, o, h, lo, c, v, go, gc, g_base, step, base, *exp_out)
        assert got == exp, (name, ts.tolist())
        for col, a, b in zip(ref.OUT_NAMES, got_out, exp_out):
            np.testing.assert_array_equal(a[:got[0]], b[:exp[0]], err_msg=f"{name} {col}")
        # Bucket labels strictly increase: never two buckets with one timestamp.
        labels = got_out[0][:got[0]].tolist()
        assert all(a < b for a, b in zip(labels, labels[1:]))
        if len(ts):
            first, last = int(ts[0]), int(ts[-1])
            assert aggregation.bucket_capacity(go, gc, step, first, last) == \
                ref.bucket_capacity(go, gc, step, first, last)


@pytest.mark.parametrize("name,g_open,g_close,step,base", GRIDS, ids=IDS)
def test_incremental_aggregation_at_the_edges(name, g_open, g_close, step, base):
    """The Aggregator (bar by bar) and the session stream (base bars, derived interval, gap
    counters) make what the batch reference makes."""
    if step == 0:
        return  # session slots over several windows: covered by the stream tests elsewhere
    base_starts = slot_starts(g_open, g_close, base)
    base_slots = np.array([ref.ceil_div(int(c) - int(o), base) for o, c in zip(g_open, g_close)],
                          np.int64)
    for k, ts in enumerate(subsets(base_starts, 4)):
        o, h, lo, c, v = prices(len(ts), k)
        expected = ref.aggregate_expected(ts, o, h, lo, c, v, g_open, g_close, base_slots,
                                          step, base)
        agg = aggregation.Aggregator(g_open, g_close, base_slots, step, base)
        for row in zip(ts.tolist(), o, h, lo, c, v):
            agg.update(*row)
        agg.flush()
        made = agg.drain()
        for col in ref.OUT_NAMES:
            np.testing.assert_array_equal(made[col], expected[col], err_msg=f"{name} {col}")

        s = stream.SymbolStream(g_open, g_close, base)
        kd = s.add_derived(g_open, g_close, base_slots, step)
        for row in zip(ts.tolist(), o, h, lo, c, v):
            assert s.push(*row) == 0
        s.flush()
        assert s.bars()["ts"].tolist() == ts.tolist()
        made = s.bars(kd)
        for col in ref.OUT_NAMES:
            np.testing.assert_array_equal(made[col], expected[col], err_msg=f"{name} {col}")
        # Live gap counters of the base: every slot up to the last bar's.
        if len(ts):
            w = ref.window_of(g_open, g_close, int(ts[-1]))
            until = ref.slot_of(g_open, g_close, w, base, int(ts[-1]))[1]
            runs = np.empty(len(ts) + len(g_open) + 1, np.int64)
            n_runs, _e, present, missing, _f, _r = ref.find_gaps_slots(
                ts, g_open, g_close, base, until, runs, runs.copy())
            assert s.gap_counters() == (present, missing, n_runs), name


@pytest.mark.parametrize("name,g_open,g_close,step,base", GRIDS, ids=IDS)
def test_batched_stream_equals_bar_by_bar_at_the_edges(name, g_open, g_close, step, base):
    if step == 0:
        return
    base_starts = slot_starts(g_open, g_close, base)
    base_slots = np.array([ref.ceil_div(int(c) - int(o), base) for o, c in zip(g_open, g_close)],
                          np.int64)
    for k, ts in enumerate(subsets(base_starts, 5)):
        cols = prices(len(ts), k)
        one, many = (stream.SymbolStream(g_open, g_close, base) for _ in range(2))
        for s in (one, many):
            s.add_derived(g_open, g_close, base_slots, step)
        for row in zip(ts.tolist(), *cols):
            one.push(*row)
        assert many.push_many(ts, *cols) == (len(ts), -1, 0)
        assert one.gap_counters() == many.gap_counters()
        assert one.gap_counters(0) == many.gap_counters(0)
        for kk in (-1, 0):
            for col, a in one.bars(kk).items():
                np.testing.assert_array_equal(a, many.bars(kk)[col], err_msg=f"{name} {col}")


def test_counts_beyond_int64_are_an_error_not_a_wrong_number():
    """Slots of one nanosecond over the whole range: 2**64 - 1 of them."""
    go, gc = arr(MIN), arr(MAX)
    out = np.empty(4, np.int64)
    with pytest.raises(OverflowError, match="slots"):
        gaps.find_gaps_slots(arr(), go, gc, 1, MAX, out, out.copy())
    with pytest.raises(OverflowError, match="slots"):
        quality.score_quality(arr(), np.empty(0), go, gc, 1, MAX)
    # Two nanoseconds: 2**63 slots, one more than int64 holds.
    with pytest.raises(OverflowError, match="slots"):
        gaps.find_gaps_slots(arr(), go, gc, 2, MAX, out, out.copy())
    # Three: it fits, and is exact.
    n_runs, expected, present, missing, fault, row = gaps.find_gaps_slots(
        arr(), go, gc, 3, MAX, out, out.copy())
    assert (expected, missing, fault) == (ref.ceil_div(2**64 - 1, 3),) * 2 + (0,)
    assert quality.score_quality(arr(), np.empty(0), go, gc, 3, MAX)[0] == expected
    # An upper bound for an allocation saturates instead.
    assert aggregation.bucket_capacity(go, gc, 1, MIN, MAX) == MAX


def test_bar_end_at_int64_max_moves_the_clock_without_wrapping():
    from sessiondata._core.stream import SymbolCore  # what the registry's entries are
    from sessiondata.session import SessionData  # the compiled per-bar fast path's base

    class Entry(SymbolCore):
        def __init__(self, s):
            self._stream = s

    sd = SessionData()
    s = stream.SymbolStream(arr(MAX - 3 * MINUTE), arr(MAX), MINUTE)
    sd._symbols = {"X": Entry(s)}
    assert sd.add_bar("X", MAX - MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    assert sd._clock == MAX            # saturated: the bar ends past the int64 range


def _edge_grids():
    """Hypothesis strategy: 1-4 windows of a few slots each, packed against the int64 minimum
    or maximum, with a base step and a multiple of it."""
    from hypothesis import strategies as st

    @st.composite
    def build(draw):
        base = draw(st.sampled_from([1, 3, 7, MINUTE, 2**40 + 1, Q // 3]))
        mult = draw(st.sampled_from([1, 2, 5]))
        nw = draw(st.integers(1, 4))
        lengths = [draw(st.integers(1, 12)) * base + draw(st.sampled_from([0, 0, 1, base // 2]))
                   for _ in range(nw)]
        pauses = [draw(st.sampled_from([0, 1, base, 3 * base])) for _ in range(nw)]
        span = sum(lengths) + sum(pauses)
        if span >= 2**63:           # keep it inside int64: fewer, shorter windows
            lengths, pauses = lengths[:1], pauses[:1]
            lengths[0] = min(lengths[0], 2**62)
            span = lengths[0]
        at_max = draw(st.booleans())
        cur = MAX - span - draw(st.integers(0, 3)) if at_max else MIN + draw(st.integers(0, 3))
        opens, closes = [], []
        for length, pause in zip(lengths, pauses):
            cur += pause if opens else 0
            opens.append(cur)
            cur += length
            closes.append(cur)
        if at_max and draw(st.booleans()):
            closes[-1] = MAX        # the last window closes at the int64 maximum
        if not at_max and draw(st.booleans()):
            opens[0] = MIN          # the first opens at the minimum
        return arr(*opens), arr(*closes), base, base * mult

    return build()


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    given = None

if given is not None:
    @settings(max_examples=150, deadline=None)
    @given(grid=_edge_grids(), density=st.floats(0.0, 1.0), seed=st.integers(0, 2**16),
           until_back=st.integers(-2, 40))
    def test_kernels_equal_the_references_near_the_int64_ends(grid, density, seed, until_back):
        g_open, g_close, base, step = grid
        rng = np.random.default_rng(seed)
        starts = slot_starts(g_open, g_close, base)
        ts = starts[rng.random(len(starts)) < density]
        until = max(MIN, int(g_close[-1]) - until_back * base) if until_back >= 0 else MAX
        cap = len(ts) + len(g_open) + 1
        outs = [np.full(cap, -7, np.int64) for _ in range(4)]
        assert gaps.find_gaps_slots(ts, g_open, g_close, base, until, outs[0], outs[1]) == \
            ref.find_gaps_slots(ts, g_open, g_close, base, until, outs[2], outs[3])
        assert quality.score_quality(ts, np.empty(0), g_open, g_close, base, until)[:2] == \
            ref.score_quality(ts, np.empty(0), g_open, g_close, base, until)[:2]
        cols = prices(len(ts), seed)
        base_slots = np.array([ref.ceil_div(int(c) - int(o), base)
                               for o, c in zip(g_open, g_close)], np.int64)
        got_out, exp_out = ref.new_outputs(len(ts)), ref.new_outputs(len(ts))
        got = aggregation.aggregate_bars(ts, *cols, g_open, g_close, base_slots, step, base,
                                         *got_out)
        exp = ref.aggregate_bars(ts, *cols, g_open, g_close, base_slots, step, base, *exp_out)
        assert got == exp
        for a, b in zip(got_out, exp_out):
            np.testing.assert_array_equal(a[:got[0]], b[:exp[0]])
