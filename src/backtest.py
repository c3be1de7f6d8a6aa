"""Backtests over a universe: many symbols, many sessions, in compiled passes per symbol.

``run_universe`` does for a whole date range what a ``SessionCoordinator`` does session by
session (derived bars, gaps, quality, one JSON document per session, in the same schema as
``SessionData.to_json``), but hands each symbol's whole range to the kernels at once, so the
work is a few large GIL-free calls per symbol and independent symbols run on threads.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ._core import aggregation as _aggregation
from ._core import quality as _quality
from ._core import validation as _validation
from .api import Grid, _aggregate, default_calendar, gaps_on_grid, make_grid, session_windows
from .bars import FAULTS, Bars, raise_first_fault
from .calendar import Calendar, Windows
from .export import dumps_compact, write_atomic
from .intervals import check_derivable, parse_interval

_NONE_U8 = np.empty(0, np.uint8)
_NONE_F64 = np.empty(0, np.float64)


@dataclass
class UniverseResult:
    """What a universe run did and how long each phase took (seconds, wall clock)."""

    symbols: int
    sessions: int
    bars: int
    threads: int
    timings: dict[str, float] = field(default_factory=dict)
    quality: dict[str, float] = field(default_factory=dict)   # mean score per interval
    missing: dict[str, int] = field(default_factory=dict)     # missing bars per interval
    gaps: dict[str, int] = field(default_factory=dict)        # gap runs per interval

    @property
    def total_s(self) -> float:
        return sum(self.timings.values())


@dataclass
class _SymbolWork:
    """The arrays one symbol's passes produce."""

    bars: Bars
    derived: dict[str, Bars] = field(default_factory=dict)
    gaps: dict[str, Any] = field(default_factory=dict)         # interval -> GapArrays
    per_session: dict[str, tuple] = field(default_factory=dict)  # interval -> arrays


