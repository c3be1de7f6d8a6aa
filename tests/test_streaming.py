"""Invariance: streaming equals batch, chunked equals whole, one thread equals many.

- ``sessiondata._core.aggregation.Aggregator`` fed bar by bar (``update``) or in chunks
  (``update_many``) and then flushed drains exactly the derived bars that the batch kernel
  ``aggregate_bars`` makes from the same bars (all eight columns, bit for bit).
- ``sessiondata._core.stream.SymbolStream`` (``push`` / ``push_many``, derived intervals added
  before, between or after the bars) holds the accepted base bars, the derived bars of the
  batch kernel, the rejected counts of ``validate_bars``, and gap counters equal to
  ``find_gaps_slots`` on the bars it holds.
- The public API gives the same results from a thread pool as sequentially.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from reference import FAULT_NONE, I64_MAX, MINUTE, grids
from sessiondata._core import aggregation, gaps, validation
from sessiondata._core.stream import SymbolStream

COLUMNS = ref.OUT_NAMES


def batch(ts, o, h, lo, c, v, g_open, g_close, g_base, step, base):
    """The derived bars of the batch kernel (which must accept the input)."""
    outs = ref.new_outputs(len(ts))
    m, fault, row = aggregation.aggregate_bars(ts, o, h, lo, c, v, g_open, g_close, g_base,
                                               step, base, *outs)
    assert fault == FAULT_NONE, (fault, row)
    return {k: a[:m] for k, a in zip(COLUMNS, outs)}


def concat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def assert_bars_equal(got: dict, want: dict, names=COLUMNS, volume_rtol=0.0):
    for k in names:
        assert got[k].dtype == want[k].dtype, k
        if k == "volume" and volume_rtol:
            np.testing.assert_allclose(got[k], want[k], rtol=volume_rtol, atol=0, err_msg=k)
        else:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


# A stream may feed a coarse interval from the closed bars of a finer one (5m -> 1h -> 1d):
# the volume is then a sum of partial sums, equal to the batch's running sum up to rounding.
CASCADE_RTOL = 1e-12


def chunk_bounds(rng: np.random.Generator, n: int) -> list[int]:
    """Random cut points 0 = c0 < ... < ck = n (chunks of 1 .. n bars, some empty)."""
    cuts = [0]
    while cuts[-1] < n:
        cuts.append(min(n, cuts[-1] + int(rng.integers(0, max(2, n // 3) + 1))))
    return cuts


STEPS = st.integers(0, 7)


# --------------------------------------------------------------------------- Aggregator


@given(grid=grids(), step_mult=STEPS, density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_aggregator_bar_by_bar_equals_batch(grid, step_mult, density, seed):
    rng = np.random.default_rng(seed)
    step = step_mult * grid.base_ns
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    g_open, g_close, g_base, g_last = grid.derived(step)
    want = batch(ts, o, h, lo, c, v, g_open, g_close, g_base, step, grid.base_ns)
    agg = aggregation.Aggregator(g_open, g_close, g_base, step, grid.base_ns, g_last)
    closed = 0
    for i in range(len(ts)):
        k = agg.update(int(ts[i]), o[i], h[i], lo[i], c[i], v[i])
        assert k in (0, 1, 2)
        closed += k
        assert agg.pending == closed
    closed += agg.flush()
    assert agg.flush() == 0
    got = agg.drain()
    assert agg.pending == 0
    assert closed == len(got["ts"])
    assert_bars_equal(got, want)


@given(grid=grids(), step_mult=STEPS, density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_aggregator_chunks_equal_batch(grid, step_mult, density, seed):
    rng = np.random.default_rng(seed)
    step = step_mult * grid.base_ns
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    g_open, g_close, g_base, g_last = grid.derived(step)
    want = batch(ts, o, h, lo, c, v, g_open, g_close, g_base, step, grid.base_ns)
    agg = aggregation.Aggregator(g_open, g_close, g_base, step, grid.base_ns, g_last)
    parts, closed = [], 0
    cuts = chunk_bounds(rng, len(ts))
    for a, b in zip(cuts[:-1], cuts[1:]):
        closed += agg.update_many(ts[a:b], o[a:b], h[a:b], lo[a:b], c[a:b], v[a:b])
        if rng.random() < 0.5:
            parts.append(agg.drain())
    closed += agg.flush()
    parts.append(agg.drain())
    got = concat(parts)
    assert closed == len(got["ts"])
    assert_bars_equal(got, want)


@given(grid=grids(), step_mult=st.integers(1, 7), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_aggregator_closes_a_bucket_when_its_last_slot_arrives(grid, step_mult, density,
                                                               seed):
    """A derived bar is drained as soon as it is complete or a later bucket starts; advance()
    closes the one being built once its end has passed."""
    rng = np.random.default_rng(seed)
    step = step_mult * grid.base_ns
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    if len(ts) == 0:
        return
    g_open, g_close, g_base, g_last = grid.derived(step)
    want = batch(ts, o, h, lo, c, v, g_open, g_close, g_base, step, grid.base_ns)
    agg = aggregation.Aggregator(g_open, g_close, g_base, step, grid.base_ns, g_last)
    agg.update_many(ts, o, h, lo, c, v)
    w = ref.window_of(g_open, g_close, int(ts[-1]))
    _start, end = ref.slot_of(g_open, g_close, w, step, int(ts[-1]))
    last_closed = int(ts[-1]) + grid.base_ns >= end
    assert agg.pending == len(want["ts"]) - (0 if last_closed else 1)
    assert agg.advance(end - 1) == 0
    assert agg.advance(end) == (0 if last_closed else 1)
    assert agg.pending == len(want["ts"])
    assert agg.flush() == 0


@given(grid=grids(), step_mult=STEPS, density=st.floats(0.2, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_aggregator_rejected_bar_changes_nothing(grid, step_mult, density, seed):
    """A bar outside the grid, or not after the previous one, raises ValueError and leaves
    the aggregator as it was: the bars after it aggregate as if it had never been offered."""
    rng = np.random.default_rng(seed)
    step = step_mult * grid.base_ns
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    if len(ts) == 0:
        return
    g_open, g_close, g_base, g_last = grid.derived(step)
    want = batch(ts, o, h, lo, c, v, g_open, g_close, g_base, step, grid.base_ns)
    outside = [int(x) for x, y in zip(g_close[:-1], g_open[1:]) if y > x] + [int(g_close[-1])]
    agg = aggregation.Aggregator(g_open, g_close, g_base, step, grid.base_ns, g_last)
    cut = int(rng.integers(0, len(ts) + 1))
    agg.update_many(ts[:cut], o[:cut], h[:cut], lo[:cut], c[:cut], v[:cut])
    for t in outside:
        if cut == 0 or t > ts[cut - 1]:
            with pytest.raises(ValueError, match="outside"):
                agg.update(t, 1.0, 1.0, 1.0, 1.0, 1.0)
    if cut > 0:
        with pytest.raises(ValueError, match="not after"):
            agg.update(int(ts[cut - 1]), 1.0, 1.0, 1.0, 1.0, 1.0)
    agg.update_many(ts[cut:], o[cut:], h[cut:], lo[cut:], c[cut:], v[cut:])
    agg.flush()
    assert_bars_equal(agg.drain(), want)


def test_aggregator_rejected_bar_after_the_last_window():
    """The deterministic case of the property above: windows [0, 100) and [200, 300) min,
    10-minute buckets; a bar at 150 (in the pause) is refused, then a bar at 20 is valid."""
    agg = aggregation.Aggregator([0, 200 * MINUTE], [100 * MINUTE, 300 * MINUTE], [100, 100],
                                 10 * MINUTE, MINUTE)
    agg.update(10 * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="outside"):
        agg.update(150 * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert agg.update(20 * MINUTE, 1.0, 1.0, 1.0, 1.0, 1.0) == 1
    agg.flush()
    assert (agg.drain()["ts"] // MINUTE).tolist() == [10, 20]


def test_aggregator_session_with_a_short_last_window():
    """Hourly bars, a session of two windows 09:00-11:30 and 11:45-12:00 (in minutes): the
    short 11:00 slot ends at 11:30, so the session is not complete when it arrives (11:00 + 1h
    reaches the session's close, but the 11:45 slot is still to come)."""
    w_open, w_close = np.array([540, 705]) * MINUTE, np.array([690, 720]) * MINUTE
    ts = np.array([540, 600, 660, 705], np.int64) * MINUTE
    cols = ref.random_prices(np.random.default_rng(3), 4)
    want = batch(ts, *cols, w_open[:1], w_close[1:], np.array([4]), 0, 60 * MINUTE)
    assert want["count"].tolist() == [4]
    agg = aggregation.Aggregator(w_open[:1], w_close[1:], [4], 0, 60 * MINUTE, w_open[1:])
    closed = [agg.update(int(t), *(float(c[i]) for c in cols)) for i, t in enumerate(ts)]
    assert closed == [0, 0, 0, 1]
    agg.flush()
    assert_bars_equal(agg.drain(), want)
    stream = SymbolStream(w_open, w_close, 60 * MINUTE)
    stream.add_derived(w_open[:1], w_close[1:], [4], 0, w_open[1:])
    assert stream.push_many(ts, *cols) == (4, -1, 0)
    stream.flush()
    assert_bars_equal(stream.bars(0), want)


def test_aggregator_update_many_reports_the_row():
    agg = aggregation.Aggregator([0], [100], [100], 10, 1)
    one = np.ones(3)
    with pytest.raises(ValueError, match="row 2"):
        agg.update_many(np.array([1, 5, 5], np.int64), one, one, one, one, one)
    with pytest.raises(ValueError, match="row 0"):
        agg.update_many(np.array([150], np.int64), one[:1], one[:1], one[:1], one[:1], one[:1])
    assert agg.update(6, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    agg.flush()
    assert agg.drain()["count"].tolist() == [3]


def test_aggregator_bad_grid():
    with pytest.raises(ValueError):
        aggregation.Aggregator([], [], [], 10, 1)
    with pytest.raises(ValueError):
        aggregation.Aggregator([0], [10, 20], [10], 10, 1)
    with pytest.raises(ValueError):
        aggregation.Aggregator([0], [10], [10], 10, 0)


# --------------------------------------------------------------------------- SymbolStream


def inject_faults(grid, rng, ts, cols, n_bad):
    """Insert n_bad bad rows (bad prices, out of order, duplicate, outside, off grid), each
    placed relative to the sound bar before it, so that every one of them is rejected."""
    positions, times, bars = [], [], []
    for _ in range(n_bad):
        kind = rng.choice(["nan", "hl", "vol", "late", "dup", "outside", "shift"])
        pos = int(rng.integers(0, len(ts) + 1))
        prev = int(ts[pos - 1]) if pos else None
        if kind == "outside" or (prev is None and kind in ("late", "dup", "shift")):
            t = int(grid.w_close[-1]) + int(rng.integers(0, 3)) * grid.base_ns
            if prev is None and rng.random() < 0.5:
                t = int(grid.w_open[0]) - grid.base_ns
        elif kind == "late":
            t = prev - grid.base_ns
        elif kind == "dup":
            t = prev
        elif kind == "shift":
            # Off the grid: the first offset that is no slot start (a window may open at
            # prev + base // 2 when window lengths are not multiples of the base).
            t = prev - 1
            for d in range(1, grid.base_ns):
                w = ref.window_of(grid.w_open, grid.w_close, prev + d)
                if w < 0 or (prev + d - int(grid.w_open[w])) % grid.base_ns != 0:
                    t = prev + d
                    break
        else:
            t = (prev if prev is not None else int(grid.w_open[0])) + grid.base_ns
        bar = [1.0, 2.0, 0.5, 1.5, 10.0]
        if kind == "nan":
            bar[int(rng.integers(4))] = np.nan
        elif kind == "hl":
            bar[1], bar[2] = 0.5, 2.0
        elif kind == "vol":
            bar[4] = -1.0
        positions.append(pos)
        times.append(t)
        bars.append(bar)
    if not positions:
        return ts.copy(), [x.copy() for x in cols]
    ts = np.insert(ts, positions, times)
    cols = [np.insert(col, positions, [b[j] for b in bars]) for j, col in enumerate(cols)]
    return ts, cols


def expected_stream(grid, ts, cols):
    """What a stream fed these rows (dropping bad ones) must hold: the accepted rows and the
    rejected counts, from the reference validator."""
    faults = np.empty(len(ts), np.uint8)
    _first, counts = ref.validate_bars(ts, *cols, grid.w_open, grid.w_close, grid.base_ns,
                                       faults, False)
    keep = faults == 0
    return ts[keep], [col[keep] for col in cols], counts


def gap_counters_of(ts, g_open, g_close, step, until):
    cap = len(ts) + len(g_open) + 1
    n_runs, _exp, present, missing, fault, _row = gaps.find_gaps_slots(
        np.ascontiguousarray(ts, np.int64), g_open, g_close, step, until,
        np.empty(cap, np.int64), np.empty(cap, np.int64))
    assert fault == FAULT_NONE
    return present, missing, n_runs


def slot_end(g_open, g_close, step, t):
    w = ref.window_of(g_open, g_close, int(t))
    return ref.slot_of(g_open, g_close, w, step, int(t))[1]


@given(grid=grids(), step_mults=st.lists(STEPS, min_size=1, max_size=3),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       feed=st.sampled_from(["push", "push_many", "chunks"]),
       add=st.sampled_from(["before", "middle", "after"]), n_bad=st.integers(0, 4))
def test_symbol_stream_equals_batch(grid, step_mults, density, seed, feed, add, n_bad):
    rng = np.random.default_rng(seed)
    steps = [m * grid.base_ns for m in step_mults]
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    ts_in, cols_in = inject_faults(grid, rng, ts, [o, h, lo, c, v], n_bad)
    ok_ts, ok_cols, rejected = expected_stream(grid, ts_in, cols_in)
    np.testing.assert_array_equal(ok_ts, ts)  # the injected rows are exactly the bad ones

    stream = SymbolStream(grid.w_open, grid.w_close, grid.base_ns)
    grids_k = [grid.derived(s) for s in steps]

    def add_all():
        for (g_open, g_close, g_base, g_last), s in zip(grids_k, steps):
            stream.add_derived(g_open, g_close, g_base, s, g_last)

    def feed_rows(a, b):
        if feed == "push":
            for i in range(a, b):
                f = stream.push(int(ts_in[i]), *(float(col[i]) for col in cols_in))
                assert isinstance(f, int)
        elif feed == "push_many":
            stream.push_many(ts_in[a:b], *(col[a:b] for col in cols_in), stop_at_first=False)
        else:
            cuts = chunk_bounds(rng, b - a)
            for x, y in zip(cuts[:-1], cuts[1:]):
                stream.push_many(ts_in[a + x:a + y], *(col[a + x:a + y] for col in cols_in),
                                 stop_at_first=False)

    n = len(ts_in)
    half = n // 2
    if add == "before":
        add_all()
        feed_rows(0, n)
    elif add == "middle":
        feed_rows(0, half)
        add_all()
        feed_rows(half, n)
    else:
        feed_rows(0, n)
        add_all()

    # Base bars and rejected counts.
    assert len(stream) == stream.count() == len(ok_ts)
    base = stream.bars()
    assert set(base) == {"ts", "open", "high", "low", "close", "volume"}
    assert_bars_equal(base, dict(zip(COLUMNS, [ok_ts] + ok_cols)), COLUMNS[:6])
    assert stream.rejected == rejected
    if len(ok_ts):
        assert stream.last_ns == ok_ts[-1]
        # The last bar's slot ends at its window's close when that comes first.
        until = slot_end(grid.w_open, grid.w_close, grid.base_ns, ok_ts[-1])
        assert stream.gap_counters() == gap_counters_of(ok_ts, grid.w_open, grid.w_close,
                                                        grid.base_ns, until)
    else:
        assert stream.gap_counters() == (0, 0, 0)

    # Derived bars: the closed ones plus the one being built are the batch result.
    for k, ((g_open, g_close, g_base, _g_last), s) in enumerate(zip(grids_k, steps)):
        want = batch(ok_ts, *ok_cols, g_open, g_close, g_base, s, grid.base_ns)
        closed = stream.bars(k)
        partial = stream.partial_bar(k)
        n_closed = len(closed["ts"])
        assert n_closed + (partial is not None) == len(want["ts"])
        assert_bars_equal(closed, {key: a[:n_closed] for key, a in want.items()},
                          volume_rtol=CASCADE_RTOL)
        if partial is not None:
            last = {key: want[key][-1].item() for key in COLUMNS}
            assert partial["volume"] == pytest.approx(last.pop("volume"), rel=CASCADE_RTOL)
            assert {key: partial[key] for key in last} == last
        if n_closed:
            until = slot_end(g_open, g_close, s, closed["ts"][-1])
            assert stream.gap_counters(k) == gap_counters_of(closed["ts"], g_open, g_close, s,
                                                             until)
    building = sum(stream.partial_bar(k) is not None for k in range(len(steps)))
    assert stream.flush() == building
    for k, ((g_open, g_close, g_base, _g_last), s) in enumerate(zip(grids_k, steps)):
        want = batch(ok_ts, *ok_cols, g_open, g_close, g_base, s, grid.base_ns)
        assert_bars_equal(stream.bars(k), want, volume_rtol=CASCADE_RTOL)
        assert stream.partial_bar(k) is None
        if len(want["ts"]):
            until = slot_end(g_open, g_close, s, want["ts"][-1])
            assert stream.gap_counters(k) == gap_counters_of(want["ts"], g_open, g_close, s,
                                                             until)


@given(grid=grids(), density=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       n_bad=st.integers(1, 3))
def test_symbol_stream_stop_at_first(grid, density, seed, n_bad):
    rng = np.random.default_rng(seed)
    ts, o, h, lo, c, v = ref.bars_on(grid, rng, density)
    ts_in, cols_in = inject_faults(grid, rng, ts, [o, h, lo, c, v], n_bad)
    faults = np.empty(len(ts_in), np.uint8)
    first, _counts = ref.validate_bars(ts_in, *cols_in, grid.w_open, grid.w_close,
                                       grid.base_ns, faults, True)
    stream = SymbolStream(grid.w_open, grid.w_close, grid.base_ns)
    accepted, row, fault = stream.push_many(ts_in, *cols_in)
    assert first >= 0
    assert (accepted, row, fault) == (first, first, int(faults[first]))
    assert len(stream) == first
    assert sum(stream.rejected) == 0  # the caller raises: the bad row is not counted


def test_symbol_stream_push_reports_faults():
    s = SymbolStream([0, 100], [50, 200], 10)
    assert s.push(0, 1.0, 2.0, 0.5, 1.5, 1.0) == 0
    assert s.push(0, 1.0, 2.0, 0.5, 1.5, 1.0) == ref.FAULT_DUPLICATE
    assert s.push(-10, 1.0, 2.0, 0.5, 1.5, 1.0) == ref.FAULT_UNSORTED
    assert s.push(60, 1.0, 2.0, 0.5, 1.5, 1.0) == ref.FAULT_OUTSIDE
    assert s.push(105, 1.0, 2.0, 0.5, 1.5, 1.0) == ref.FAULT_MISALIGNED
    assert s.push(110, float("nan"), 2.0, 0.5, 1.5, 1.0) == ref.FAULT_NONFINITE
    assert s.push(110, 1.0, 0.4, 0.5, 1.5, 1.0) == ref.FAULT_HIGH_LOW
    assert s.push(110, 1.0, 2.0, 0.5, 1.5, -1.0) == ref.FAULT_VOLUME
    assert s.push(110, 1.0, 2.0, 0.5, 1.5, 1.0) == 0
    assert s.rejected == [0, 1, 1, 1, 1, 1, 1, 1] + [0] * (ref.N_FAULTS - 8)
    assert len(s) == 2
    # Slots 10..40 of the first window and 100 of the second are missing: two runs.
    assert s.gap_counters() == (2, 5, 2)
    with pytest.raises(ValueError):
        s.count_rejected(0)
    s.count_rejected(ref.FAULT_OUTSIDE, 3)
    assert s.rejected[ref.FAULT_OUTSIDE] == 4
    with pytest.raises(IndexError):
        s.bars(0)
    with pytest.raises(ValueError):
        SymbolStream([], [], 10)
    with pytest.raises(ValueError):
        SymbolStream([0], [10], 0)


def test_symbol_stream_session_fed_from_a_long_intraday_interval():
    """A session of two windows (09:30-12:00, 13:00-16:00, in minutes) with a 7h interval and
    the session interval: the morning's 7h bucket (09:30 + 7h > 16:00) is not the end of the
    session, so the afternoon's bars still belong to the session's bar."""
    w_open, w_close = np.array([570, 780]) * MINUTE, np.array([720, 960]) * MINUTE
    ts = np.r_[np.arange(570, 720), np.arange(780, 960)].astype(np.int64) * MINUTE
    cols = ref.random_prices(np.random.default_rng(5), len(ts))
    base_slots = np.array([150, 180])
    for add in ("before", "after"):
        s = SymbolStream(w_open, w_close, MINUTE)
        if add == "after":
            s.push_many(ts, *cols)
        s.add_derived(w_open, w_close, base_slots, 420 * MINUTE)
        s.add_derived(w_open[:1], w_close[1:], [330], 0, w_open[1:])
        if add == "before":
            assert s.push_many(ts, *cols) == (len(ts), -1, 0)
        s.flush()
        assert s.bars(0)["count"].tolist() == [150, 180], add
        assert s.bars(1)["count"].tolist() == [330], add
        assert s.bars(1)["coverage"].tolist() == [1.0], add


def test_symbol_stream_nbytes():
    s = SymbolStream([0], [10_000], 1)
    s.add_derived([0], [10_000], [10_000], 10)
    n = 5000
    one = np.ones(n)
    s.push_many(np.arange(n, dtype=np.int64), one, one, one, one, one)
    assert s.held_nbytes == n * 48 + (n // 10) * 64
    assert s.held_nbytes <= s.nbytes <= 1.25 * s.held_nbytes + 64 * 64



def test_symbol_stream_dense_store_is_sized_once_then_trimmed():
    """A symbol whose first 64 slots are all there gets its stores sized for the session's
    slots at its first growth (the bar path then never grows nor copies a column); flush()
    gives back what no bar used.  A sparse symbol grows by an eighth at a time."""
    slots = 10_000
    dense = SymbolStream([0], [slots], 1)
    dense.add_derived([0], [slots], [slots], 10)
    for t in range(65):
        assert dense.push(t, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    assert dense.nbytes == slots * 48 + (slots // 10) * 64       # sized once, all stores
    for t in range(65, 3000):
        assert dense.push(t, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    assert dense.nbytes == slots * 48 + (slots // 10) * 64       # never grown again
    dense.flush()
    assert dense.nbytes == dense.held_nbytes == 3000 * 48 + 300 * 64
    assert dense.bars()["ts"].tolist() == list(range(3000))
    assert dense.bars(0)["count"].tolist() == [10] * 300

    sparse = SymbolStream([0], [slots], 1)
    for t in range(0, 2 * 65, 2):          # half the slots missing: not dense
        assert sparse.push(t, 1.0, 1.0, 1.0, 1.0, 1.0) == 0
    assert sparse.held_nbytes <= sparse.nbytes <= 1.125 * sparse.held_nbytes + 64 * 48
    assert sparse.nbytes < slots * 48 // 10


def test_dense_stores_in_the_pool_survive_reset_trim_and_reuse():
    """A dense stream's stores, sized once (in the huge-page pool where there is one), are
    reset onto a longer session (their session's slots no longer fit: they go, and are sized
    again), onto a shorter one (kept), trimmed at the end, and freed with their stream, whose
    blocks the next streams reuse: the bars are the bars pushed, whatever happened before."""
    def day(slots, seed):
        ts = np.arange(slots, dtype=np.int64)
        return (ts,) + ref.random_prices(np.random.default_rng(seed), slots)

    def check(s, cols):
        bars = s.bars()
        for name, col in zip(("ts", "open", "high", "low", "close", "volume"), cols):
            assert bars[name].tolist() == np.asarray(col).tolist(), name
        assert s.bars(0)["ts"].tolist() == list(range(0, len(cols[0]), 10))

    streams = []
    for round_ in range(3):
        for i in range(4):
            slots = (1440, 2880, 390, 1440)[(i + round_) % 4]     # longer, shorter, ...
            s = streams[i] if round_ and i < len(streams) else SymbolStream([0], [slots], 1)
            s.reset([0], [slots], 1)
            s.add_derived([0], [slots], [slots], 10)
            cols = day(slots, 100 * round_ + i)
            for row in zip(*(c.tolist() for c in cols)):
                assert s.push(*row) == 0
            assert s.nbytes >= s.held_nbytes
            check(s, cols)
            s.flush()
            assert s.held_nbytes <= s.nbytes <= 1.125 * s.held_nbytes
            check(s, cols)
            if i >= len(streams):
                streams.append(s)
        # Each round a stream is freed and another made: the pool's blocks go round.
        streams[round_ % len(streams)] = SymbolStream([0], [1440], 1)

# --------------------------------------------------------------------------- threads


def test_streams_in_threads_equal_sequential():
    rng = np.random.default_rng(7)
    w_open = np.arange(20, dtype=np.int64) * 1000 * MINUTE
    w_close = w_open + 390 * MINUTE
    slots = np.concatenate([np.arange(a, b, MINUTE) for a, b in zip(w_open, w_close)])
    inputs = []
    for _ in range(8):
        ts = slots[rng.random(len(slots)) < 0.9]
        inputs.append((ts,) + ref.random_prices(rng, len(ts)))

    def run(args):
        s = SymbolStream(w_open, w_close, MINUTE)
        s.add_derived(w_open, w_close, -((w_open - w_close) // MINUTE), 5 * MINUTE)
        s.add_derived(w_open, w_close, -((w_open - w_close) // MINUTE), 0)
        for a in range(0, len(args[0]), 997):
            s.push_many(*(x[a:a + 997] for x in args))
        s.flush()
        return [s.bars(-1), s.bars(0), s.bars(1), s.gap_counters(), s.gap_counters(0)]

    sequential = [run(a) for a in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(run, inputs * 2))
    for got, want in zip(threaded, sequential * 2):
        for g, w in zip(got[:3], want[:3]):
            assert_bars_equal(g, w, list(w))
        assert got[3:] == want[3:]


def test_resample_in_threads_equals_sequential():
    import sessiondata as sd

    cal = sd.Calendar.exchange("XNYS")
    windows = cal.windows(int(np.datetime64("2024-03-04", "ns").astype(np.int64)),
                          int(np.datetime64("2024-03-16", "ns").astype(np.int64)))
    slots = np.concatenate([np.arange(a, b, MINUTE)
                            for a, b in zip(windows.open_ns, windows.close_ns)])
    rng = np.random.default_rng(11)
    symbols = {}
    for k in range(12):
        ts = slots[rng.random(len(slots)) < 0.8 + 0.015 * k]
        symbols[f"S{k}"] = sd.Bars.from_arrays(ts, *ref.random_prices(rng, len(ts)),
                                               interval="1m")

    def work(bars):
        out = [sd.resample(bars, iv, cal) for iv in ("5m", "15m", "1h", "1d")]
        g = sd.find_gaps(bars, "1m", cal)
        q = [sd.quality(bars, iv, cal) for iv in ("1m", "5m", "1d")]
        return out, g, q

    sequential = {k: work(b) for k, b in symbols.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = dict(zip(symbols, pool.map(work, symbols.values())))
    for k, (out, g, q) in threaded.items():
        s_out, s_g, s_q = sequential[k]
        assert all(a.equals(b) for a, b in zip(out, s_out))
        for a, b in zip(g[:3], s_g[:3]):
            np.testing.assert_array_equal(a, b)
        assert g[3:] == s_g[3:]
        assert q == s_q
