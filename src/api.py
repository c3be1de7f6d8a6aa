"""The functional API: ``resample``, ``find_gaps`` and ``quality`` over ``Bars`` and a ``Calendar``.

Each call lays the interval on the calendar's session windows (a *grid*), validates in Python
what is cheap to validate, and hands the arrays to one compiled pass.
"""

from __future__ import annotations

import datetime as _dt
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ._core import aggregation as _aggregation
from ._core import gaps as _gaps
from ._core import quality as _quality
from .bars import Bars, BadBarError, FAULTS, raise_first_fault
from .calendar import Calendar, Windows
from .intervals import Interval, check_derivable, parse_interval

_I64_MAX = np.iinfo(np.int64).max
_ALWAYS: Calendar | None = None


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
    """

    open_ns: np.ndarray
    close_ns: np.ndarray
    base_slots: np.ndarray
    step_ns: int
    base_ns: int
    last_open: np.ndarray  # open of the last session window in each grid window


def make_grid(windows: Windows, interval: Interval, base: Interval) -> Grid:
    """Lay ``interval`` on ``windows`` for bars of ``base``."""
    check_derivable(base, interval)
    base_ns = base.ns
    slots = -((windows.open_ns - windows.close_ns) // base_ns)  # ceil((close - open) / base)
    if not interval.is_session:
        return Grid(windows.open_ns, windows.close_ns, slots, interval.ns, base_ns,
                    windows.open_ns)
    if len(windows) == 0:
        return Grid(windows.open_ns, windows.close_ns, slots, 0, base_ns, windows.open_ns)
    ids = windows.session_ids
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    last = np.r_[first[1:], len(ids)] - 1
    return Grid(
        np.ascontiguousarray(windows.open_ns[first]),
        np.ascontiguousarray(windows.close_ns[last]),
        np.add.reduceat(slots, first),
        0,
        base_ns,
        np.ascontiguousarray(windows.open_ns[last]),
    )


def infer_interval(ts: np.ndarray) -> Interval:
    """The smallest step between consecutive timestamps, as an interval (for bars that do
    not say their interval)."""
    if ts.shape[0] < 2:
        raise ValueError("cannot infer the bar interval from fewer than two bars; pass base=")
    step = int(np.diff(ts).min())
    for unit, ns in (("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000)):
        if step % ns == 0:
            return parse_interval(f"{step // ns}{unit}")
    raise ValueError(f"bars are {step} ns apart, not a whole number of seconds; pass base=")


def _base_of(bars: Bars, base) -> Interval:
    if base is not None:
        return parse_interval(base)
    if bars.interval is not None:
        return bars.interval
    return infer_interval(bars.ts)


def _to_ns(value, calendar: Calendar) -> int:
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


def session_windows(calendar: Calendar, ts: np.ndarray, start=None, end=None) -> Windows:
    """The windows of the whole sessions that the bars (or ``[start, end)``) touch."""
    lo = _to_ns(start, calendar) if start is not None else (int(ts[0]) if len(ts) else None)
    hi = _to_ns(end, calendar) if end is not None else (int(ts[-1]) + 1 if len(ts) else None)
    if lo is None or hi is None:
        return Windows.empty()  # no bars and no range: no session is expected
    return calendar.windows(lo, max(hi, lo + 1))


def _fail(kernel_fault: int, row: int, bars: Bars, calendar: Calendar, what: str):
    if kernel_fault == 8:
        raise RuntimeError(f"{what}: more buckets than the bound allowed (row {row}); "
                           "this is a bug, please report it")
    cols = bars.columns()
    where = f"{what} on calendar {calendar.name}"
    raise_first_fault(bars.ts, cols, row, kernel_fault, where)


def resample(bars: Bars, interval, calendar: Calendar | None = None, *, base=None) -> Bars:
    """Aggregate bars into a coarser interval, bucketed on the calendar's sessions.

    Buckets are aligned to each session window's open and never span a close or a break;
    the last bucket of a window may be short.  ``"1d"`` gives one bar per session.  Each bar
    is the first open, highest high, lowest low, last close and summed volume of its base
    bars, with ``count`` (base bars present) and ``coverage`` (count over the base slots the
    bucket spans).  Buckets with no base bar are absent (see :func:`find_gaps`).

    Parameters
    ----------
    bars : Bars
        Sorted base bars (e.g. 1m).
    interval : str
        The target interval, a whole multiple of the base, or ``"1d"``.
    calendar : Calendar, optional
        Defaults to ``Calendar.always()`` (24/7, sessions are UTC days).
    base : str, optional
        The base interval, when ``bars.interval`` is not set (else inferred from the data).

    Returns
    -------
    Bars
        With ``interval`` set and ``count`` and ``coverage`` columns.

    Raises
    ------
    ValueError
        A bar outside every session window, off the base grid or out of order (naming the
        row), or an interval that is not a whole multiple of the base.
    """
    calendar = default_calendar(calendar)
    target = parse_interval(interval)
    n = len(bars)
    if n or base is not None or bars.interval is not None:
        # Empty bars that do not say their interval have none to check: empty output.
        base_iv = _base_of(bars, base)
        check_derivable(base_iv, target)
    if n == 0:
        out = Bars.empty(target)
        out.count = np.empty(0, np.int64)
        out.coverage = np.empty(0, np.float64)
        return out
    windows = session_windows(calendar, bars.ts)
    if target.is_session:
        # Session buckets contain the breaks, so check the bars against the real windows.
        check_in_sessions(bars, windows, base_iv, calendar, "resample")
    grid = make_grid(windows, target, base_iv)
    cols, m = _aggregate(bars, grid, calendar, target)
    if m < cols[0].shape[0] // 2:  # do not keep a large, mostly empty block alive
        cols = [c[:m].copy() for c in cols]
    else:
        cols = [c[:m] for c in cols]
    return Bars(*cols[:6], count=cols[6], coverage=cols[7], interval=target, validate=False)


def _chunks(ts: np.ndarray, g_open: np.ndarray, parts: int) -> list[tuple[int, int, int, int]]:
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


def _aggregate(bars: Bars, grid: Grid, calendar: Calendar, target: Interval,
               parts: int | None = None, out: list[np.ndarray] | None = None):
    """Run the aggregation kernel, on several threads for large inputs (or ``parts``);
    returns the output columns (allocated to an upper bound, or ``out`` when given and long
    enough) and how many rows hold bars."""
    n = len(bars)
    parts = thread_count(n) if parts is None else parts
    pieces = _chunks(bars.ts, grid.open_ns, parts) if parts > 1 else [(0, n, 0, len(grid.open_ns))]
    caps = [
        0 if b1 == b0 else
        min(b1 - b0, _aggregation.bucket_capacity(grid.open_ns[w0:w1], grid.close_ns[w0:w1],
                                                   grid.step_ns, int(bars.ts[b0]),
                                                   int(bars.ts[b1 - 1])))
        for b0, b1, w0, w1 in pieces
    ]
    offsets = np.r_[0, np.cumsum(caps)].astype(int)
    total = int(offsets[-1])
    if out is not None and out[0].shape[0] >= total:
        cols = out
    else:
        cols = [np.empty(total, np.int64)] + [np.empty(total, np.float64) for _ in range(5)]
        cols += [np.empty(total, np.int64), np.empty(total, np.float64)]
    src = (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)

    def run(j):
        b0, b1, w0, w1 = pieces[j]
        lo, hi = offsets[j], offsets[j + 1]
        if b1 == b0:
            return 0, 0, -1
        return _aggregation.aggregate_bars(
            *(a[b0:b1] for a in src),
            grid.open_ns[w0:w1], grid.close_ns[w0:w1], grid.base_slots[w0:w1],
            grid.step_ns, grid.base_ns, *(c[lo:hi] for c in cols))

    results = list(_pool().map(run, range(len(pieces)))) if len(pieces) > 1 else [run(0)]
    m = 0
    for j, (written, fault, row) in enumerate(results):
        if fault:
            _fail(fault, pieces[j][0] + row, bars, calendar, f"resample to {target.name}")
        lo = offsets[j]
        if lo != m:  # close the hole an earlier piece left (it had gaps)
            for c in cols:
                c[m:m + written] = c[lo:lo + written]
        m += written
    return cols, m


PARALLEL_MIN_BARS = 1_000_000
_POOL: ThreadPoolExecutor | None = None


def thread_count(n: int) -> int:
    """Threads for one call over n bars: 1 below PARALLEL_MIN_BARS, else the cores (or the
    SESSIONDATA_THREADS environment variable)."""
    if n < PARALLEL_MIN_BARS:
        return 1
    env = os.environ.get("SESSIONDATA_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 8))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sessiondata")
    return _POOL


def check_in_sessions(bars: Bars, windows: Windows, base: Interval, calendar: Calendar,
                      what: str) -> None:
    """Raise at the first bar outside every window or off the base grid."""
    from ._core import validation as _validation

    first, counts = _validation.validate_bars(
        bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
        windows.open_ns, windows.close_ns, base.ns, np.empty(0, np.uint8), True,
    )
    if first >= 0:
        fault = next(code for code, c in enumerate(counts) if c)
        _fail(fault, first, bars, calendar, what)


@dataclass(frozen=True)
class GapInfo:
    """A run of consecutive expected bars that are missing.

    ``end_time`` is exclusive: ``end_time - start_time == bar_count * interval``.  Times are
    timezone-aware, in the calendar's zone.
    """

    start_time: _dt.datetime
    end_time: _dt.datetime
    bar_count: int

    def __repr__(self) -> str:
        return (f"GapInfo({self.start_time.isoformat(sep=' ')} -> "
                f"{self.end_time.strftime('%H:%M:%S')}, {self.bar_count} bars)")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: exchange-local times of day."""
        return {
            "start_time": self.start_time.strftime("%H:%M:%S"),
            "end_time": self.end_time.strftime("%H:%M:%S"),
            "bar_count": int(self.bar_count),
        }


