"""Every derived interval in one pass (issue 18): ``aggregation.aggregate_grids`` against the
pure-Python reference ``reference.aggregate_bars`` run grid by grid.

Each grid's result and outputs must be those of a pass of its own: the same rows, the same
floats bit for bit (the reference sums each bucket's volume in order, as a running total),
the same fault and row where its bars break the contract, whatever the other grids do (a
grid that stops at a fault or a full output does not stop the others).  Inputs long enough
to cross the kernel's blocks of bars, read-only inputs, and inputs left unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from reference import MINUTE, grids
from sessiondata._core import aggregation
from test_kernels import MUTATIONS, mutate, readonly


def check(ts, cols, specs, base_ns, caps):
    """Run aggregate_grids over ``specs`` ((g_open, g_close, g_base, step) per grid) and the
    reference per grid; assert they agree, outputs included (sentinels where unwritten)."""
    ts, *cols = readonly(np.asarray(ts, np.int64), *(np.asarray(c, np.float64) for c in cols))
    before = [ts.copy()] + [c.copy() for c in cols]
    specs = [tuple(readonly(*(np.asarray(a, np.int64) for a in s[:3]))) + (s[3],)
             for s in specs]
    outs_k = [ref.new_outputs(cap) for cap in caps]
    got = aggregation.aggregate_grids(ts, *cols, specs, outs_k, base_ns)
    assert len(got) == len(specs)
    for spec, cap, out_k, g in zip(specs, caps, outs_k, got):
        out_r = ref.new_outputs(cap)
        want = ref.aggregate_bars(ts, *cols, *spec[:3], spec[3], base_ns, *out_r)
        assert type(g) is tuple and all(type(x) is int for x in g), g
        assert g == want
        for name, a, b in zip(ref.OUT_NAMES, out_k, out_r):
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(a, b, err_msg=name)
        # And the one-grid entry point is the same pass.
        out_1 = ref.new_outputs(cap)
        assert aggregation.aggregate_bars(ts, *cols, *spec[:3], spec[3], base_ns,
                                          *out_1) == want
        for a, b in zip(out_1, out_r):
            np.testing.assert_array_equal(a, b)
    for b, a in zip(before, [ts] + cols):
        np.testing.assert_array_equal(a, b)
    return got


@given(grid=grids(), mults=st.lists(st.integers(0, 7), min_size=0, max_size=5),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1), kind=MUTATIONS,
       short=st.booleans())
def test_aggregate_grids_property(grid, mults, density, seed, kind, short):
    rng = np.random.default_rng(seed)
    ts, *_ = ref.bars_on(grid, rng, density)
    ts = mutate(ts, grid, rng, kind)
    cols = ref.random_prices(rng, len(ts))
    specs, caps = [], []
    for mult in mults:
        step = mult * grid.base_ns
        g_open, g_close, g_base, _last = grid.derived(step)
        specs.append((g_open, g_close, g_base, step))
        cap = len(ts)
        if short:   # some grids' outputs too short: they stop, the others go on
            cap = int(rng.integers(0, len(ts) + 1))
        caps.append(cap)
    check(ts, cols, specs, grid.base_ns, caps)


def day_windows(days: int, gap_share: float, seed: int):
    """Bars of ``days`` sessions 09:30-16:00 (two with a lunch break), some minutes missing,
    and their windows and session ids: long enough to cross the kernel's blocks."""
    rng = np.random.default_rng(seed)
    day = 86_400 * 10**9
    opens, closes, ids = [], [], []
    for d in range(days):
        o = d * day + 570 * MINUTE
        if d % 5 == 3:   # a lunch break
            opens += [o, o + 150 * MINUTE]
            closes += [o + 120 * MINUTE, o + 390 * MINUTE]
            ids += [d, d]
        else:
            opens.append(o)
            closes.append(o + (210 if d % 7 == 6 else 390) * MINUTE)   # an early close
            ids.append(d)
    w_open, w_close = np.array(opens, np.int64), np.array(closes, np.int64)
    grid = ref.Grid(w_open, w_close, np.array(ids, np.int64), MINUTE)
    slots = grid.slot_starts()
    ts = slots[rng.random(len(slots)) >= gap_share]
    return grid, ts, ref.random_prices(rng, len(ts))


@pytest.mark.parametrize("gap_share", [0.0, 0.02, 0.5])
def test_aggregate_grids_across_blocks(gap_share):
    grid, ts, cols = day_windows(40, gap_share, seed=7)
    assert len(ts) > 3 * 2048 or gap_share == 0.5
    specs = []
    for step in (5 * MINUTE, 15 * MINUTE, 60 * MINUTE, 7 * MINUTE, MINUTE, 0):
        specs.append(grid.derived(step)[:3] + (step,))
    got = check(ts, cols, specs, MINUTE, [len(ts)] * len(specs))
    assert all(f == 0 for _m, f, _r in got)


def test_aggregate_grids_faults_stop_only_their_grid():
    grid, ts, cols = day_windows(12, 0.01, seed=3)
    ts = ts.copy()
    ts[3000] += 7   # off the base grid: every grid with a step stops there
    specs = [grid.derived(step)[:3] + (step,) for step in (5 * MINUTE, 0, 60 * MINUTE)]
    # The 5m grid's output is short: it stops at the first bucket that does not fit.
    got = check(ts, cols, specs, MINUTE, [100, len(ts), len(ts)])
    assert got[0][1] == 8 and got[0][2] < 3000          # output overflow, early
    assert got[1][1] == 0                                # a session grid checks no slot
    assert got[2] == (got[2][0], 7, 3000)                # misaligned, at the row


def test_aggregate_grids_edges():
    grid, ts, cols = day_windows(2, 0.0, seed=1)
    spec = grid.derived(5 * MINUTE)[:3] + (5 * MINUTE,)
    assert aggregation.aggregate_grids(ts, *cols, [], [], MINUTE) == []
    empty = np.empty(0, np.int64)
    nothing = [np.empty(0)] * 5
    assert check(empty, nothing, [spec, spec], MINUTE, [0, 3]) == [(0, 0, -1)] * 2
    no_windows = (empty, empty, empty, 5 * MINUTE)
    assert check(ts, cols, [no_windows, spec], MINUTE, [10, len(ts)])[0] == (0, 6, 0)
    with pytest.raises(ValueError, match="grids but"):
        aggregation.aggregate_grids(ts, *cols, [spec], [], MINUTE)
    with pytest.raises(ValueError, match="output columns"):
        aggregation.aggregate_grids(ts, *cols, [spec], [ref.new_outputs(5)[:7]], MINUTE)
    with pytest.raises(ValueError, match="bad steps"):
        aggregation.aggregate_grids(ts, *cols, [spec[:3] + (7,)], [ref.new_outputs(5)],
                                    MINUTE)
    with pytest.raises(ValueError, match="lengths differ"):
        aggregation.aggregate_grids(ts, cols[0][:-1], *cols[1:], [spec],
                                    [ref.new_outputs(5)], MINUTE)
