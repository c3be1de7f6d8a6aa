"""The public façade: ``SessionData`` fed bar by bar, day by day, and what it holds after.

``facade-stream``: ``SessionData.add_bar(symbol, ts, o, h, l, c, v)`` from a Python loop over
pre-built Python lists (the method bound once, the fields passed by position), on
``Calendar.always()``: 8 symbols x the 1440 1m bars of one UTC day, in time order (each minute
every symbol, the way a live feed or a replay hands them over), ~1 % of the minutes missing at
random, every symbol with derived 5m, 15m and 1h and the stream's live gap counters.  Gated in
ns per bar; the reference is the same loop calling an empty function with the same arguments.
``facade-stream-700``: the same with 700 symbols, gated as a ratio to its empty-call loop:
with that many streams interleaved, each bar's stream state is a cache miss away unless
``add_bar`` fetched it ahead (it does when symbols come in the same order slot after slot, as
here; docs/live.md, Cost): ~195 ns/bar against ~120 ns for a handful (CPU time, load 3-4,
2026-12-07, after the stores' huge-page pool and add_bar's own entry; ~215-235 ns before
them, ~300-315 ns before the row-major stores and the prefetch).  Its first rounds in a
fresh process fault the pool's huge pages in (slow on a VM: ~10-18 ms each).  Its
events+revise row: the clock's scan, once a slot, looks only at the streams that missed it.  Each round
is a fresh ``SessionData``: its stores' pages are new and faulted in during the round.
``events+revise`` (in both groups): the same loop on a ``SessionData(on_bad="revise")`` with a
no-op callback subscribed to every event kind (gap_opened, gap_closed, stale, bar_closed,
revised): the live events' cost beside ``sessiondata``, for information.
``facade-stream-events``: the gated form of that ratio (issue 14: at most 1.3x).  The two are
timed in alternation within each round (ABBA), each from a fresh session, and the ratio of
their best times is ``extra_info["events_ratio"]``: on a shared machine the load drifts from
one benchmark to the next, and a ratio of two benchmarks run a second apart measures the
drift as much as the events.

``add-bar-tails``: the facade-stream day (8 and 700 symbols) with each ``add_bar`` call timed
alone, beside an empty call timed the same way: p50, p99, p99.9 and max in ``extra_info``.

``late-bar``: the facade-stream day streamed (untimed setup) with ~1 % of its bars held back,
then the held-back bars sent late under ``revise``, each filling its slot and re-aggregating
its 5m/15m/1h buckets: ``revise-fill`` (each 1-60 minutes late, the live case) and
``revise-fill-hours`` (all sent at the end of the day, hours late: the columns' tails move);
in ns per late bar, for information.

``facade-replay``: a day's arrays in one call each.  ``add_bars-1s-24x7``: one symbol, the
86_400 1s bars of a 24/7 day, derived 5m/15m/1h, through ``SessionData.add_bars(symbol, dict)``,
day after day on one ``SessionData`` (each session reuses the buffers of the one before, as in a
backtest; a first day in a fresh process also pays the page faults of new memory).
``replay-xnys-500x390``: ``SessionCoordinator.replay(day)`` of 500 symbols x the 390 1m bars of
a regular XNYS session (registration of the 500 symbols included: that is what replay does).

``facade-memory``: ``SessionData.memory()`` after a full day, as allocated / held bytes,
recorded in ``extra_info["memory_ratio"]`` (the gate checks that value; the time is that of the
``memory()`` call, for information).  ``streamed-24x7-700x1440``: the facade-stream day, streamed
bar by bar, then advanced to the close; ``replayed-xnys-500x390``: the XNYS day replayed.

All data is seeded and built once per module, outside every timed region; each round starts
from a fresh ``SessionData`` made in its (untimed) setup.  The sizes do not follow ``N``.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

from sessiondata import Calendar, SessionData
from sessiondata.coordinator import SessionCoordinator

SEED = 20_240_103
DERIVED = ("5m", "15m", "1h")
DAY = np.datetime64("2024-01-02", "D")        # a UTC day: one session of Calendar.always()
XNYS_DAY = np.datetime64("2023-06-01", "D")   # a regular XNYS session: 390 minutes
STREAM_SYMBOLS = 700     # a wide universe: the streams' state no longer fits the caches
FEW_SYMBOLS = 8          # a strategy's handful of symbols: the gated case
MISSING_RATE = 0.01
REPLAY_SYMBOLS = 500
MINUTE_NS = 60_000_000_000
SECOND_NS = 1_000_000_000


def _walk(rng, n: int) -> dict[str, np.ndarray]:
    """Prices of a random walk (valid OHLCV), without ts."""
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    spread = rng.random((2, n)) * 1e-4
    return {"open": open_, "high": np.maximum(open_, close) * (1.0 + spread[0]),
            "low": np.minimum(open_, close) * (1.0 - spread[1]), "close": close,
            "volume": rng.standard_exponential(n) * 1000.0}


def _symbols(n: int) -> list[str]:
    return [f"S{i:04d}" for i in range(n)]


def _day_start_ns(day) -> int:
    return int(np.datetime64(day, "ns").astype(np.int64))


# -- data ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def always():
    return Calendar.always()


@pytest.fixture(scope="module")
def xnys():
    pytest.importorskip("exchange_calendars")
    return Calendar.exchange("XNYS")


@functools.lru_cache(maxsize=None)
def _stream_rows(n_symbols: int):
    """Seven Python lists (symbol, ts, open, high, low, close, volume) in time order: every
    symbol's bar of a minute, minute after minute, ~1 % of (symbol, minute) pairs missing."""
    rng = np.random.default_rng(SEED)
    minutes, syms = 1440, _symbols(n_symbols)
    ts = _day_start_ns(DAY) + np.arange(minutes, dtype=np.int64) * MINUTE_NS
    walk = _walk(rng, minutes * n_symbols)  # column-major: one symbol's walk after another
    keep = rng.random((minutes, n_symbols)) >= MISSING_RATE
    m, s = np.nonzero(keep)                      # time-major order
    flat = s * minutes + m
    return ([syms[j] for j in s.tolist()], ts[m].tolist(),
            *(walk[k][flat].tolist() for k in ("open", "high", "low", "close", "volume")))