class GapArrays(NamedTuple):
    """Gaps as arrays: ``start_ns``, ``end_ns`` (exclusive), ``bar_count``; with the slot
    counts they came from."""

    start_ns: np.ndarray
    end_ns: np.ndarray
    bar_count: np.ndarray
    expected: int
    present: int
    missing: int


def gaps_on_grid(ts: np.ndarray, grid: Grid, until_ns: int | None = None,
                 parts: int | None = None) -> GapArrays:
    """Gaps of slot starts ``ts`` on a grid (validated by the kernel: raises on a bad row).

    Large inputs run on several threads (or ``parts``), split at window opens (runs never
    cross a window).
    """
    until = _I64_MAX if until_ns is None else int(until_ns)
    n = ts.shape[0]
    parts = thread_count(n) if parts is None else parts
    pieces = _chunks(ts, grid.open_ns, parts) if parts > 1 else [(0, n, 0, len(grid.open_ns))]

    def run(j):
        b0, b1, w0, w1 = pieces[j]
        cap = (b1 - b0) + (w1 - w0) + 1
        starts = np.empty(cap, np.int64)
        counts = np.empty(cap, np.int64)
        result = _gaps.find_gaps_slots(ts[b0:b1], grid.open_ns[w0:w1], grid.close_ns[w0:w1],
                                       grid.step_ns, until, starts, counts)
        return starts, counts, result

    results = list(_pool().map(run, range(len(pieces)))) if len(pieces) > 1 else [run(0)]
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
    return GapArrays(starts, ends, counts, expected, present, missing)