def run_universe(data: Mapping[str, Bars], calendar: Calendar | None = None, *,
                 base: str = "1m", derived=("5m", "15m", "1h"), start=None, end=None,
                 out_dir: str | os.PathLike | None = None, threads: int | None = None,
                 ) -> UniverseResult:
    """Derived bars, gaps, quality and per-session JSON for every symbol over a date range.

    Parameters
    ----------
    data : mapping of symbol to Bars
        Each symbol's base bars over the whole range (sorted, validated ``Bars``).
    calendar : Calendar, optional
        Defaults to ``Calendar.always()``.
    base, derived : str, iterable of str
        The base interval of the bars and the intervals to derive.
    start, end : optional
        The range whose sessions are expected (default: the sessions the bars touch).
    out_dir : path, optional
        Where ``<session>/session.json`` goes; nothing is written without it.
    threads : int, optional
        Threads over symbols (default: the number of cores).

    Returns
    -------
    UniverseResult
        Counts, the timing of each phase (load, aggregate, gaps, quality, export) and the
        mean quality per interval.
    """
    calendar = default_calendar(calendar)
    base_iv = parse_interval(base)
    derived_iv = [parse_interval(d) for d in derived]
    for d in derived_iv:
        check_derivable(base_iv, d)
    threads = threads or os.cpu_count() or 1
    symbols = list(data)
    firsts = [int(b.ts[0]) for b in data.values() if len(b)]
    lasts = [int(b.ts[-1]) for b in data.values() if len(b)]
    if not firsts and (start is None or end is None):
        raise ValueError("no bars: give start= and end=")
    span = np.array([min(firsts), max(lasts)] if firsts else [], np.int64)
    windows = session_windows(calendar, span, start, end)
    names = [base_iv.name] + [d.name for d in derived_iv]
    grids = {iv.name: make_grid(windows, iv, base_iv) for iv in [base_iv] + derived_iv}
    starts = _session_starts(windows)
    expected = {name: _expected_per_session(grids[name], windows) for name in names}
    work = {s: _SymbolWork(data[s]) for s in symbols}
    phases = ("load", "aggregate", "gaps", "quality")
    spent = {name: 0.0 for name in phases}   # thread time per phase, summed over threads
    local = threading.local()

    def scratch(rows: int) -> list[np.ndarray]:
        """This thread's output columns for derived bars, reused from symbol to symbol
        (fresh memory for every call would cost a page fault per 4 KiB)."""
        cols = getattr(local, "cols", None)
        if cols is None or cols[0].shape[0] < rows:
            cols = [np.empty(rows, np.int64)] + [np.empty(rows, np.float64) for _ in range(5)]
            cols += [np.empty(rows, np.int64), np.empty(rows, np.float64)]
            local.cols = cols
        return cols

    def process(symbol: str) -> dict[str, float]:
        """Every pass over one symbol: validate, aggregate, find gaps, score per session.
        The derived bars live in this thread's scratch only as long as they are needed."""
        w = work[symbol]
        bars = w.bars
        clock = [time.perf_counter()]
        took = {}

        def lap(name):
            now = time.perf_counter()
            took[name] = took.get(name, 0.0) + now - clock[0]
            clock[0] = now

        if len(bars):
            first, counts = _validation.validate_bars(
                bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                windows.open_ns, windows.close_ns, base_iv.ns, _NONE_U8, True)
            if first >= 0:
                fault = next(code for code, c in enumerate(counts) if c)
                raise_first_fault(bars.ts, bars.columns(), first, fault,
                                  f"{symbol} on calendar {calendar.name}")
        lap("load")
        sources = {base_iv.name: (bars.ts, _NONE_F64)}
        lap("aggregate")
        for name in names:
            if name != base_iv.name:
                if len(bars):
                    cols, m = _aggregate(bars, grids[name], calendar, parse_interval(name),
                                         parts=1, out=scratch(len(bars)))
                    sources[name] = (cols[0][:m], cols[7][:m])
                else:
                    sources[name] = (bars.ts, _NONE_F64)
                lap("aggregate")
            ts, cov = sources[name]
            w.gaps[name] = gaps_on_grid(ts, grids[name], parts=1)
            lap("gaps")
            present = np.empty(n_sessions, np.int64)
            covered = np.empty(n_sessions, np.float64)
            partial = np.empty(n_sessions, np.int64)
            _quality.score_groups(ts, cov, starts, present, covered, partial)
            w.per_session[name] = (present, covered, partial)
            lap("quality")
        return took

    n_sessions = len(starts)
    wall = time.perf_counter()
    if threads > 1 and len(symbols) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(process, symbols))
    else:
        results = [process(s) for s in symbols]
    wall = time.perf_counter() - wall
    for took in results:
        for name, seconds in took.items():
            spent[name] += seconds
    # Wall time of the symbol passes, shared out over the phases by the thread time each took.
    total_spent = sum(spent.values()) or 1.0
    timings: dict[str, float] = {name: wall * spent[name] / total_spent for name in phases}

    t0 = time.perf_counter()
    if out_dir is not None:
        _export(Path(out_dir), calendar, windows, starts, symbols, work, names, expected,
                base_iv.name, [d.name for d in derived_iv])
    timings["export"] = time.perf_counter() - t0

    result = UniverseResult(len(symbols), len(starts), sum(len(b) for b in data.values()),
                            threads, timings)
    for name in names:
        cov = sum(float(w.per_session[name][1].sum()) for w in work.values())
        exp = float(expected[name].sum()) * len(symbols)
        result.quality[name] = 100.0 * cov / exp if exp else 100.0
        result.missing[name] = int(sum(w.gaps[name].missing for w in work.values()))
        result.gaps[name] = int(sum(len(w.gaps[name].start_ns) for w in work.values()))
    return result


def _session_starts(windows: Windows) -> np.ndarray:
    """The open of each session's first window."""
    ids = windows.session_ids
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.empty(0, int)
    return np.ascontiguousarray(windows.open_ns[first])