def _fresh_stream_session(cal, n_symbols: int, events: bool = False) -> SessionData:
    sd = SessionData(cal, on_bad="revise" if events else "raise")
    sd.start_session(DAY)
    for symbol in _symbols(n_symbols):
        sd.add_symbol(symbol, "1m", DERIVED)
    if events:
        sd.subscribe(_no_op)
    return sd


def _no_op(event):
    pass


def _stream(sd, rows):
    # The usual idiom of a feed loop: bind the method once, pass the fields by position.
    add = sd.add_bar
    for symbol, ts, open_, high, low, close, volume in zip(*rows):
        add(symbol, ts, open_, high, low, close, volume)
    return sd


def _empty(symbol, ts, open_, high, low, close, volume):
    pass


def _call_empty(rows):
    add = _empty
    for symbol, ts, open_, high, low, close, volume in zip(*rows):
        add(symbol, ts, open_, high, low, close, volume)


@pytest.fixture(scope="module")
def day_1s():
    """One symbol's 86_400 1s bars of a 24/7 day, as a dict of arrays."""
    rng = np.random.default_rng(SEED + 1)
    n = 86_400
    cols = _walk(rng, n)
    cols["ts"] = _day_start_ns(DAY) + np.arange(n, dtype=np.int64) * SECOND_NS
    return cols


@pytest.fixture(scope="module")
def day_xnys(xnys):
    """500 symbols x the 390 1m bars of a regular XNYS session: {symbol: dict of arrays}."""
    windows = xnys.session_windows(XNYS_DAY)
    ts = np.concatenate([np.arange(o, c, MINUTE_NS, dtype=np.int64)
                         for o, c in zip(windows.open_ns.tolist(), windows.close_ns.tolist())])
    assert ts.shape[0] == 390
    rng = np.random.default_rng(SEED + 2)
    day = {}
    for symbol in _symbols(REPLAY_SYMBOLS):
        cols = _walk(rng, ts.shape[0])
        cols["ts"] = ts.copy()
        day[symbol] = cols
    return day


def _replay_xnys(coordinator, day):
    return coordinator.replay(day)


def _fresh_coordinator(cal) -> SessionCoordinator:
    coordinator = SessionCoordinator(cal, base_interval="1m", derived_intervals=DERIVED)
    coordinator.start(XNYS_DAY)
    return coordinator


# -- facade-stream ------------------------------------------------------------------------

@pytest.mark.parametrize("n_symbols", (FEW_SYMBOLS, STREAM_SYMBOLS))
@pytest.mark.parametrize("impl", ("python-loop", "sessiondata", "events+revise"))
def bench_facade_stream(benchmark, measure, rounds, always, impl, n_symbols):
    stream_rows = _stream_rows(n_symbols)
    n = len(stream_rows[0])
    group = "facade-stream" if n_symbols == FEW_SYMBOLS else f"facade-stream-{n_symbols}"
    info = dict(group=group, label=impl, items=n)
    benchmark.extra_info.update(symbols=n_symbols, bars=n, derived=list(DERIVED))
    if impl == "python-loop":
        measure(benchmark, _call_empty, args=(stream_rows,), **info)
        return

    def fresh():  # untimed: a new session with the symbols registered, no bars yet
        return (_fresh_stream_session(always, n_symbols, impl == "events+revise"),
                stream_rows), {}

    # ~2 ms a round for the handful of symbols: more rounds (and warm-up ones: the events'
    # objects and lists come up to size) for a steady minimum, as the ratio is gated.
    more = dict(rounds=max(30, 5 * rounds[0]), warmup_rounds=3) if n_symbols == FEW_SYMBOLS \
        else {}
    sd = measure(benchmark, _stream, setup=fresh, **info, **more)
    assert sum(sd.get_symbol_data(s).bar_count() for s in _symbols(n_symbols)) == n
    assert not sd.unknown_bars
    present, missing, runs = sd.get_symbol_data("S0000")._stream.gap_counters()
    assert present == sd.get_symbol_data("S0000").bar_count() and missing > 0


