"""The kernels' Python side: grids (an interval laid on session windows), the one rule for
the buckets and slots of a grid, the span a grid is scored over, the splitting of large
inputs at window opens for threads, and the wrappers that run the aggregation, gap and
quality kernels (``sessiondata._core``) over a grid.

The bucket/slot rule, in Python written once here (:func:`slots_between`): a window
``[open, close)`` holds ``ceil((close - open) / step)`` buckets of ``step`` aligned to its
open, the last one short when ``step`` does not divide it.  The compiled side has the same
rule once, in ``_core/common.pxd``.  Policy (which sessions, which symbols) lives with the
callers: ``api`` for one array of bars, ``engine`` for a whole run, ``processing`` for a live
session.
"""

from __future__ import annotations

import datetime as _dt
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from ._core import aggregation as _aggregation
from ._core import gaps as _gaps
from ._core import quality as _quality
from ._core import validation as _validation
from .bars import FAULTS, BadBarError, Bars, raise_first_fault
from .calendar import Calendar, Windows
from .intervals import Interval, check_derivable
from .results import Gaps, QualityReport

I64_MAX = int(np.iinfo(np.int64).max)
I64_MIN = int(np.iinfo(np.int64).min)
_ALWAYS: Calendar | None = None
_NONE_U8 = np.empty(0, np.uint8)


def default_calendar(calendar: Calendar | None = None) -> Calendar:
    """``calendar`` itself, or ``Calendar.always()`` (made once) when it is None."""
    global _ALWAYS
    if calendar is not None:
        if not isinstance(calendar, Calendar):
            raise TypeError(
                f"calendar must be a Calendar (e.g. Calendar.exchange('XNYS')), got "
                f"{type(calendar).__name__} {calendar!r}")
        return calendar
    if _ALWAYS is None:
        _ALWAYS = Calendar.always()
    return _ALWAYS


class Grid(NamedTuple):
    """An interval laid on session windows: the arrays the kernels take.

    ``step_ns`` is 0 for the session interval, where each window of the grid is a whole
    session and ``base_slots`` says how many base slots it holds (breaks excluded).
    ``lo_ns``/``hi_ns`` bound the part of each window that is scored: the base slots that
    start at or after ``lo_ns`` and end by ``hi_ns``.  A grid cut to a span (see
    :func:`bound_grid`) keeps its buckets aligned to the window's real open, so a bucket that
    straddles a bound stays in the grid and is scored over its slots inside the span.
    """

    open_ns: np.ndarray
    close_ns: np.ndarray
    base_slots: np.ndarray
    step_ns: int
    base_ns: int
    last_open: np.ndarray  # open of the last session window in each grid window
    lo_ns: np.ndarray
    hi_ns: np.ndarray
    session: np.ndarray    # session index of each grid window

    @property
    def is_cut(self) -> bool:
        """Whether any window is scored over less than its whole span."""
        return bool((self.lo_ns != self.open_ns).any() or (self.hi_ns != self.close_ns).any())