def _expected_per_session(grid: Grid, windows: Windows) -> np.ndarray:
    """Expected slots of the grid per session."""
    if grid.step_ns == 0:
        return np.ones(windows.n_sessions, np.int64)
    per_window = -((grid.open_ns - grid.close_ns) // grid.step_ns)
    ids = windows.session_ids
    return np.bincount(ids, weights=per_window, minlength=windows.n_sessions).astype(np.int64)


def _window_offsets(windows: Windows, tz) -> tuple[np.ndarray, bool]:
    """The UTC offset (s) of the exchange's zone at each window's open, and whether it holds
    for the whole window (no DST change inside any window)."""
    utc = _dt.timezone.utc
    epoch = _dt.datetime(1970, 1, 1, tzinfo=utc)

    def offset(ns):
        return int((epoch + _dt.timedelta(microseconds=ns // 1000)).astimezone(tz)
                   .utcoffset().total_seconds())

    opens = [offset(t) for t in windows.open_ns.tolist()]
    closes = [offset(t - 1) for t in windows.close_ns.tolist()]
    return np.array(opens, np.int64), opens == closes


_TIME_OF_DAY: list[str] | None = None


def _times_of_day(ns: np.ndarray, offsets_s: np.ndarray) -> list[str]:
    """``HH:MM:SS`` local times of day, given each value's UTC offset in seconds."""
    global _TIME_OF_DAY
    if _TIME_OF_DAY is None:
        _TIME_OF_DAY = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]
    table = _TIME_OF_DAY
    secs = (ns // 1_000_000_000 + offsets_s) % 86_400
    return [table[s] for s in secs.tolist()]


def _export(out_dir: Path, calendar: Calendar, windows: Windows, starts: np.ndarray,
            symbols: list[str], work: dict[str, _SymbolWork], names: list[str],
            expected: dict[str, np.ndarray], base: str, derived: list[str]) -> None:
    """One ``session.json`` per session, in the schema of ``SessionData.to_json``.

    The text is assembled from per-symbol pieces with string templates rather than through
    dicts and ``json.dumps`` (five times faster); ``tests`` check that it parses to exactly
    what ``SessionData.to_json`` gives for the same bars.
    """
    tz = calendar.tz
    offsets, constant = _window_offsets(windows, tz)
    n_sessions = len(starts)
    head = {s: (f'{json.dumps(s, ensure_ascii=False)}:{{"symbol":{json.dumps(s, ensure_ascii=False)},'
                f'"base_interval":{json.dumps(base)},"derived_intervals":{json.dumps(derived)},'
                f'"is_loaded":true,"rejected":{{}},"intervals":{{')
            for s in symbols}
    keys = {name: json.dumps(name) for name in names}
    exp_lists = {name: expected[name].tolist() for name in names}
    # Per symbol and interval: the JSON text of every interval entry, session by session.
    pieces: dict[str, list[list[str]]] = {s: [[] for _ in range(n_sessions)] for s in symbols}
    for s in symbols:
        w = work[s]
        rows = pieces[s]
        for name in names:
            g = w.gaps[name]
            bounds = np.r_[np.searchsorted(g.start_ns, starts), len(g.start_ns)].tolist()
            if constant:
                w_idx = np.searchsorted(windows.open_ns, g.start_ns, side="right") - 1
                off = offsets[np.clip(w_idx, 0, None)]
                st, en = _times_of_day(g.start_ns, off), _times_of_day(g.end_ns, off)
            else:
                st = [_tod(t, tz) for t in g.start_ns.tolist()]
                en = [_tod(t, tz) for t in g.end_ns.tolist()]
            counts = g.bar_count.tolist()
            ranges = [f'{{"start_time":"{a}","end_time":"{b}","bar_count":{c}}}'
                      for a, b, c in zip(st, en, counts)]
            present, covered, partial = (x.tolist() for x in w.per_session[name])
            exp = exp_lists[name]
            key = keys[name]
            for k in range(n_sessions):
                e, p, c = exp[k], present[k], covered[k]
                lo, hi = bounds[k], bounds[k + 1]
                # %.4f / %.6f parse to the same doubles as round(x, 4) / round(x, 6).
                score = 100.0 * c / e if e else 100.0
                rows[k].append(
                    f'{key}:{{"bars":{p},"quality":{{"score":{score:.4f},"expected":{e},'
                    f'"present":{p},"missing":{e - p},"partial":{partial[k]},'
                    f'"coverage":{c:.6f},"rejected":{{}}}},"gaps":{{"gap_count":'
                    f'{hi - lo},"missing_bars":{sum(counts[lo:hi]) if hi > lo else 0},'
                    f'"ranges":[{",".join(ranges[lo:hi]) if hi > lo else ""}]}}}}')
    session_info = _session_infos(windows, calendar)
    # The text is made under the GIL; writing, fsync and rename release it, so they go to a
    # few writer threads and overlap with making the next session's text.
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="sessiondata-export") as pool:
        pending = []
        for k in range(n_sessions):
            label = str(windows.sessions[k])
            info = dumps_compact(session_info[k]).rstrip()[:-1]  # drop the closing brace
            body = ",".join(head[s] + ",".join(pieces[s][k]) + "}}" for s in symbols)
            pending.append(pool.submit(
                write_atomic, out_dir / label / "session.json",
                f'{info},"symbols":{{{body}}},"unknown_bars":{{}}}}\n'))
        for done in pending:
            done.result()  # re-raise the first write that failed


def _tod(ns: int, tz) -> str:
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (epoch + _dt.timedelta(microseconds=ns // 1000)).astimezone(tz).strftime("%H:%M:%S")


def _session_infos(windows: Windows, calendar: Calendar) -> list[dict[str, Any]]:
    """The session fields of ``SessionData.session_info`` for every session."""
    from .session import session_fields

    out = []
    for k in range(windows.n_sessions):
        sl = windows.session_slice(k)
        out.append(session_fields(str(windows.sessions[k]), windows.open_ns[sl],
                                  windows.close_ns[sl], calendar))
    return out