def gap_infos(gaps: GapArrays, tz) -> list[GapInfo]:
    """``GapInfo`` objects (tz-aware datetimes in ``tz``) from gap arrays."""
    utc = _dt.timezone.utc
    epoch = _dt.datetime(1970, 1, 1, tzinfo=utc)
    out = []
    for s, e, c in zip(gaps.start_ns.tolist(), gaps.end_ns.tolist(), gaps.bar_count.tolist()):
        start = (epoch + _dt.timedelta(microseconds=s // 1000)).astimezone(tz)
        end = (epoch + _dt.timedelta(microseconds=e // 1000)).astimezone(tz)
        out.append(GapInfo(start, end, int(c)))
    return out


def trim_grid(grid: Grid, since_ns: int) -> Grid:
    """The grid without the slots that start before ``since_ns``.

    Buckets stay aligned to their window's open: a window that ``since_ns`` falls in now
    opens at its first bucket starting at or after ``since_ns``.  A session slot (``"1d"``)
    that started before ``since_ns`` is dropped whole.  Every per-window array of the grid is
    cut alike.
    """
    n = len(grid.open_ns)
    keep = np.flatnonzero(grid.close_ns > since_ns)
    new_open = None
    if len(keep) and grid.open_ns[keep[0]] < since_ns:
        first = int(keep[0])
        if grid.step_ns > 0:
            opened = int(grid.open_ns[first])
            new_open = opened + -(-(since_ns - opened) // grid.step_ns) * grid.step_ns
            if new_open >= grid.close_ns[first]:
                keep, new_open = keep[1:], None
        else:
            keep = keep[1:]
    cut = {name: np.ascontiguousarray(value[keep]) for name, value in zip(grid._fields, grid)
           if isinstance(value, np.ndarray) and value.shape == (n,)}
    out = grid._replace(**cut)
    if new_open is not None:
        out.open_ns[0] = new_open
        out.base_slots[0] = -((new_open - int(out.close_ns[0])) // grid.base_ns)
        last_open = getattr(out, "last_open", None)
        if last_open is not None and last_open[0] < new_open:
            last_open[0] = new_open
    return out


def _interval_bars(bars: Bars, interval: Interval, base: Interval, calendar: Calendar) -> Bars:
    """The bars of ``interval``: the bars themselves, or their resampling."""
    if interval == base:
        return bars
    return resample(bars, interval, calendar, base=base)


def _laid_out(bars: Bars, interval, calendar: Calendar | None, base, start, end, what: str):
    """What ``find_gaps`` and ``quality`` work on: the calendar, the target interval, the bars
    of that interval (the bars themselves, validated against the sessions, or their
    resampling) and its grid over the expected sessions."""
    calendar = default_calendar(calendar)
    base_iv = _base_of(bars, base) if len(bars) > 1 or base or bars.interval else None
    target = parse_interval(interval) if interval is not None else base_iv
    if target is None:
        raise ValueError(f"{what} on fewer than two bars needs interval= (and base=)")
    if base_iv is None and target.is_session:
        if len(bars):
            raise ValueError(f"{what} of '1d' on one bar that does not say its interval "
                             "needs base= (e.g. base='1m')")
        # No bar and no base: a session slot's count of base slots is never read.
        base_iv = parse_interval("1m")
    base_iv = base_iv or target
    windows = session_windows(calendar, bars.ts, start, end)
    source = _interval_bars(bars, target, base_iv, calendar)
    if source is bars and what == "quality":
        # find_gaps validates in its kernel; the quality kernel trusts its input.
        check_in_sessions(bars, windows, base_iv, calendar, what)
    return calendar, target, source, make_grid(windows, target, base_iv)


def find_gaps(bars: Bars, interval=None, calendar: Calendar | None = None, *, base=None,
              start=None, end=None, until=None, as_arrays: bool = False):
    """Find the bars that should exist and do not.

    Expected slots are every step of ``interval`` inside the windows of the sessions the bars
    touch (or of the sessions between ``start`` and ``end``).  A gap is a maximal run of
    missing slots within one window: gaps never span a close or a break.

    Parameters
    ----------
    bars : Bars
        Bars of the base interval (or of ``interval`` itself).
    interval : str, optional
        The interval whose gaps are wanted; defaults to the bars' own.  A coarser interval is
        made with :func:`resample` first, and a bucket with any base bar is present.
    calendar : Calendar, optional
        Defaults to ``Calendar.always()``.
    start, end : optional
        Times (ns, datetime, ISO string; naive means the calendar's zone) whose sessions are
        expected, when they reach beyond the bars.
    until : optional
        Only slots that closed by this time count (a stream's clock, or the end of a file
        that stops inside a session).
    as_arrays : bool
        Return a :class:`GapArrays` instead of a list of :class:`GapInfo`.
    """
    calendar, target, source, grid = _laid_out(bars, interval, calendar, base, start, end,
                                               "find_gaps")
    until_ns = None if until is None else _to_ns(until, calendar)
    try:
        gaps = gaps_on_grid(source.ts, grid, until_ns)
    except BadBarError as exc:
        raise BadBarError(f"find_gaps on calendar {calendar.name}: {exc}", exc.row,
                          exc.fault) from None
    return gaps if as_arrays else gap_infos(gaps, calendar.tz)


@dataclass(frozen=True)
class QualityReport:
    """Data quality of one interval: ``score = 100 * coverage_sum / expected``.

    ``present`` bars filled ``coverage_sum`` slots' worth of data (a derived bar counts by
    its coverage); ``partial`` of them were incomplete; ``rejected`` counts bad bars dropped
    by a ``drop`` policy, by reason.
    """

    interval: str
    expected: int
    present: int
    missing: int
    partial: int
    coverage_sum: float
    score: float
    rejected: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 4),
            "expected": self.expected,
            "present": self.present,
            "missing": self.missing,
            "partial": self.partial,
            "coverage": round(self.coverage_sum, 6),
            "rejected": dict(self.rejected),
        }


def score_on_grid(source: Bars, grid: Grid, interval: str, until_ns: int | None = None,
                  rejected: dict[str, int] | None = None) -> QualityReport:
    """Quality of validated bars laid on a grid."""
    until = _I64_MAX if until_ns is None else int(until_ns)
    coverage = source.coverage if source.coverage is not None else np.empty(0, np.float64)
    expected, present, covered, partial = _quality.score_quality(
        source.ts, coverage, grid.open_ns, grid.close_ns, grid.step_ns, until)
    score = 100.0 * covered / expected if expected else 100.0
    return QualityReport(interval, int(expected), int(present), int(expected - present),
                         int(partial), float(covered), float(score), dict(rejected or {}))


def quality(bars: Bars, interval=None, calendar: Calendar | None = None, *, base=None,
            start=None, end=None, until=None) -> QualityReport:
    """Score the data quality of an interval: ``100 * present / expected``.

    A derived bar counts by its coverage: a 5m bar made of 3 of its 5 minutes counts 0.6.
    Arguments are those of :func:`find_gaps`.  An interval with no expected slot scores 100.
    """
    calendar, target, source, grid = _laid_out(bars, interval, calendar, base, start, end,
                                               "quality")
    until_ns = None if until is None else _to_ns(until, calendar)
    return score_on_grid(source, grid, target.name, until_ns)