def bench_facade_stream_events(benchmark, measure, rounds, always):
    import time

    stream_rows = _stream_rows(FEW_SYMBOLS)
    n = len(stream_rows[0])
    best = {False: float("inf"), True: float("inf")}

    def alternate():
        for events in (False, True, True, False):
            sd = _fresh_stream_session(always, FEW_SYMBOLS, events)
            start = time.perf_counter()
            _stream(sd, stream_rows)
            best[events] = min(best[events], time.perf_counter() - start)
        return sd

    sd = measure(benchmark, alternate, group="facade-stream-events", label="alternating",
                 items=4 * n, rounds=max(30, 5 * rounds[0]), warmup_rounds=3)
    assert sum(sd.get_symbol_data(s).bar_count() for s in _symbols(FEW_SYMBOLS)) == n
    benchmark.extra_info.update(
        symbols=FEW_SYMBOLS, bars=n, derived=list(DERIVED), events_ratio=best[True] / best[False],
        sessiondata_ns_per_bar=1e9 * best[False] / n, events_ns_per_bar=1e9 * best[True] / n)


# -- add-bar-tails ------------------------------------------------------------------------

TAIL_QUANTILES = (50.0, 99.0, 99.9)


def _timed_calls(sd, rows, add_ns: list, empty_ns: list) -> None:
    """Each ``add_bar`` call timed on its own, and beside it an empty call with the same
    arguments timed the same way (the clock's own cost is in both)."""
    clock = time.perf_counter_ns
    add, empty = sd.add_bar, _empty
    i = 0
    for symbol, ts, open_, high, low, close, volume in zip(*rows):
        t0 = clock()
        add(symbol, ts, open_, high, low, close, volume)
        t1 = clock()
        empty(symbol, ts, open_, high, low, close, volume)
        t2 = clock()
        add_ns[i] = t1 - t0
        empty_ns[i] = t2 - t1
        i += 1


def tail_stats(add_ns, empty_ns) -> dict[str, float]:
    """p50, p99, p99.9 and max (ns) of single add_bar calls and of the empty call."""
    out: dict[str, float] = {}
    for name, values in (("add_bar", add_ns), ("empty", empty_ns)):
        a = np.asarray(values, dtype=np.int64)
        for q in TAIL_QUANTILES:
            out[f"{name}_p{q:g}_ns"] = float(np.percentile(a, q))
        out[f"{name}_max_ns"] = float(a.max())
    return out


@pytest.mark.parametrize("n_symbols", (FEW_SYMBOLS, STREAM_SYMBOLS))
def bench_add_bar_tails(benchmark, measure, always, n_symbols):
    """``add-bar-tails``: latency-sensitive users read tails, not means.  The facade-stream
    day, each ``add_bar`` call timed alone (``time.perf_counter_ns`` around it) beside an
    empty call with the same arguments timed the same way; ``extra_info`` holds p50, p99,
    p99.9 and max of both, in ns, for information (the time is that of the whole loop)."""
    rows = _stream_rows(n_symbols)
    n = len(rows[0])
    add_ns, empty_ns = [0] * n, [0] * n

    def fresh():
        return (_fresh_stream_session(always, n_symbols), rows, add_ns, empty_ns), {}

    sd = measure(benchmark, _timed_calls, setup=fresh, group="add-bar-tails",
                 label=f"{n_symbols}-symbols", items=n, rounds=3)
    del sd
    benchmark.extra_info.update(symbols=n_symbols, bars=n, derived=list(DERIVED),
                                **tail_stats(add_ns, empty_ns))


