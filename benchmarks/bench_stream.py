"""Streaming: the incremental ``Aggregator`` fed one bar at a time from a Python loop, the way
a backtest replays minute bars.  Gated in nanoseconds per bar; its reference is the same loop
doing nothing but unpacking each row, which is the floor any per-bar Python API pays.

Both loops read the first 1_000_000 bars (fewer when N is smaller), converted to Python lists
outside the timed region.
"""

from __future__ import annotations

import pytest

import sessiondata
from sessiondata._core.aggregation import Aggregator


@pytest.fixture(scope="module")
def rows(bars, aggregator_n):
    """Six Python lists (ts as int, prices as float) of the first bars."""
    n = min(aggregator_n, len(bars))
    return tuple(getattr(bars, k)[:n].tolist()
                 for k in ("ts", "open", "high", "low", "close", "volume"))


def _feed(agg, rows):
    # The usual idiom of a replay loop: bind the method once, pass the fields by position.
    update = agg.update
    for ts, open_, high, low, close, volume in zip(*rows):
        update(ts, open_, high, low, close, volume)
    return agg


def _unpack_only(rows):
    for ts, open_, high, low, close, volume in zip(*rows):
        pass


@pytest.mark.parametrize("impl", ("python-loop", "sessiondata"))
def bench_aggregator(benchmark, measure, bars, cal, grid_5m, rows, impl):
    info = dict(group="aggregator", label=impl, items=len(rows[0]))
    if impl == "python-loop":
        measure(benchmark, _unpack_only, args=(rows,), **info)
        return

    def fresh():  # untimed: a new Aggregator per round, its derived bars start empty
        g = grid_5m
        return (Aggregator(g.open_ns, g.close_ns, g.base_slots, g.step_ns, g.base_ns,
                           g.last_open), rows), {}

    agg = measure(benchmark, _feed, setup=fresh, **info)
    agg.flush()
    n = len(rows[0])
    assert agg.pending == len(sessiondata.resample(bars[:n], "5m", cal))
