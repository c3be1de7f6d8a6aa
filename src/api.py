"""The functional API: ``resample``, ``find_gaps`` and ``quality`` over ``Bars`` and a ``Calendar``.

Each call lays the interval on the calendar's session windows (a *grid*, see ``grid``),
validates in Python what is cheap to validate, and hands the arrays to one compiled pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .bars import Bars, BadBarError
from .calendar import Calendar
from .kernels import (
    aggregate_on_grid,
    check_in_sessions,
    cut_grid,
    default_calendar,
    gaps_on_grid,
    make_grid,
    score_on_grid,
    session_windows,
    to_ns,
)
from .intervals import Interval, check_derivable, parse_interval
from .results import Gaps, QualityReport


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


def _base_of(bars: Bars, base: Any) -> Interval:
    if base is not None:
        return parse_interval(base)
    if bars.interval is not None:
        return bars.interval
    return infer_interval(bars.ts)


def resample(bars: Bars, interval: Any, calendar: Calendar | None = None, *,
             base: Any = None) -> Bars:
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
    cols, m = aggregate_on_grid(bars, grid, calendar, target)
    if m < cols[0].shape[0] // 2:  # do not keep a large, mostly empty block alive
        cols = [c[:m].copy() for c in cols]
    else:
        cols = [c[:m] for c in cols]
    return Bars(*cols[:6], count=cols[6], coverage=cols[7], interval=target, validate=False)


def _laid_out(bars: Bars, interval: Any, calendar: Calendar | None, base: Any, start: Any,
              end: Any, since: Any, until: Any, what: str):
    """What ``find_gaps`` and ``quality`` work on: the calendar, the target interval, the bars
    of that interval inside the scored span (the bars themselves, validated against the
    sessions, or their aggregation) and its grid over the expected sessions, cut to the span
    ``[since, until)`` by the rule of ``grid.bound_grid``."""
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
    check_derivable(base_iv, target)
    windows = session_windows(calendar, bars.ts, start, end)
    grid = make_grid(windows, target, base_iv)
    since_ns = None if since is None else to_ns(since, calendar)
    until_ns = None if until is None else to_ns(until, calendar)
    if since_ns is not None or until_ns is not None:
        grid = cut_grid(grid, windows, since_ns, until_ns)
        lo = np.searchsorted(bars.ts, since_ns) if since_ns is not None else 0
        hi = (np.searchsorted(bars.ts, until_ns - base_iv.ns, side="right")
              if until_ns is not None else len(bars))
        bars = bars[int(lo):int(max(lo, hi))]
    if target == base_iv:
        if what == "quality":
            # find_gaps validates in its kernel; the quality kernel trusts its input.
            check_in_sessions(bars, windows, base_iv, calendar, what)
        return calendar, target, bars, grid
    if not len(bars):
        return calendar, target, resample(bars, target, calendar, base=base_iv), grid
    if target.is_session:
        check_in_sessions(bars, windows, base_iv, calendar, what)
    cols, m = aggregate_on_grid(bars, grid, calendar, target)
    source = Bars(*(c[:m] for c in cols[:6]), count=cols[6][:m], coverage=cols[7][:m],
                  interval=target, validate=False)
    return calendar, target, source, grid


def find_gaps(bars: Bars, interval: Any = None, calendar: Calendar | None = None, *,
              base: Any = None, start: Any = None, end: Any = None, since: Any = None,
              until: Any = None) -> Gaps:
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
        aggregated first, and a bucket with any base bar is present.
    calendar : Calendar, optional
        Defaults to ``Calendar.always()``.
    start, end : optional
        Times (ns, datetime, ISO string; naive means the calendar's zone) whose sessions are
        expected, when they reach beyond the bars.
    since, until : optional
        The span that is scored (data that starts or ends inside a session, a stream's
        clock): a base slot is expected when it starts at or after ``since`` and ends by
        ``until``; a derived bucket when it holds such a slot.  Bars outside the span are
        not looked at.  The same rule as the command line's and ``SessionCoordinator.stop``.

    Returns
    -------
    Gaps
        A sequence of :class:`GapInfo` over the arrays ``start_ns``, ``end_ns`` (exclusive)
        and ``bar_count``, with the slot counts ``expected``, ``present`` and ``missing``;
        ``to_pandas()`` and ``to_arrow()`` give tables.
    """
    calendar, target, source, grid = _laid_out(bars, interval, calendar, base, start, end,
                                               since, until, "find_gaps")
    try:
        return gaps_on_grid(source.ts, grid, calendar.tz)
    except BadBarError as exc:
        raise BadBarError(f"find_gaps on calendar {calendar.name}: {exc}", exc.row,
                          exc.fault) from None


def quality(bars: Bars, interval: Any = None, calendar: Calendar | None = None, *,
            base: Any = None, start: Any = None, end: Any = None, since: Any = None,
            until: Any = None) -> QualityReport:
    """Score the data quality of an interval: ``100 * present / expected``.

    A derived bar counts by its coverage: a 5m bar made of 3 of its 5 minutes counts 0.6.
    Arguments are those of :func:`find_gaps`.  An interval with no expected slot scores 100.
    """
    calendar, target, source, grid = _laid_out(bars, interval, calendar, base, start, end,
                                               since, until, "quality")
    return score_on_grid(source, grid, target.name)