# -- late-bar -----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _late_rows(case: str):
    """The facade-stream rows in the order they arrive: ~1 % of the bars held back and sent
    after the bars of 1-60 later minutes (``revise-fill``) or at the end of the day
    (``revise-fill-hours``); ``on-time-only`` leaves them out.  Returns (rows, late bars)."""
    rows = _stream_rows(FEW_SYMBOLS)
    n = len(rows[0])
    rng = np.random.default_rng(SEED + 3)
    late = np.sort(rng.choice(np.arange(60 * FEW_SYMBOLS, n), size=n // 100, replace=False))
    on_time = np.setdiff1d(np.arange(n), late)
    if case == "on-time-only":
        order = on_time
    elif case == "revise-fill-hours":
        order = np.concatenate([on_time, late])
    else:
        # Each late bar goes out after the on-time bars of up to an hour later.
        due = late + rng.integers(1, 61, size=late.shape[0]) * FEW_SYMBOLS
        key = np.concatenate([on_time.astype(float), due + 0.5])
        order = np.concatenate([on_time, late])[np.argsort(key, kind="stable")]
    idx = order.tolist()
    return tuple([col[i] for i in idx] for col in rows), int(late.shape[0])


@pytest.mark.parametrize("case", ("on-time-only", "revise-fill", "revise-fill-hours"))
def bench_late_bar(benchmark, measure, rounds, always, case):
    rows, n_late = _late_rows(case)

    def fresh():
        sd = SessionData(always, on_bad="revise")
        sd.start_session(DAY)
        for symbol in _symbols(FEW_SYMBOLS):
            sd.add_symbol(symbol, "1m", DERIVED)
        return (sd, rows), {}

    benchmark.extra_info.update(late_bars=0 if case == "on-time-only" else n_late,
                                derived=list(DERIVED))
    sd = measure(benchmark, _stream, setup=fresh, group="late-bar", label=case,
                 items=len(rows[0]), rounds=max(30, 5 * rounds[0]), warmup_rounds=3)
    revised = sum(sd.get_symbol_data(s)._stream.revised for s in _symbols(FEW_SYMBOLS))
    assert revised == (0 if case == "on-time-only" else n_late)


# -- facade-replay ------------------------------------------------------------------------

def bench_facade_replay_1s(benchmark, measure, rounds, always, day_1s):
    n = day_1s["ts"].shape[0]

    # Day after day, as a backtest replays them: one SessionData, each round a new session
    # whose symbol takes over the buffers the last session left (no fresh pages to fault in).
    sd = SessionData(always)

    def fresh():
        if sd.is_active:
            sd.end_session()
        sd.start_session(DAY)
        sd.add_symbol("X", "1s", DERIVED)
        return (sd, "X", day_1s), {}

    def replay(sd, symbol, cols):
        return sd.add_bars(symbol, cols)

    benchmark.extra_info.update(symbols=1, bars=n, base="1s", derived=list(DERIVED))
    # ~1.5 ms a round: more rounds than the default, for a steady minimum.
    stored = measure(benchmark, replay, setup=fresh, group="facade-replay",
                     label="add_bars-1s-24x7", items=n, nbytes=48 * n,
                     rounds=max(30, 5 * rounds[0]))
    assert stored == n


def bench_facade_replay_xnys(benchmark, measure, xnys, day_xnys):
    n = sum(cols["ts"].shape[0] for cols in day_xnys.values())

    def fresh():
        return (_fresh_coordinator(xnys), day_xnys), {}

    benchmark.extra_info.update(symbols=len(day_xnys), bars=n, base="1m",
                                derived=list(DERIVED), session=str(XNYS_DAY))
    stored = measure(benchmark, _replay_xnys, setup=fresh, group="facade-replay",
                     label="replay-xnys-500x390", items=n, nbytes=48 * n)
    assert stored == n


# -- facade-memory ------------------------------------------------------------------------

def _record_memory(benchmark, sd) -> dict[str, int]:
    mem = sd.memory()
    benchmark.extra_info.update(allocated_bytes=mem["allocated"], held_bytes=mem["held"],
                                memory_ratio=mem["allocated"] / mem["held"])
    return mem


def bench_facade_memory_streamed(benchmark, measure, always):
    stream_rows = _stream_rows(STREAM_SYMBOLS)
    n = len(stream_rows[0])
    sd = _stream(_fresh_stream_session(always, STREAM_SYMBOLS), stream_rows)
    sd.advance(int(sd.windows.close_ns[-1]))  # the day is over: every derived bar closed
    benchmark.extra_info.update(symbols=STREAM_SYMBOLS, bars=n, derived=list(DERIVED))
    _record_memory(benchmark, sd)
    measure(benchmark, sd.memory, group="facade-memory", label="streamed-24x7-700x1440",
            items=n)


def bench_facade_memory_replayed(benchmark, measure, xnys, day_xnys):
    n = sum(cols["ts"].shape[0] for cols in day_xnys.values())
    coordinator = _fresh_coordinator(xnys)
    assert coordinator.replay(day_xnys) == n
    sd = coordinator.session_data
    sd.advance(int(sd.windows.close_ns[-1]))
    benchmark.extra_info.update(symbols=len(day_xnys), bars=n, derived=list(DERIVED))
    _record_memory(benchmark, sd)
    measure(benchmark, sd.memory, group="facade-memory", label="replayed-xnys-500x390",
            items=n)