def slots_between(open_ns: np.ndarray, close_ns: np.ndarray, step: int) -> np.ndarray:
    """The bucket/slot rule: ``ceil((close - open) / step)`` buckets of ``step`` in each
    ``[open, close)``, aligned to the open (the last one short)."""
    return -((open_ns - close_ns) // step)


_slots = slots_between


def buckets_per_window(grid: "Grid") -> np.ndarray:
    """Expected buckets in each window of a grid (one per window of a session grid)."""
    if grid.step_ns:
        return slots_between(grid.open_ns, grid.close_ns, grid.step_ns)
    return np.ones(len(grid.open_ns), np.int64)


def make_grid(windows: Windows, interval: Interval, base: Interval) -> Grid:
    """Lay ``interval`` on ``windows`` for bars of ``base``."""
    check_derivable(base, interval)
    base_ns = base.ns
    slots = _slots(windows.open_ns, windows.close_ns, base_ns)
    ids = np.asarray(windows.session_ids, np.int64)
    if not interval.is_session:
        return Grid(windows.open_ns, windows.close_ns, slots, interval.ns, base_ns,
                    windows.open_ns, windows.open_ns, windows.close_ns, ids)
    if len(windows) == 0:
        return Grid(windows.open_ns, windows.close_ns, slots, 0, base_ns, windows.open_ns,
                    windows.open_ns, windows.close_ns, ids)
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    last = np.r_[first[1:], len(ids)] - 1
    opens = np.ascontiguousarray(windows.open_ns[first])
    closes = np.ascontiguousarray(windows.close_ns[last])
    return Grid(opens, closes, np.add.reduceat(slots, first), 0, base_ns,
                np.ascontiguousarray(windows.open_ns[last]), opens, closes,
                np.ascontiguousarray(ids[first]))


def bound_grid(grid: Grid, windows: Windows, lo_ns: np.ndarray, hi_ns: np.ndarray) -> Grid:
    """The grid scored over ``[lo_ns, hi_ns)`` of each of its windows (one bound per grid
    window; a window whose bounds hold no whole base slot leaves the grid).

    The rule, the same for every interval: a base slot is expected when it starts at or after
    the lower bound and ends by the upper one; a bucket is expected when it holds at least
    one expected base slot, and its coverage counts only those.  Buckets stay aligned to the
    window's open: the first window opens at the bucket that holds its first expected base
    slot, the last closes at the end of the bucket that holds its last one.  ``windows`` are
    the real session windows (a session bucket counts the base slots of its windows, breaks
    excluded).
    """
    base = grid.base_ns
    o, c = grid.open_ns, grid.close_ns
    lo_ns, hi_ns = np.asarray(lo_ns, np.int64), np.asarray(hi_ns, np.int64)
    if not (lo_ns > o).any() and not (hi_ns < c).any():
        # No window is cut (the common case): every window keeps its whole span, and the
        # grid as laid out is the grid bounded.
        return grid
    lo = np.clip(lo_ns, o, c)
    hi = np.clip(hi_ns, o, c)
    # Whole base slots inside the bounds, slot starts counted from the window's open; an
    # unbounded side keeps the window's own edge.
    if grid.step_ns > 0:
        first = np.where(lo > o, o + _slots(o, lo, base) * base, o)
        last = np.where(hi < c, o + ((hi - o) // base) * base, c)
    else:
        first, last = lo, hi
    if grid.step_ns == 0:
        cut = (lo > o) | (hi < c)
        base_slots = grid.base_slots.copy()
        if cut.any():
            which = np.flatnonzero(cut)
            base_slots[which] = _session_slots(windows, grid, lo, hi, which)
        keep = base_slots > 0
    else:
        keep = last > first
    first, last = first[keep], last[keep]
    if grid.step_ns > 0:
        step = grid.step_ns
        ok, ck = o[keep], c[keep]
        new_open = ok + ((first - ok) // step) * step
        new_close = np.minimum(ck, ok + _slots(ok, last, step) * step)
        slots = _slots(new_open, new_close, base)
        return Grid(np.ascontiguousarray(new_open), np.ascontiguousarray(new_close), slots,
                    step, base, np.ascontiguousarray(new_open), np.ascontiguousarray(first),
                    np.ascontiguousarray(last), np.ascontiguousarray(grid.session[keep]))
    return Grid(np.ascontiguousarray(o[keep]), np.ascontiguousarray(c[keep]),
                np.ascontiguousarray(base_slots[keep]), 0, base,
                np.ascontiguousarray(grid.last_open[keep]), np.ascontiguousarray(first),
                np.ascontiguousarray(last), np.ascontiguousarray(grid.session[keep]))


def _session_slots(windows: Windows, grid: Grid, lo: np.ndarray, hi: np.ndarray,
                   which: np.ndarray) -> np.ndarray:
    """Base slots inside the bounds of the sessions ``which`` of a session grid (the
    sessions' real windows, breaks excluded)."""
    base = grid.base_ns
    out = np.empty(len(which), np.int64)
    for j, k in enumerate(which.tolist()):
        a0 = int(np.searchsorted(windows.open_ns, grid.open_ns[k]))
        a1 = int(np.searchsorted(windows.close_ns, grid.close_ns[k], side="right"))
        wo, wc = windows.open_ns[a0:a1], windows.close_ns[a0:a1]
        a = wo + _slots(wo, np.maximum(wo, lo[k]), base) * base
        b = wo + ((np.minimum(wc, hi[k]) - wo) // base) * base
        out[j] = int(np.maximum((b - a) // base, 0).sum())
    return out


def cut_grid(grid: Grid, windows: Windows, since_ns: int | None = None,
             until_ns: int | None = None) -> Grid:
    """The grid scored from ``since_ns`` to ``until_ns`` (either may be None)."""
    lo = np.full(len(grid.open_ns), I64_MIN if since_ns is None else int(since_ns), np.int64)
    hi = np.full(len(grid.open_ns), I64_MAX if until_ns is None else int(until_ns), np.int64)
    return bound_grid(grid, windows, lo, hi)


def edge_coverage(ts: np.ndarray, count: np.ndarray, coverage: np.ndarray,
                  grid: Grid) -> np.ndarray:
    """``coverage`` of derived bars on a cut grid: a bucket that straddles a bound counts
    its base bars over its expected base slots only (returns ``coverage`` itself when no
    bucket does)."""
    if len(ts) == 0 or not grid.is_cut:
        return coverage
    cut = np.flatnonzero((grid.lo_ns != grid.open_ns) | (grid.hi_ns != grid.close_ns))
    fixed = None
    step, base = grid.step_ns, grid.base_ns
    if step == 0:  # a session bucket: its base slots inside the span are the grid's
        for w in cut.tolist():
            i = int(np.searchsorted(ts, grid.open_ns[w]))
            if i < len(ts) and ts[i] == grid.open_ns[w] and grid.base_slots[w] > 0:
                if fixed is None:
                    fixed = coverage.copy()
                fixed[i] = count[i] / grid.base_slots[w]
        return coverage if fixed is None else fixed
    for w in cut.tolist():
        lo, hi = int(grid.lo_ns[w]), int(grid.hi_ns[w])
        for start in {int(grid.open_ns[w]), int(grid.close_ns[w]) - 1}:
            o = int(grid.open_ns[w])
            start = o + ((start - o) // step) * step
            i = int(np.searchsorted(ts, start))
            if i == len(ts) or ts[i] != start:
                continue
            end = min(start + step, int(grid.close_ns[w]))
            inside = (min(end, hi) - max(start, lo)) // base
            if inside > 0:
                if fixed is None:
                    fixed = coverage.copy()
                fixed[i] = count[i] / inside
    return coverage if fixed is None else fixed


def to_ns(value: Any, calendar: Calendar) -> int:
    """A time as int64 ns UTC: ints are ns, naive datetimes are in the calendar's zone."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=calendar.tz)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if hasattr(value, "value") and hasattr(value, "tz"):  # pandas Timestamp
        if value.tz is None:
            value = value.tz_localize(calendar.tz)
        return int(value.value)
    raise TypeError(f"cannot read {value!r} as a time")


def session_windows(calendar: Calendar, ts: np.ndarray, start: Any = None,
                    end: Any = None) -> Windows:
    """The windows of the whole sessions that the bars (or ``[start, end)``) touch."""
    lo = to_ns(start, calendar) if start is not None else (int(ts[0]) if len(ts) else None)
    hi = to_ns(end, calendar) if end is not None else (int(ts[-1]) + 1 if len(ts) else None)
    if lo is None or hi is None:
        return Windows.empty()  # no bars and no range: no session is expected
    return calendar.windows(lo, max(hi, lo + 1))


# -- partitioning ---------------------------------------------------------------------------

PARALLEL_MIN_BARS = 1_000_000
_POOL: ThreadPoolExecutor | None = None


def thread_count(n: int | None = None) -> int:
    """Threads for one call over ``n`` bars: 1 below PARALLEL_MIN_BARS, else the cores (or
    the SESSIONDATA_THREADS environment variable); the cores when ``n`` is None."""
    if n is not None and n < PARALLEL_MIN_BARS:
        return 1
    env = os.environ.get("SESSIONDATA_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 8))


def pool() -> ThreadPoolExecutor:
    """The package's shared thread pool for kernel calls (the kernels release the GIL)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sessiondata")
    return _POOL


def split_at_windows(ts: np.ndarray, g_open: np.ndarray,
                     parts: int) -> list[tuple[int, int, int, int]]:
    """Split bars and grid windows into ``parts`` independent pieces at window opens, as
    (first bar, end bar, first window, end window).  Buckets never span a window, so the
    pieces aggregate independently."""
    n, nw = ts.shape[0], g_open.shape[0]
    cuts = [(0, 0)]
    for j in range(1, parts):
        k = int(np.searchsorted(g_open, ts[n * j // parts], side="right"))
        if k <= cuts[-1][1] or k >= nw:
            continue
        cuts.append((int(np.searchsorted(ts, g_open[k])), k))
    cuts.append((n, nw))
    return [(b0, b1, w0, w1) for (b0, w0), (b1, w1) in zip(cuts[:-1], cuts[1:])]


def _fail(kernel_fault: int, row: int, bars: Bars, calendar: Calendar, what: str) -> None:
    if kernel_fault == 8:
        raise RuntimeError(f"{what}: more buckets than the bound allowed (row {row}); "
                           "this is a bug, please report it")
    raise_first_fault(bars.ts, bars.columns(), row, kernel_fault,
                      f"{what} on calendar {calendar.name}")


def derived_columns(rows: int) -> list[np.ndarray]:
    """Empty output columns for ``rows`` derived bars (ts, prices, volume, count, coverage)."""
    cols = [np.empty(rows, np.int64)] + [np.empty(rows, np.float64) for _ in range(5)]
    return cols + [np.empty(rows, np.int64), np.empty(rows, np.float64)]


def _grid_args(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    return grid.open_ns, grid.close_ns, grid.base_slots, grid.step_ns


def _capacity(ts: np.ndarray, grid: Grid) -> int:
    """Rows enough for the derived bars of bars ``ts`` on ``grid``."""
    if not len(ts):
        return 0
    return min(len(ts), _aggregation.bucket_capacity(grid.open_ns, grid.close_ns, grid.step_ns,
                                                     int(ts[0]), int(ts[-1])))


def _edge_fixed(cols: list[np.ndarray], m: int, grid: Grid) -> None:
    """Coverage of the buckets cut by the grid's bounds, counted over their expected slots."""
    if grid.is_cut and m:
        fixed = edge_coverage(cols[0][:m], cols[6][:m], cols[7][:m], grid)
        if fixed is not cols[7][:m]:
            cols[7][:m] = fixed


def aggregate_on_grids(bars: Bars, grids: list[Grid], calendar: Calendar,
                       targets: list[Interval]) -> list[tuple[list[np.ndarray], int]]:
    """Every derived interval of ``bars`` in one pass over them (``aggregation.aggregate_grids``:
    each interval's floats as a pass of its own makes them), on this thread; per grid, the
    output columns and how many rows hold bars (as :func:`aggregate_on_grid`)."""
    if not grids:
        return []
    base_ns = grids[0].base_ns
    if any(g.base_ns != base_ns for g in grids):
        raise ValueError("aggregate_on_grids: the grids are laid for different base intervals")
    outs = [derived_columns(_capacity(bars.ts, g)) for g in grids]
    results = _aggregation.aggregate_grids(
        bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
        [_grid_args(g) for g in grids], outs, base_ns)
    for (m, fault, row), target in zip(results, targets):
        if fault:
            _fail(fault, row, bars, calendar, f"resample to {target.name}")
    for cols, (m, _f, _r), grid in zip(outs, results, grids):
        _edge_fixed(cols, m, grid)
    return [(cols, m) for cols, (m, _f, _r) in zip(outs, results)]


def aggregate_on_grid(bars: Bars, grid: Grid, calendar: Calendar, target: Interval,
                      parts: int | None = None,
                      out: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], int]:
    """Run the aggregation kernel, on several threads for large inputs (or ``parts``);
    returns the output columns (allocated to an upper bound, or ``out`` when given and long
    enough) and how many rows hold bars.  Coverage of buckets cut by the grid's bounds is
    counted over their expected slots."""
    n = len(bars)
    parts = thread_count(n) if parts is None else parts
    pieces = (split_at_windows(bars.ts, grid.open_ns, parts) if parts > 1
              else [(0, n, 0, len(grid.open_ns))])
    caps = [
        0 if b1 == b0 else
        min(b1 - b0, _aggregation.bucket_capacity(grid.open_ns[w0:w1], grid.close_ns[w0:w1],
                                                   grid.step_ns, int(bars.ts[b0]),
                                                   int(bars.ts[b1 - 1])))
        for b0, b1, w0, w1 in pieces
    ]
    offsets = np.r_[0, np.cumsum(caps)].astype(int)
    total = int(offsets[-1])
    cols = out if out is not None and out[0].shape[0] >= total else derived_columns(total)
    src = (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)

    def run(j: int) -> tuple[int, int, int]:
        b0, b1, w0, w1 = pieces[j]
        lo, hi = offsets[j], offsets[j + 1]
        if b1 == b0:
            return 0, 0, -1
        piece = (grid.open_ns[w0:w1], grid.close_ns[w0:w1], grid.base_slots[w0:w1],
                 grid.step_ns)
        ts, o, h, low, c, v = (a[b0:b1] for a in src)
        return _aggregation.aggregate_grids(ts, o, h, low, c, v, [piece],
                                            [[x[lo:hi] for x in cols]], grid.base_ns)[0]

    results = list(pool().map(run, range(len(pieces)))) if len(pieces) > 1 else [run(0)]
    m = 0
    for j, (written, fault, row) in enumerate(results):
        if fault:
            _fail(fault, pieces[j][0] + row, bars, calendar, f"resample to {target.name}")
        lo = offsets[j]
        if lo != m:  # close the hole an earlier piece left (it had gaps)
            for c in cols:
                c[m:m + written] = c[lo:lo + written]
        m += written
    _edge_fixed(cols, m, grid)
    return cols, m


def check_in_sessions(bars: Bars, windows: Windows, base: Interval, calendar: Calendar,
                      what: str) -> None:
    """Raise at the first bar outside every window or off the base grid."""
    first, counts = _validation.validate_bars(
        bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
        windows.open_ns, windows.close_ns, base.ns, _NONE_U8, True,
        volume_optional=not bars.has_volume,
    )
    if first >= 0:
        fault = next(code for code, c in enumerate(counts) if c)
        _fail(fault, first, bars, calendar, what)


def gaps_on_grid(ts: np.ndarray, grid: Grid, tz: Any = None, until_ns: int | None = None,
                 parts: int | None = None) -> Gaps:
    """Gaps of slot starts ``ts`` on a grid (validated by the kernel: raises on a bad row).

    Large inputs run on several threads (or ``parts``), split at window opens (runs never
    cross a window).
    """
    until = I64_MAX if until_ns is None else int(until_ns)
    n = ts.shape[0]
    parts = thread_count(n) if parts is None else parts
    pieces = (split_at_windows(ts, grid.open_ns, parts) if parts > 1
              else [(0, n, 0, len(grid.open_ns))])

    def run(j: int) -> tuple[np.ndarray, np.ndarray, tuple]:
        b0, b1, w0, w1 = pieces[j]
        cap = (b1 - b0) + (w1 - w0) + 1
        starts = np.empty(cap, np.int64)
        counts = np.empty(cap, np.int64)
        result = _gaps.find_gaps_slots(ts[b0:b1], grid.open_ns[w0:w1], grid.close_ns[w0:w1],
                                       grid.step_ns, until, starts, counts)
        return starts, counts, result

    results = list(pool().map(run, range(len(pieces)))) if len(pieces) > 1 else [run(0)]
    expected = present = missing = 0
    all_starts, all_counts = [], []
    for j, (starts, counts, (n_runs, e, p, mi, fault, row)) in enumerate(results):
        if fault:
            row += pieces[j][0]
            raise BadBarError(f"row {row}: {FAULTS[fault]} "
                              f"(ts={np.datetime64(int(ts[row]), 'ns')}Z)", row, fault)
        all_starts.append(starts[:n_runs])
        all_counts.append(counts[:n_runs])
        expected, present, missing = expected + e, present + p, missing + mi
    starts = np.concatenate(all_starts) if len(all_starts) > 1 else all_starts[0].copy()
    counts = np.concatenate(all_counts) if len(all_counts) > 1 else all_counts[0].copy()
    if grid.step_ns > 0:
        ends = starts + counts * grid.step_ns
    else:
        # Session slots: a run of whole sessions ends where its last session closes.
        idx = np.searchsorted(grid.open_ns, starts) + counts - 1
        ends = grid.close_ns[idx] if len(starts) else starts.copy()
    return Gaps(starts, ends, counts, tz=tz, expected=expected, present=present,
                missing=missing)


def score_on_grid(source: Bars, grid: Grid, interval: str, until_ns: int | None = None,
                  rejected: dict[str, int] | None = None) -> QualityReport:
    """Quality of validated bars laid on a grid."""
    until = I64_MAX if until_ns is None else int(until_ns)
    coverage = source.coverage if source.coverage is not None else np.empty(0, np.float64)
    expected, present, covered, partial = _quality.score_quality(
        source.ts, coverage, grid.open_ns, grid.close_ns, grid.step_ns, until)
    return QualityReport.of(interval, int(expected), int(present), int(partial),
                            float(covered), rejected)
