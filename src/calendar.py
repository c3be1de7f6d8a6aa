"""Trading calendars: which dates are sessions, and when each session trades.

A session is one trading day of a calendar, labelled by its trading date in the
exchange's local time. It trades in one or more ``[open, close)`` windows: a
lunch break splits it in two, an early close shortens it, and a session may open
on the evening before its date (CME's session D runs from D-1 17:00 to D 16:00
America/Chicago). Every instant is an int64 count of nanoseconds since the Unix
epoch, UTC.

Three constructors cover the usual cases:

- :meth:`Calendar.always`: 24/7, one session per UTC date.
- :meth:`Calendar.weekly`: the same local hours on chosen weekdays, with breaks,
  holidays and early closes.
- :meth:`Calendar.exchange`: a real exchange from the optional
  ``exchange_calendars`` package (holidays, early closes, late opens, breaks),
  plus the ``"CME_GLOBEX"`` preset.

Windows are computed with NumPy a calendar year (or a whole exchange schedule) at
a time, cached, and sliced with ``np.searchsorted``; a query never loops over
windows in Python.

This module imports nothing else from ``sessiondata``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import operator
from pathlib import Path
import re
import threading
import warnings
import zoneinfo
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

__all__ = ["Calendar", "WindowSpan", "Windows"]

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND

# A session labelled D has its windows between D-1 00:00 local (overnight
# sessions) and D+1 00:00 local; local clocks are at most 14 h from UTC, so every
# window touching UTC day d belongs to a session labelled within d-2 .. d+2.
_LABEL_MARGIN_DAYS = 2

# Years whose sessions, with that margin, stay inside the int64 nanosecond range
# (1677-09-21 .. 2262-04-11).
_MIN_YEAR = 1678
_MAX_YEAR = 2261
_MIN_DAY = int(np.datetime64(f"{_MIN_YEAR}-01-01", "D").astype(np.int64))
_MAX_DAY = int(np.datetime64(f"{_MAX_YEAR}-12-31", "D").astype(np.int64))

_WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_WEEKDAY_NAMES = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)
_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")

_CME_GLOBEX_CODES = ("CME_GLOBEX", "CMEG")
_CME_GLOBEX_DAILY_CLOSE = _dt.time(16, 0)

_EMPTY_I8 = np.empty(0, dtype=np.int64)
_EMPTY_I8.setflags(write=False)


# --------------------------------------------------------------------------- #
# Windows                                                                      #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class Windows:
    """The ``[open, close)`` trading windows of a run of sessions, in UTC nanoseconds.

    Parameters
    ----------
    open_ns : numpy.ndarray
        int64 window opens, strictly increasing.
    close_ns : numpy.ndarray
        int64 window closes; ``close_ns[i] > open_ns[i]`` and
        ``close_ns[i] <= open_ns[i + 1]`` (windows never overlap).
    session_ids : numpy.ndarray
        int64 index into `sessions` for each window, non-decreasing, starting
        at 0, every session owning at least one window.
    sessions : numpy.ndarray
        datetime64[D] session labels, strictly increasing.

    Notes
    -----
    All four arrays are stored C-contiguous and read-only. Arrays that are
    already read-only are kept as given (typically views of a calendar's cache);
    writable ones are copied, so the caller's arrays are never frozen.
    Construction checks every invariant above and raises ``ValueError`` naming
    the first one broken.
    """

    open_ns: np.ndarray
    close_ns: np.ndarray
    session_ids: np.ndarray
    sessions: np.ndarray

    def __post_init__(self) -> None:
        for field, dtype in (
            ("open_ns", np.int64),
            ("close_ns", np.int64),
            ("session_ids", np.int64),
            ("sessions", np.dtype("datetime64[D]")),
        ):
            object.__setattr__(self, field, _frozen_array(getattr(self, field), dtype, field))
        self._check()

    def _check(self) -> None:
        """Raise ValueError unless the window invariants hold."""
        o, c, ids, labels = self.open_ns, self.close_ns, self.session_ids, self.sessions
        if not len(o) == len(c) == len(ids):
            raise ValueError(
                "open_ns, close_ns and session_ids must have one entry per window, "
                f"got lengths {len(o)}, {len(c)} and {len(ids)}"
            )
        if len(labels) > 1 and not np.all(labels[1:] > labels[:-1]):
            raise ValueError("sessions must be strictly increasing")
        if len(o) == 0:
            if len(labels):
                raise ValueError(f"{len(labels)} sessions given without any window")
            return
        if not np.all(c > o):
            i = int(np.argmin(c > o))
            raise ValueError(f"window {i} is empty or inverted: open_ns={o[i]}, close_ns={c[i]}")
        if not np.all(o[1:] >= c[:-1]):
            i = int(np.argmin(o[1:] >= c[:-1]))
            raise ValueError(
                f"windows {i} and {i + 1} overlap or are out of order: "
                f"close_ns[{i}]={c[i]} > open_ns[{i + 1}]={o[i + 1]}"
            )
        steps = np.diff(ids)
        if ids[0] != 0 or not np.all((steps == 0) | (steps == 1)) or ids[-1] != len(labels) - 1:
            raise ValueError(
                "session_ids must run 0, 1, ... len(sessions) - 1 in non-decreasing "
                f"order with every session used, got ids {ids[0]}..{ids[-1]} "
                f"for {len(labels)} sessions"
            )

    @classmethod
    def empty(cls) -> "Windows":
        """Return windows with no window and no session.

        Returns
        -------
        Windows
            Zero-length arrays of the right dtypes.
        """
        return cls(_EMPTY_I8, _EMPTY_I8, _EMPTY_I8, np.empty(0, dtype="datetime64[D]"))

    def __len__(self) -> int:
        return len(self.open_ns)

    @property
    def n_sessions(self) -> int:
        """Number of sessions (each with at least one window)."""
        return len(self.sessions)

    @functools.cached_property
    def session_open_ns(self) -> np.ndarray:
        """int64 first open of each session (its bound: ``[session_open_ns,
        session_close_ns)`` holds every window of the session, breaks included)."""
        first = np.searchsorted(self.session_ids, np.arange(self.n_sessions), side="left")
        out = self.open_ns[first]
        out.flags.writeable = False
        return out

    @functools.cached_property
    def session_close_ns(self) -> np.ndarray:
        """int64 last close of each session."""
        last = np.searchsorted(self.session_ids, np.arange(self.n_sessions), side="right") - 1
        out = self.close_ns[last]
        out.flags.writeable = False
        return out

    def session_slice(self, k: int) -> slice:
        """Return the slice of windows that belong to session `k`.

        Parameters
        ----------
        k : int
            Session index into `sessions`; negative values count from the end.

        Returns
        -------
        slice
            ``open_ns[s]``, ``close_ns[s]`` are the windows of ``sessions[k]``.

        Raises
        ------
        IndexError
            If `k` is out of range.
        """
        k = operator.index(k)
        n = self.n_sessions
        if not -n <= k < n:
            raise IndexError(f"session index {k} out of range for {n} sessions")
        k %= n
        lo = int(np.searchsorted(self.session_ids, k, side="left"))
        hi = int(np.searchsorted(self.session_ids, k, side="right"))
        return slice(lo, hi)

    def locate(self, ts_ns) -> np.ndarray:
        """Return, for each timestamp, the index of the window containing it.

        Parameters
        ----------
        ts_ns : array_like of int64
            Timestamps, nanoseconds since the epoch, UTC; any order.

        Returns
        -------
        numpy.ndarray
            int64 window index per timestamp, -1 where no window contains it.
        """
        ts = np.asarray(ts_ns)
        if ts.dtype != np.int64:
            raise ValueError(f"ts_ns must be int64 nanoseconds, got {ts.dtype} of shape {ts.shape}")
        flat = ts.reshape(-1)
        idx = np.searchsorted(self.open_ns, flat, side="right").astype(np.int64) - 1
        inside = idx >= 0
        inside[inside] = flat[inside] < self.close_ns[idx[inside]]
        idx[~inside] = -1
        return idx.reshape(ts.shape)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Windows):
            return NotImplemented
        return (
            np.array_equal(self.open_ns, other.open_ns)
            and np.array_equal(self.close_ns, other.close_ns)
            and np.array_equal(self.session_ids, other.session_ids)
            and np.array_equal(self.sessions, other.sessions)
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays: equal but not hashable

    def __repr__(self) -> str:
        if not len(self):
            return "Windows(empty)"
        return (
            f"Windows({_plural(len(self), 'window')}, {_plural(self.n_sessions, 'session')}, "
            f"{self.sessions[0]}..{self.sessions[-1]})"
        )


def _slice_windows(windows: Windows, first: int, stop: int) -> Windows:
    """The windows ``first..stop-1`` of ``windows`` (whole sessions), renumbered: views of
    its arrays, not checked again (a run of whole sessions of valid windows is valid)."""
    k0 = int(windows.session_ids[first])
    k1 = int(windows.session_ids[stop - 1])
    ids = windows.session_ids[first:stop]
    if k0:
        ids = ids - k0
        ids.setflags(write=False)
    out = object.__new__(Windows)
    for name, value in (("open_ns", windows.open_ns[first:stop]),
                        ("close_ns", windows.close_ns[first:stop]),
                        ("session_ids", ids), ("sessions", windows.sessions[k0:k1 + 1])):
        object.__setattr__(out, name, value)
    return out


class WindowSpan:
    """The windows of a calendar laid out once over ``[start_ns, end_ns)``, to be cut for
    any range inside it (a file's symbols, and each reading of it that the plausibility
    check scores) without laying them out again.

    ``windows(a, b)`` is ``calendar.windows(a, b)``: for a range inside the span, the same
    windows sliced from those laid out (every session that trades in the range trades in
    the span, whole); for any other range, the calendar's own answer.

    Parameters
    ----------
    calendar : Calendar
    start_ns, end_ns : int
        The span, nanoseconds since the epoch, UTC (as ``Calendar.windows``; its errors).
    within : WindowSpan, optional
        A wider span of ``calendar`` laid out already: the windows are cut from it.
    """

    def __init__(self, calendar: "Calendar", start_ns: int, end_ns: int, *,
                 within: "WindowSpan | None" = None) -> None:
        self.calendar = calendar
        self.start_ns, self.end_ns = int(start_ns), int(end_ns)
        # ``within``: a span of the same calendar laid out already; the windows are cut from
        # it (the calendar's own answer where it does not hold the range).
        source = within if within is not None and within.calendar is calendar else calendar
        self.all = source.windows(self.start_ns, self.end_ns)

    def __repr__(self) -> str:
        return f"WindowSpan({self.calendar.name}, {self.all!r})"

    @staticmethod
    def of(calendar: "Calendar", span: "WindowSpan | None") -> "WindowSpan | Calendar":
        """What to ask for ``calendar``'s windows: ``span`` when it holds them (laid out
        over that very calendar), else the calendar itself."""
        return span if span is not None and span.calendar is calendar else calendar

    def windows(self, start_ns: int, end_ns: int) -> Windows:
        """The windows of every session that trades during ``[start_ns, end_ns)`` (see
        ``Calendar.windows``)."""
        start, end = int(start_ns), int(end_ns)
        if not self.start_ns <= start <= end <= self.end_ns:
            return self.calendar.windows(start_ns, end_ns)
        w = self.all
        if end == start or not len(w):
            return Windows.empty()
        first = int(np.searchsorted(w.close_ns, start, side="right"))
        stop = int(np.searchsorted(w.open_ns, end, side="left"))
        if first >= stop:
            return Windows.empty()
        # Widen to whole sessions.
        ids = w.session_ids
        if first:
            first = int(np.searchsorted(ids, ids[first], side="left"))
        if stop < len(ids):
            stop = int(np.searchsorted(ids, ids[stop - 1], side="right"))
        if first == 0 and stop == len(ids):
            return w
        return _slice_windows(w, first, stop)


def _frozen_array(values, dtype, name: str) -> np.ndarray:
    """Return `values` as a read-only, C-contiguous 1-D array of `dtype`."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype != dtype:
        same_kind = np.dtype(dtype).kind == arr.dtype.kind or (
            np.dtype(dtype).kind == "i" and arr.dtype.kind == "u"
        )
        if not (same_kind or (arr.size == 0 and arr.dtype == np.float64)):
            raise ValueError(f"{name} must be {np.dtype(dtype)}, got {arr.dtype} of shape {arr.shape}")
        arr = np.ascontiguousarray(arr, dtype=dtype)  # a fresh array, ours to freeze
    elif arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, dtype=dtype, order="C", copy=True)
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------- #
# Window tables and their sources                                              #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class _Table:
    """Windows of consecutive sessions, sorted: open, close (UTC ns) and label day per window."""

    open_ns: np.ndarray
    close_ns: np.ndarray
    day: np.ndarray  # int64 days since the epoch of each window's session label

    @staticmethod
    def build(open_ns: np.ndarray, close_ns: np.ndarray, day: np.ndarray) -> "_Table":
        """Freeze three equal-length arrays into a table."""
        arrays = []
        for a in (open_ns, close_ns, day):
            a = np.ascontiguousarray(a, dtype=np.int64)
            a.setflags(write=False)
            arrays.append(a)
        return _Table(*arrays)

    @staticmethod
    def concat(tables: list["_Table"]) -> "_Table":
        """Join tables that follow each other in time."""
        return _Table.build(
            np.concatenate([t.open_ns for t in tables]),
            np.concatenate([t.close_ns for t in tables]),
            np.concatenate([t.day for t in tables]),
        )

    def day_range(self, lo_day: int, hi_day: int) -> tuple[int, int]:
        """Return the index range of the windows of sessions labelled lo_day..hi_day."""
        return (
            int(np.searchsorted(self.day, lo_day, side="left")),
            int(np.searchsorted(self.day, hi_day, side="right")),
        )

    def check_order(self, what: str) -> None:
        """Raise ValueError unless windows are non-empty, sorted and non-overlapping."""
        o, c = self.open_ns, self.close_ns
        if not (np.all(c > o) and np.all(o[1:] >= c[:-1]) and np.all(np.diff(self.day) >= 0)):
            raise ValueError(f"{what}: session windows are empty, overlap or are out of order")


class _PeriodicSource:
    """Sessions given by a rule on dates, built one calendar year at a time and cached."""

    coverage = None

    def __init__(self, build_year: Callable[[int], _Table]):
        self._build_year = build_year
        self._years: dict[int, _Table] = {}
        # The concatenation of a contiguous run of cached years, reused by queries
        # that fall inside it: (first_year, last_year, table).
        self._span: tuple[int, int, _Table] | None = None

    def table(self, lo_day: int, hi_day: int) -> tuple[_Table, int, int]:
        """Return a table holding sessions labelled lo_day..hi_day, and their index range."""
        if lo_day < _MIN_DAY or hi_day > _MAX_DAY:
            raise ValueError(
                f"session dates must lie in the years {_MIN_YEAR}..{_MAX_YEAR} "
                f"(int64 nanoseconds), got {_day_str(lo_day)} .. {_day_str(hi_day)}"
            )
        y0, y1 = _year_of_day(lo_day), _year_of_day(hi_day)
        span = self._span
        if span is None or y0 < span[0] or y1 > span[1]:
            if span is not None:
                y0, y1 = min(y0, span[0]), max(y1, span[1])
            for year in range(y0, y1 + 1):
                if year not in self._years:
                    self._years[year] = self._build_year(year)
            span = (y0, y1, _Table.concat([self._years[y] for y in range(y0, y1 + 1)]))
            self._span = span
        table = span[2]
        return (table, *table.day_range(lo_day, hi_day))

    def __reduce__(self):
        # The rule only: the years built are a cache each process fills for itself.
        return (_PeriodicSource, (self._build_year,))

    def require_days(self, lo_day: int, hi_day: int) -> None:
        """Accept any day; the year limits are checked when tables are built."""

    def require_ns(self, start_ns: int, end_ns: int) -> None:
        """Accept any instant; the year limits are checked when tables are built."""


class _ScheduleSource:
    """Sessions listed in a finite schedule, held as one table over its whole range."""

    def __init__(self, table: _Table, name: str):
        if not len(table.day):
            raise ValueError(f"{name}: the schedule has no session")
        table.check_order(name)
        self._table = table
        self._name = name
        self.coverage = (
            np.datetime64(int(table.day[0]), "D"),
            np.datetime64(int(table.day[-1]), "D"),
        )
        self._first_open_ns = int(table.open_ns[0])
        self._last_close_ns = int(table.close_ns[-1])

    def table(self, lo_day: int, hi_day: int) -> tuple[_Table, int, int]:
        """Return the schedule table and the index range of sessions labelled lo_day..hi_day."""
        return (self._table, *self._table.day_range(lo_day, hi_day))

    def _out_of_range(self, asked: str) -> ValueError:
        first, last = self.coverage
        return ValueError(
            f"{asked} is outside the range covered by {self._name}: sessions {first} to "
            f"{last}, i.e. {_ns_str(self._first_open_ns)} to {_ns_str(self._last_close_ns)} UTC"
        )

    def require_days(self, lo_day: int, hi_day: int) -> None:
        """Raise ValueError unless session labels lo_day..hi_day are all covered."""
        first, last = (int(d.astype(np.int64)) for d in self.coverage)
        if lo_day < first or hi_day > last:
            asked = _day_str(lo_day) if lo_day == hi_day else f"{_day_str(lo_day)} .. {_day_str(hi_day)}"
            raise self._out_of_range(asked)

    def require_ns(self, start_ns: int, end_ns: int) -> None:
        """Raise ValueError unless [start_ns, end_ns) lies within the covered time."""
        if start_ns < self._first_open_ns or end_ns > self._last_close_ns:
            asked = (
                _ns_str(start_ns) if start_ns == end_ns
                else f"[{_ns_str(start_ns)}, {_ns_str(end_ns)}) UTC"
            )
            raise self._out_of_range(asked)


# --------------------------------------------------------------------------- #
# Calendar                                                                     #
# --------------------------------------------------------------------------- #


class Calendar:
    """A trading calendar: its sessions and their ``[open, close)`` windows in UTC ns.

    Build one with :meth:`always`, :meth:`weekly` or :meth:`exchange`; the
    constructor itself is private. A calendar is immutable; it caches the windows
    it has computed and is safe to share between threads (a race only repeats work).

    Attributes
    ----------
    name : str
        ``"ALWAYS"``, ``"XNYS"``, ``"CME_GLOBEX"``, ``"weekly(...)"`` ...
    tz : zoneinfo.ZoneInfo
        The exchange's local time zone, in which session dates are reckoned.
    """

    __slots__ = ("_name", "_tz", "_source")

    def __init__(self, name: str, tz: zoneinfo.ZoneInfo, source) -> None:
        self._name = name
        self._tz = tz
        self._source = source

    @property
    def name(self) -> str:
        """The calendar's name."""
        return self._name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        """The exchange's local time zone."""
        return self._tz

    @property
    def coverage(self) -> tuple[np.datetime64, np.datetime64] | None:
        """First and last session label this calendar knows, or None when unbounded."""
        return self._source.coverage

    def __repr__(self) -> str:
        return f"Calendar({self._name!r}, tz={self._tz.key!r})"

    def __reduce__(self):
        # Pickled by name and parameters (a Dask worker rebuilds it): an exchange calendar by
        # its code (its source holds a lock and an exchange_calendars schedule, rebuilt once
        # per process), 24/7 as the one instance, any other by its rule or table.
        if self is _ALWAYS:
            return "_ALWAYS"
        if isinstance(self._source, _ExchangeSource):
            return (_exchange_calendar, (self._source._key,))
        return (Calendar, (self._name, self._tz, self._source))

    # ----------------------------------------------------------------- builders

    @classmethod
    def always(cls) -> "Calendar":
        """Return the 24/7 calendar.

        Every UTC date D is a session with the single window
        ``[D 00:00 UTC, D+1 00:00 UTC)``.

        Returns
        -------
        Calendar
            Named ``"ALWAYS"``, time zone UTC.
        """
        return _ALWAYS

    @classmethod
    def fx(cls) -> "Calendar":
        """Return the FX week: Sunday 17:00 to Friday 17:00 America/New_York.

        Five 24-hour sessions, Monday to Friday, each from 17:00 New York time the
        evening before to 17:00 on its date (the spot FX convention: the week opens in
        Sydney and Wellington on Sunday evening New York time and closes after New
        York on Friday); weekends are not gaps.  No holidays: FX trades (thinly) on
        them.

        Returns
        -------
        Calendar
            Named ``"FX"``, time zone America/New_York; the same sessions as
            ``Calendar.weekly("America/New_York", "17:00", "17:00", "Mon-Fri")``.
        """
        return _FX

    @classmethod
    def weekly(
        cls,
        tz,
        open,
        close,
        days="Mon-Fri",
        *,
        breaks=(),
        holidays=(),
        early_closes: Mapping | None = None,
        name: str | None = None,
    ) -> "Calendar":
        """Return a calendar that trades the same local hours on chosen weekdays.

        Parameters
        ----------
        tz : str or zoneinfo.ZoneInfo
            The exchange's time zone, e.g. ``"America/New_York"``.
        open, close : str or datetime.time
            Local wall times ``"HH:MM"`` or ``"HH:MM:SS"``; `close` may be
            ``"24:00"`` (midnight ending the day). If ``close <= open`` the session
            for date D opens on D-1 at `open` and closes on D at `close` (CME style);
            ``open == close`` is then a 24-hour session.
        days : str or iterable, default "Mon-Fri"
            Weekdays of the session *labels* (for overnight sessions, the day the
            session closes): a range ``"Mon-Fri"`` or ``"Sun-Thu"`` (ranges wrap
            around the week), a comma list ``"Mon,Wed,Fri"``, or an iterable of
            ints (Monday is 0) or day names.
        breaks : iterable of (start, end), optional
            Local times at which trading pauses, each strictly inside the session;
            a session with k breaks has k + 1 windows.
        holidays : iterable of date-like, optional
            Dates (str, datetime.date, numpy.datetime64) without a session. Dates
            that are not trading weekdays anyway are accepted and ignored.
        early_closes : mapping of date-like to time, optional
            Local close time for particular sessions. It must come after the open
            and no later than the regular close; windows after it are dropped and a
            window it falls inside is cut short.
        name : str, optional
            Defaults to e.g. ``"weekly(America/New_York 09:30-16:00 Mon-Fri)"``.

        Returns
        -------
        Calendar

        Raises
        ------
        ValueError
            For an unknown time zone, a malformed or out-of-range time, an empty or
            unknown day, a break outside the session or overlapping another, a
            malformed date, or an early close on a date without a session or
            outside its hours. The message names the offending value.
        TypeError
            For arguments of an unsupported type.

        Notes
        -----
        Local wall times are converted to UTC separately for each date, so a
        session keeps its local hours across daylight-saving changes. A local time
        that does not exist on a date (the clock springs forward over it) moves
        forward to the first instant that exists, the moment of the change; a
        window left empty by that is dropped. A local time that occurs twice (the
        clock falls back) means its first occurrence.
        """
        zone = _parse_tz(tz)
        open_ns = _parse_time(open, "open")
        close_ns = _parse_time(close, "close", allow_24=True)
        weekdays = _parse_days(days)
        rule = _WeeklyRule(zone, open_ns, close_ns, weekdays)
        rule.set_breaks(breaks)
        holiday_days = [_to_day(d, "holiday") for d in _iterable(holidays, "holidays")]
        rule.set_holidays(np.unique(np.array(holiday_days, dtype=np.int64)))
        rule.set_early_closes(early_closes)
        if name is None:
            name = f"weekly({zone.key} {_tod_str(open_ns)}-{_tod_str(close_ns)} {_days_str(weekdays)})"
        elif not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        return cls(name, zone, _PeriodicSource(rule.build_year))

    @classmethod
    def exchange(cls, code: str, hours: str | None = None) -> "Calendar":
        """Return the calendar of a real exchange, from ``exchange_calendars``.

        Parameters
        ----------
        code : str
            An ``exchange_calendars`` name (``"XNYS"``, ``"XLON"``, ``"XHKG"``, an
            alias such as ``"NYSE"`` ...), or the preset ``"CME_GLOBEX"`` (alias
            ``"CMEG"``): CME Globex FX and equity-index futures, i.e.
            ``exchange_calendars``' ``"CMES"`` sessions (its holidays) opening at
            17:00 America/Chicago the evening before and closing at 16:00 CT on the
            session date, for the daily 16:00-17:00 CT pause that ``"CMES"`` does not
            have.  CMES's 12:00 CT holiday early closes are not applied: Globex FX
            trades on, thinly, to 16:00 CT on those days.  ``"CODE@HH:MM-HH:MM"`` is
            the same as ``hours="HH:MM-HH:MM"``.
        hours : str, optional
            ``"HH:MM-HH:MM"``: keep the exchange's sessions (its holidays) but trade
            them in these local hours, one window each (``close <= open``: from the
            evening before), instead of the library's hours, breaks and early closes.
            exchange_calendars gives every past session *today's* hours (XEUR opens at
            08:00 in its 2006 sessions too); data of years with other hours, or of a
            product with its own hours, needs this.

        Returns
        -------
        Calendar
            Holidays, early closes, late opens and breaks (``break_start`` /
            ``break_end``) as in the schedule of ``exchange_calendars``. The
            schedule covers a finite range of dates (by default from about 20 years
            before today to one year ahead, see :attr:`coverage`); queries outside
            it raise ``ValueError`` stating the range.

        Raises
        ------
        ImportError
            If ``exchange_calendars`` is not installed.
        ValueError
            If `code` is not a known calendar.
        """
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        key = code.strip()
        if "@" in key:
            if hours is not None:
                raise ValueError(f"give the hours once: {code!r} and hours={hours!r}")
            key, hours = (part.strip() for part in key.split("@", 1))
        if hours is not None:
            return _with_hours(cls.exchange(key), hours)
        if key.upper() in _CME_GLOBEX_CODES:
            return _exchange_calendar("CME_GLOBEX")
        stored = _stored_exchange_calendar(key)
        if stored is not None:  # built by an earlier process: no exchange_calendars import
            return stored
        names = _import_exchange_calendars().get_calendar_names(include_aliases=True)
        if key not in names:
            folded = {n.upper(): n for n in names}
            if key.upper() not in folded:
                examples = ", ".join(["XNYS", "XNAS", "XLON", "XETR", "XTKS", "XHKG", "XSHG", "CMES", "CME_GLOBEX"])
                raise ValueError(
                    f"unknown calendar code {code!r}; known codes include: {examples}; "
                    "exchange_calendars.get_calendar_names() lists them all"
                )
            key = folded[key.upper()]
        return _exchange_calendar(key)

    # ------------------------------------------------------------------ queries

    def sessions(self, start, end) -> np.ndarray:
        """Return the labels of the sessions dated `start` through `end`.

        Parameters
        ----------
        start, end : str, datetime.date, datetime.datetime, numpy.datetime64 or pandas.Timestamp
            First and last date, both included. Only the date part of a datetime
            is used, as written (no time-zone conversion).

        Returns
        -------
        numpy.ndarray
            datetime64[D] labels, sorted, read-only.
        """
        lo, hi = _to_day(start, "start"), _to_day(end, "end")
        if hi < lo:
            raise ValueError(f"end must not be before start, got start={_day_str(lo)}, end={_day_str(hi)}")
        self._source.require_days(lo, hi)
        table, a, b = self._source.table(lo, hi)
        days = table.day[a:b]
        if len(days):
            days = days[np.concatenate(([True], days[1:] != days[:-1]))]
        labels = days.astype("datetime64[D]")
        labels.setflags(write=False)
        return labels

    def windows(self, start_ns: int, end_ns: int) -> Windows:
        """Return the windows of every session that trades during ``[start_ns, end_ns)``.

        Sessions come whole: all windows of a session are returned if any of its
        windows intersects the range, so per-session buckets are complete.

        Parameters
        ----------
        start_ns, end_ns : int
            The range, nanoseconds since the epoch, UTC; ``end_ns >= start_ns``.

        Returns
        -------
        Windows
            Read-only views of the cached windows; empty if no session trades in
            the range.
        """
        start = _as_ns(start_ns, "start_ns")
        end = _as_ns(end_ns, "end_ns")
        if end < start:
            raise ValueError(f"end_ns must be >= start_ns, got start_ns={start}, end_ns={end}")
        self._source.require_ns(start, end)
        if end == start:
            return Windows.empty()
        lo_day = start // NS_PER_DAY - _LABEL_MARGIN_DAYS
        hi_day = (end - 1) // NS_PER_DAY + _LABEL_MARGIN_DAYS
        table, a, b = self._source.table(lo_day, hi_day)
        opens, closes = table.open_ns[a:b], table.close_ns[a:b]
        # Closes are strictly increasing too, as windows are sorted and disjoint.
        first = a + int(np.searchsorted(closes, start, side="right"))
        stop = a + int(np.searchsorted(opens, end, side="left"))
        if first >= stop:
            return Windows.empty()
        # Widen to whole sessions.
        first = int(np.searchsorted(table.day, table.day[first], side="left"))
        stop = int(np.searchsorted(table.day, table.day[stop - 1], side="right"))
        return _windows_from(table, first, stop)

    def session_windows(self, session) -> Windows:
        """Return the windows of one session.

        Parameters
        ----------
        session : date-like
            The session label (its trading date).

        Returns
        -------
        Windows
            One session, one or more windows.

        Raises
        ------
        ValueError
            If the date is not a session of this calendar.
        """
        day = _to_day(session, "session")
        self._source.require_days(day, day)
        table, a, b = self._source.table(day, day)
        if a == b:
            raise ValueError(f"{_day_str(day)} is not a session of {self._name}")
        return _windows_from(table, a, b)

    def session_of(self, ts_ns: int) -> np.datetime64 | None:
        """Return the label of the session trading at `ts_ns`.

        Parameters
        ----------
        ts_ns : int
            Nanoseconds since the epoch, UTC.

        Returns
        -------
        numpy.datetime64 or None
            The datetime64[D] label of the session whose window contains `ts_ns`
            (windows are ``[open, close)``), or None outside every window.
        """
        ts = _as_ns(ts_ns, "ts_ns")
        self._source.require_ns(ts, ts)
        day = ts // NS_PER_DAY
        table, a, b = self._source.table(day - _LABEL_MARGIN_DAYS, day + _LABEL_MARGIN_DAYS)
        i = a + int(np.searchsorted(table.open_ns[a:b], ts, side="right")) - 1
        if i < a or ts >= table.close_ns[i]:
            return None
        return np.datetime64(int(table.day[i]), "D")

    def is_session(self, date) -> bool:
        """Return whether `date` is the label of a session.

        Parameters
        ----------
        date : date-like

        Returns
        -------
        bool
        """
        day = _to_day(date, "date")
        self._source.require_days(day, day)
        _, a, b = self._source.table(day, day)
        return b > a


def _windows_from(table: _Table, first: int, stop: int) -> Windows:
    """Build Windows from the whole sessions in table rows first..stop-1."""
    days = table.day[first:stop]
    new_session = np.empty(len(days), dtype=bool)
    new_session[:1] = True
    np.not_equal(days[1:], days[:-1], out=new_session[1:])
    session_ids = np.cumsum(new_session, dtype=np.int64) - 1
    session_ids.setflags(write=False)
    labels = days[new_session].astype("datetime64[D]")
    labels.setflags(write=False)
    return Windows(table.open_ns[first:stop], table.close_ns[first:stop], session_ids, labels)


# --------------------------------------------------------------------------- #
# always()                                                                     #
# --------------------------------------------------------------------------- #


def _build_always_year(year: int) -> _Table:
    """One window per UTC date of `year`."""
    days = np.arange(_first_day_of_year(year), _first_day_of_year(year + 1), dtype=np.int64)
    opens = days * NS_PER_DAY
    return _Table.build(opens, opens + NS_PER_DAY, days)


_ALWAYS = Calendar("ALWAYS", zoneinfo.ZoneInfo("UTC"), _PeriodicSource(_build_always_year))


# --------------------------------------------------------------------------- #
# weekly()                                                                     #
# --------------------------------------------------------------------------- #


class _WeeklyRule:
    """Local trading hours repeated on chosen weekdays; builds one year of windows at a time.

    Every time of a session is held as its offset in nanoseconds from the session's
    local open, so that overnight sessions, breaks after midnight and early closes
    all read the same way.
    """

    def __init__(self, tz: zoneinfo.ZoneInfo, open_tod: int, close_tod: int, weekdays: np.ndarray):
        self.tz = tz
        self.open_tod = open_tod
        self.overnight = close_tod <= open_tod
        self.close_off = close_tod - open_tod + (NS_PER_DAY if self.overnight else 0)
        self.weekday_mask = np.zeros(7, dtype=bool)
        self.weekday_mask[weekdays] = True
        self.window_starts = np.zeros(1, dtype=np.int64)
        self.window_ends = np.array([self.close_off], dtype=np.int64)
        self.holidays = _EMPTY_I8
        self.early_days = _EMPTY_I8
        self.early_offs = _EMPTY_I8
        self._hours = f"{_tod_str(open_tod)}-{_tod_str(close_tod)}"

    def _offset(self, tod: int) -> int:
        """Offset from the open of the first occurrence of local time-of-day `tod` in a session."""
        return (tod - self.open_tod) % NS_PER_DAY

    def set_breaks(self, breaks) -> None:
        """Validate breaks and split the session into windows."""
        spans = []
        for item in _iterable(breaks, "breaks"):
            try:
                raw_start, raw_end = item
            except (TypeError, ValueError):
                raise ValueError(f"each break must be a (start, end) pair, got {item!r}") from None
            start = _parse_time(raw_start, "break start")
            end = _parse_time(raw_end, "break end", allow_24=True)
            s_off, e_off = self._offset(start), self._offset(end)
            if not 0 < s_off < e_off < self.close_off:
                raise ValueError(
                    f"break ({_tod_str(start)}, {_tod_str(end)}) is not strictly inside "
                    f"the session {self._hours}"
                )
            spans.append((s_off, e_off, item))
        spans.sort()
        for (_, prev_end, prev), (next_start, _, nxt) in zip(spans, spans[1:]):
            if next_start <= prev_end:
                raise ValueError(f"breaks {prev!r} and {nxt!r} overlap or touch")
        self.window_starts = np.array([0] + [e for _, e, _ in spans], dtype=np.int64)
        self.window_ends = np.array([s for s, _, _ in spans] + [self.close_off], dtype=np.int64)

    def set_holidays(self, days: np.ndarray) -> None:
        """Set the sorted, unique label days without a session."""
        self.holidays = days

    def _is_trading_day(self, days: np.ndarray) -> np.ndarray:
        """Whether each label day is a trading weekday and not a holiday."""
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        return self.weekday_mask[weekday] & ~np.isin(days, self.holidays)

    def set_early_closes(self, early_closes: Mapping | None) -> None:
        """Validate early closes against the session hours and trading days."""
        if early_closes is None:
            return
        if not isinstance(early_closes, Mapping):
            raise TypeError(f"early_closes must be a mapping of date to time, got {type(early_closes).__name__}")
        entries = {}
        for raw_day, raw_time in early_closes.items():
            day = _to_day(raw_day, "early close date")
            tod = _parse_time(raw_time, f"early close on {_day_str(day)}", allow_24=True)
            # The open's own time of day can only mean a full day after the open.
            off = self._offset(tod) or NS_PER_DAY
            if not self._is_trading_day(np.array([day]))[0]:
                raise ValueError(f"early close on {_day_str(day)}, which is not a trading day of this calendar")
            if not 0 < off <= self.close_off:
                raise ValueError(
                    f"early close {_tod_str(tod)} on {_day_str(day)} is not within the session {self._hours}"
                )
            entries[day] = off
        days = np.array(sorted(entries), dtype=np.int64)
        self.early_days = days
        self.early_offs = np.array([entries[d] for d in days.tolist()], dtype=np.int64)

    def build_year(self, year: int) -> _Table:
        """All windows of the sessions labelled in `year`."""
        days = np.arange(_first_day_of_year(year), _first_day_of_year(year + 1), dtype=np.int64)
        days = days[self._is_trading_day(days)]
        close_off = np.full(len(days), self.close_off, dtype=np.int64)
        if len(self.early_days):
            pos = np.clip(np.searchsorted(self.early_days, days), 0, len(self.early_days) - 1)
            hit = self.early_days[pos] == days
            close_off[hit] = self.early_offs[pos[hit]]

        # Rows are sessions, columns their windows, as offsets from the local open.
        starts = np.broadcast_to(self.window_starts, (len(days), len(self.window_starts)))
        ends = np.minimum(self.window_ends[None, :], close_off[:, None])
        keep = ends > starts
        open_wall = (days - int(self.overnight)) * NS_PER_DAY + self.open_tod
        wall = np.concatenate([(open_wall[:, None] + starts).ravel(), (open_wall[:, None] + ends).ravel()])
        utc = _wall_to_utc_ns(wall, self.tz)
        n = starts.size
        opens, closes = utc[:n], utc[n:]
        keep = keep.ravel() & (closes > opens)  # a spring-forward gap can swallow a window
        label = np.repeat(days, len(self.window_starts))
        return _Table.build(opens[keep], closes[keep], label[keep])


def _wall_to_utc_ns(wall_ns: np.ndarray, tz: zoneinfo.ZoneInfo) -> np.ndarray:
    """Convert local wall times (int64 ns) in `tz` to UTC ns: nonexistent -> forward, ambiguous -> first."""
    wall_ns = np.asarray(wall_ns, dtype=np.int64)
    if tz.key in _UTC_KEYS or len(wall_ns) == 0:
        return wall_ns
    utc, nonexistent, _ambiguous, _oob = resolve_wall_ns(wall_ns, tz)
    # A wall time in a spring-forward gap moves forward to the first instant after the
    # change (the change itself); a repeated one takes its first occurrence (the earlier
    # UTC instant), whichever side of the change the zone calls daylight time.
    return utc


_UTC_KEYS = ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu", "GMT", "Etc/GMT")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
# Zones change their offset at most a few times a year; sampling every 6 hours finds each
# change (then located to the second by bisection).
_SAMPLE_S = 6 * 3600
_I64_MAX = int(np.iinfo(np.int64).max)


def _offset_s(tz: zoneinfo.ZoneInfo, utc_s: int) -> int:
    """The zone's UTC offset in seconds at the instant ``utc_s`` (seconds since the epoch)."""
    offset = (_EPOCH + _dt.timedelta(seconds=utc_s)).astimezone(tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def zone_transitions(tz: zoneinfo.ZoneInfo, lo_s: int, hi_s: int) -> tuple[np.ndarray, np.ndarray]:
    """The offset changes of `tz` between the UTC instants `lo_s` and `hi_s` (seconds).

    Returns ``(at_s, offset_s)``: the instants of the changes (sorted, int64 seconds) and the
    offsets in force, ``offset_s[k]`` from ``at_s[k-1]`` to ``at_s[k]`` (one more than
    ``at_s``).  Only zoneinfo and the standard library are used.
    """
    # Keep to the years datetime can hold.
    lo_s = max(int(lo_s), -62_135_596_800 + 86_400)
    hi_s = min(int(hi_s), 253_402_300_799 - 86_400)
    grid = list(range(lo_s, hi_s + _SAMPLE_S, _SAMPLE_S))
    offs = [_offset_s(tz, s) for s in grid]
    at: list[int] = []
    values = [offs[0]]
    for k in range(1, len(grid)):
        if offs[k] == offs[k - 1]:
            continue
        a, b = grid[k - 1], grid[k]            # offset(a) = before, offset(b) = after
        while b - a > 1:
            mid = (a + b) // 2
            if _offset_s(tz, mid) == offs[k - 1]:
                a = mid
            else:
                b = mid
        at.append(b)
        values.append(offs[k])
    return np.array(at, dtype=np.int64), np.array(values, dtype=np.int64)


def resolve_wall_ns(wall_ns: np.ndarray, tz: zoneinfo.ZoneInfo
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local wall times (int64 ns, naive) in `tz` -> UTC ns, vectorised, without pandas.

    Returns ``(utc_ns, nonexistent, ambiguous, out_of_range)``.  A wall time skipped by a
    spring-forward change (``nonexistent``) maps to the instant of the change; a repeated
    one (``ambiguous``) to its first occurrence, the earlier UTC instant; one whose UTC time
    falls outside int64 nanoseconds (``out_of_range``) to 0.  These are the results of
    pandas' ``tz_localize(ambiguous=True-for-the-first, nonexistent="shift_forward")``.
    """
    wall = np.asarray(wall_ns, dtype=np.int64)
    n = len(wall)
    false = np.zeros(n, dtype=bool)
    if n == 0 or tz.key in _UTC_KEYS:
        return wall.copy(), false, false.copy(), false.copy()
    lo = int(wall.min()) // NS_PER_SECOND - 2 * 86_400
    hi = int(wall.max()) // NS_PER_SECOND + 2 * 86_400
    at_s, off_s = zone_transitions(tz, lo, hi)
    # Near the int64 edges Python ints (object arrays) keep the arithmetic exact; elsewhere
    # int64 cannot overflow (offsets are under a day).
    safe = -_I64_MAX + 4 * NS_PER_DAY < int(wall.min()) and int(wall.max()) < _I64_MAX - 4 * NS_PER_DAY
    kind = np.int64 if safe else object
    w = wall if safe else wall.astype(object)
    at_ns = at_s.astype(kind) * NS_PER_SECOND
    off_ns = off_s.astype(kind) * NS_PER_SECOND
    omax, omin = off_ns.max(), off_ns.min()
    if len(at_ns) == 0:
        utc = w - off_ns[0]
        nonexistent = ambiguous = false
    else:
        def offset_at(u):
            return off_ns[np.searchsorted(at_ns, u, side="right")]

        c1 = w - offset_at(w - omax)      # with the offset in force near the earliest candidate
        c2 = w - offset_at(w - omin)      # ... and near the latest
        v1 = np.asarray(offset_at(c1) == w - c1, dtype=bool)
        v2 = np.asarray(offset_at(c2) == w - c2, dtype=bool)
        ambiguous = v1 & v2 & (c1 != c2)
        nonexistent = ~v1 & ~v2
        utc = np.where(v1 & v2, np.minimum(c1, c2), np.where(v1, c1, c2))
        if nonexistent.any():
            k = np.searchsorted(at_ns, w[nonexistent] - omax, side="right")
            utc[nonexistent] = at_ns[np.minimum(k, len(at_ns) - 1)]
    if safe:
        return utc.astype(np.int64), nonexistent, ambiguous, false.copy()
    out, oob = _fit_i64(utc.tolist(), n)
    return out, nonexistent & ~oob, ambiguous & ~oob, oob


def local_days(ts_ns: np.ndarray, tz: zoneinfo.ZoneInfo) -> np.ndarray:
    """The local date (days since 1970-01-01, int64) in `tz` of each UTC instant (int64 ns)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if len(ts) == 0:
        return np.empty(0, np.int64)
    if tz.key in _UTC_KEYS:
        return ts // NS_PER_DAY
    lo, hi = int(ts.min()) // NS_PER_SECOND - 86_400, int(ts.max()) // NS_PER_SECOND + 86_400
    at_s, off_s = zone_transitions(tz, lo, hi)
    off = off_s[np.searchsorted(at_s, ts // NS_PER_SECOND, side="right")]
    # Python ints near the int64 edges; elsewhere int64 holds ts + offset.
    if int(ts.max()) < _I64_MAX - NS_PER_DAY and int(ts.min()) > -_I64_MAX + NS_PER_DAY:
        return (ts + off * NS_PER_SECOND) // NS_PER_DAY
    return np.array([(int(t) + int(o) * NS_PER_SECOND) // NS_PER_DAY for t, o in zip(ts, off)],
                    dtype=np.int64)


def extended_hours(ts_ns: np.ndarray, outside: np.ndarray, calendar: "Calendar"
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Which of the bars flagged ``outside`` every session window fall on a session's day
    (their local date in the calendar's zone is a session label): pre- and after-market, the
    hours after an early close.  Returns the mask over ``ts_ns`` and the session label
    (datetime64[D]) of each bar it marks."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    idx = np.flatnonzero(outside)
    ext = np.zeros(len(ts), bool)
    if not len(idx):
        return ext, np.empty(0, "datetime64[D]")
    days = local_days(ts[idx], calendar.tz)
    try:
        labels = calendar.sessions(np.datetime64(int(days.min()), "D"),
                                   np.datetime64(int(days.max()), "D"))
    except ValueError:
        return ext, np.empty(0, "datetime64[D]")
    known = np.isin(days, labels.astype(np.int64))
    ext[idx[known]] = True
    return ext, days[known].astype("datetime64[D]")


def _fit_i64(values: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Python ints -> int64 (0 where they do not fit) and the mask of those that do not."""
    oob = np.fromiter((not -_I64_MAX <= v <= _I64_MAX for v in values), bool, n)
    if oob.any():
        values = [0 if bad else v for v, bad in zip(values, oob.tolist())]
    return np.array(values, dtype=np.int64), oob


# --------------------------------------------------------------------------- #
# exchange()                                                                   #
# --------------------------------------------------------------------------- #


def _import_exchange_calendars():
    """Import the optional exchange_calendars package."""
    try:
        import exchange_calendars
    except ImportError as exc:
        raise ImportError(
            "Calendar.exchange needs the optional package exchange_calendars: "
            'pip install "sessiondata[calendars]"'
        ) from exc
    return exchange_calendars


_EXCHANGE_CACHE: dict[str, Calendar] = {}


def _exchange_calendar(key: str) -> Calendar:
    """Build (once per process) the calendar for a validated exchange_calendars name or preset.

    The schedule starts with exchange_calendars' default range (about 20 years back to a year
    ahead) and is rebuilt over a wider range when a query asks for sessions outside it, so
    that data of 2006 (or of next year) needs no option and keeps working as time passes.
    """
    cached = _EXCHANGE_CACHE.get(key)
    if cached is not None:
        return cached
    stored = _stored_exchange_calendar(key)
    if stored is not None:
        return stored
    source = _ExchangeSource(key)
    calendar = Calendar(source.calendar_name, source.tz, source)
    _EXCHANGE_CACHE[key] = calendar
    _store_exchange_calendar(key, source)
    return calendar


# Exchange calendars are built from exchange_calendars' schedules, which takes importing it
# and pandas and building ~20 years of sessions: a second or more at every start of the
# command line.  The built windows are kept on disk, per code and exchange_calendars version
# (its rules change only with its version), and read back by the next process.  A query
# outside the stored range widens it through exchange_calendars as usual.  The folder is
# $SESSIONDATA_CACHE (or ~/.cache/sessiondata); SESSIONDATA_CACHE=off turns it off.
_STORE_FORMAT = 1


def _store_path(code: str) -> "Path | None":
    import importlib.util
    import os

    from .versions import installed_version

    root = os.environ.get("SESSIONDATA_CACHE")
    if root is not None and root.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    try:
        importable = importlib.util.find_spec("exchange_calendars") is not None
    except (ImportError, ValueError):
        return None
    version = installed_version("exchange_calendars") if importable else None
    if version is None:       # without the package no stored calendar is used either
        return None
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "sessiondata")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", code.upper())
    return Path(root) / "calendars" / f"{safe}-ec{version}-v{_STORE_FORMAT}.npz"


def _stored_exchange_calendar(code: str) -> "Calendar | None":
    """The calendar of ``code`` as an earlier process stored it, or None."""
    path = _store_path(code)
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            key, name, tz = (str(data[k]) for k in ("key", "name", "tz"))
            table = _Table.build(data["open_ns"], data["close_ns"], data["day"])
    except (OSError, KeyError, ValueError):
        return None          # absent, or unreadable: build it again
    cached = _EXCHANGE_CACHE.get(key)
    if cached is not None:
        return cached
    try:
        source = _ExchangeSource.from_table(key, name, _parse_tz(tz), table)
    except ValueError:
        return None
    calendar = Calendar(source.calendar_name, source.tz, source)
    _EXCHANGE_CACHE[key] = calendar
    return calendar


def _store_exchange_calendar(key: str, source: "_ExchangeSource") -> None:
    """Keep the built windows for the next process (quietly nothing when it cannot)."""
    import os
    import tempfile

    path = _store_path(key)
    if path is None:
        return
    table = source._table
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=key, name=source.calendar_name, tz=str(source.tz.key),
                     open_ns=table.open_ns, close_ns=table.close_ns, day=table.day)
        os.replace(tmp, path)
    except OSError:
        return


def _xcal(key: str, start=None, end=None):
    """The exchange_calendars calendar of `key` (over ``start .. end`` when given)."""
    xcals = _import_exchange_calendars()
    with warnings.catch_warnings():
        # exchange_calendars 4.x uses pandas APIs that pandas 3 deprecates; the
        # warnings are theirs to fix and say nothing about our inputs.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        xcal = xcals.get_calendar("CMES" if key == "CME_GLOBEX" else key, start=start, end=end)
        schedule = xcal.schedule
    return xcal, schedule


def _xcal_bounds(key: str) -> tuple[int, int]:
    """The first and last day (days since the epoch) exchange_calendars can build the
    calendar ``key`` over (its ``bound_min``/``bound_max``; unbounded: the int64 years)."""
    xcals = _import_exchange_calendars()
    name = "CMES" if key == "CME_GLOBEX" else key
    try:
        # The class, not an instance: building one is what takes the time.
        factories = xcals.calendar_utils.global_calendar_dispatcher._calendar_factories
        cls = factories[xcals.resolve_alias(name)]
    except Exception:  # an unexpected layout of the library: no bounds known
        return _MIN_DAY, _MAX_DAY
    lo, hi = _MIN_DAY, _MAX_DAY
    try:
        bmin, bmax = cls.bound_min(), cls.bound_max()
    except Exception:
        return lo, hi
    if bmin is not None:
        lo = max(lo, int(np.datetime64(bmin.date(), "D").astype(np.int64)))
    if bmax is not None:
        hi = min(hi, int(np.datetime64(bmax.date(), "D").astype(np.int64)))
    return lo, hi


class _ExchangeSource(_ScheduleSource):
    """An exchange_calendars schedule that widens itself to the sessions a query needs."""

    # A rebuild reaches this many days beyond what was asked, so that data read piece by
    # piece does not rebuild the schedule for every piece.
    _MARGIN_DAYS = 366

    def __init__(self, key: str):
        xcal, schedule = _xcal(key)
        self._key = key
        self.calendar_name = key if key == "CME_GLOBEX" else xcal.name
        self.tz = _parse_tz(str(xcal.tz))
        self._lock = threading.Lock()
        self._failed: tuple[int, int] | None = None
        super().__init__(_schedule_table(schedule, self.tz, self.calendar_name), self.calendar_name)

    @classmethod
    def from_table(cls, key: str, name: str, tz: zoneinfo.ZoneInfo,
                   table: _Table) -> "_ExchangeSource":
        """A source of windows built earlier (see ``_stored_exchange_calendar``)."""
        source = cls.__new__(cls)
        source._key = key
        source.calendar_name = name
        source.tz = tz
        source._lock = threading.Lock()
        source._failed = None
        table.check_order(name)
        _ScheduleSource.__init__(source, table, name)
        return source

    def _widen(self, lo_day: int, hi_day: int) -> None:
        first, last = (int(d.astype(np.int64)) for d in self.coverage)
        if lo_day >= first and hi_day <= last:
            return
        with self._lock:
            first, last = (int(d.astype(np.int64)) for d in self.coverage)
            if lo_day >= first and hi_day <= last:
                return
            # The library's own bounds (XBOM from 1997, XSAU to 2029, ...): the margin and
            # the asked days are clipped to them, so that a query near a bound gets every
            # session the library can give instead of a refusal of the whole range.
            bound_lo, bound_hi = _xcal_bounds(self._key)
            lo = max(min(first, lo_day - self._MARGIN_DAYS), _MIN_DAY, bound_lo)
            hi = min(max(last, hi_day + self._MARGIN_DAYS), _MAX_DAY, bound_hi)
            lo, hi = min(lo, first), max(hi, last)
            if (lo, hi) == (first, last):
                return          # nothing more to be had; require_* states the range
            if self._failed is not None and self._failed[0] <= lo and hi <= self._failed[1]:
                return
            try:
                _xcal_obj, schedule = _xcal(self._key, _day_str(lo), _day_str(hi))
            except Exception:  # exchange_calendars refuses a range it has no rules for
                self._failed = (lo, hi)
                try:   # the widest it takes: the asked days only, within its bounds
                    _xcal_obj, schedule = _xcal(
                        self._key,
                        _day_str(min(max(lo_day, _MIN_DAY, bound_lo), first)),
                        _day_str(max(min(hi_day, _MAX_DAY, bound_hi), last)))
                except Exception:
                    return      # the range stays; require_* states it
            table = _schedule_table(schedule, self.tz, self.calendar_name)
            if len(table.day):
                table.check_order(self.calendar_name)
                _ScheduleSource.__init__(self, table, self.calendar_name)
                # The next process starts from the widened range (data of 2006 read again
                # does not rebuild through exchange_calendars every time).
                _store_exchange_calendar(self._key, self)

    def table(self, lo_day: int, hi_day: int) -> tuple[_Table, int, int]:
        self._widen(lo_day, hi_day)
        return super().table(lo_day, hi_day)

    def require_days(self, lo_day: int, hi_day: int) -> None:
        self._widen(lo_day, hi_day)
        super().require_days(lo_day, hi_day)

    def require_ns(self, start_ns: int, end_ns: int) -> None:
        self._widen(start_ns // NS_PER_DAY - _LABEL_MARGIN_DAYS, end_ns // NS_PER_DAY + _LABEL_MARGIN_DAYS)
        super().require_ns(start_ns, end_ns)


_HOURS_RE = re.compile(r"^\s*(\d{1,2}:\d{2}(?::\d{2})?)\s*-\s*(\d{1,2}:\d{2}(?::\d{2})?)\s*$")


def _with_hours(base: Calendar, hours: str) -> Calendar:
    """``base``'s sessions traded in the local hours ``"HH:MM-HH:MM"`` (see ``exchange``)."""
    if not isinstance(hours, str):
        raise TypeError(f"hours must be a str 'HH:MM-HH:MM', got {type(hours).__name__}")
    match = _HOURS_RE.match(hours)
    if match is None:
        raise ValueError(f"hours {hours!r} are not 'HH:MM-HH:MM' (e.g. '09:00-22:00')")
    open_tod = _parse_time(match.group(1), "open")
    close_tod = _parse_time(match.group(2), "close", allow_24=True)
    text = f"{_tod_str(open_tod)}-{_tod_str(close_tod)}"
    source = _HoursSource(base._source, base.tz, open_tod, close_tod, text)
    return Calendar(f"{base.name}@{text}", base.tz, source)


def _hours_source(code: str, hours: str) -> "_HoursSource":
    """Rebuild an hours source in another process (by its exchange code and hours)."""
    return Calendar.exchange(code, hours)._source


class _HoursSource:
    """The sessions (labels) of an exchange source, each one window in fixed local hours."""

    def __init__(self, base, tz: zoneinfo.ZoneInfo, open_tod: int, close_tod: int, text: str):
        self._base = base
        self._tz = tz
        self._open_tod = open_tod
        self._overnight = close_tod <= open_tod
        self._close_off = close_tod - open_tod + (NS_PER_DAY if self._overnight else 0)
        self._text = text
        self._lock = threading.Lock()
        self._built: tuple[object, int, int, _Table] | None = None

    def __reduce__(self):
        return (_hours_source, (self._base._key, self._text))

    @property
    def coverage(self):
        return self._base.coverage

    def _build(self, lo_day: int, hi_day: int) -> _Table:
        """The windows of the base's sessions labelled lo_day..hi_day."""
        base = self._base._table
        a, b = base.day_range(lo_day, hi_day)
        days = np.unique(base.day[a:b])
        open_wall = (days - int(self._overnight)) * NS_PER_DAY + self._open_tod
        opens = _wall_to_utc_ns(open_wall, self._tz)
        closes = _wall_to_utc_ns(open_wall + self._close_off, self._tz)
        keep = closes > opens
        return _Table.build(opens[keep], closes[keep], days[keep])

    def _own(self, lo_day: int, hi_day: int) -> _Table:
        """Windows covering the sessions lo_day..hi_day, built a year beyond what is asked
        (zone conversions over the base's whole range would cost seconds)."""
        coverage = self._base.coverage
        built = self._built
        if built is not None and built[0] == coverage and built[1] <= lo_day and \
                hi_day <= built[2]:
            return built[3]
        with self._lock:
            lo, hi = lo_day - 366, hi_day + 366
            if built is not None and built[0] == coverage:
                lo, hi = min(lo, built[1]), max(hi, built[2])
            table = self._build(lo, hi)
            self._built = (coverage, lo, hi, table)
        return table

    def table(self, lo_day: int, hi_day: int) -> tuple[_Table, int, int]:
        self._base.table(lo_day, hi_day)          # widens the base when needed
        table = self._own(lo_day, hi_day)
        return (table, *table.day_range(lo_day, hi_day))

    def require_days(self, lo_day: int, hi_day: int) -> None:
        self._base.require_days(lo_day, hi_day)

    def require_ns(self, start_ns: int, end_ns: int) -> None:
        try:
            self._base.require_ns(start_ns, end_ns)
        except ValueError:
            # The base's first open and last close are not ours: judge by our windows.
            first, last = (int(d.astype(np.int64)) for d in self._base.coverage)
            head, tail = self._build(first, first), self._build(last, last)
            if not len(head.day) or not len(tail.day) or start_ns < int(head.open_ns[0]) \
                    or end_ns > int(tail.close_ns[-1]):
                raise


def _schedule_table(schedule, tz: zoneinfo.ZoneInfo, name: str) -> _Table:
    """Windows from an exchange_calendars schedule (open, break_start, break_end, close)."""
    import pandas as pd

    def column_ns(column: str) -> tuple[np.ndarray, np.ndarray]:
        values = pd.DatetimeIndex(schedule[column]).as_unit("ns")
        return np.asarray(values.asi8, dtype=np.int64), np.asarray(values.isna())

    days = np.asarray(pd.DatetimeIndex(schedule.index).as_unit("ns").asi8 // NS_PER_DAY, dtype=np.int64)
    opens, _ = column_ns("open")
    closes, _ = column_ns("close")
    break_starts, no_break = column_ns("break_start")
    break_ends, no_break_end = column_ns("break_end")
    no_break |= no_break_end

    if name == "CME_GLOBEX":
        daily_close = (
            days * NS_PER_DAY
            + (_CME_GLOBEX_DAILY_CLOSE.hour * 3600 + _CME_GLOBEX_DAILY_CLOSE.minute * 60) * NS_PER_SECOND
        )
        # Globex trades to the 16:00 CT pause even on the days CMES closes early for a US
        # holiday (the 6E minute bars of MLK day 2024 run to 16:00 CT), so the preset keeps
        # the regular close; thin holiday trading shows up as gaps, not as rejected bars.
        closes = _wall_to_utc_ns(daily_close, tz)

    # Two windows per session, the second used only where there is a break.
    first_close = np.where(no_break, closes, np.minimum(break_starts, closes))
    win_open = np.stack([opens, np.where(no_break, closes, break_ends)], axis=1).ravel()
    win_close = np.stack([first_close, closes], axis=1).ravel()
    keep = win_close > win_open
    label = np.repeat(days, 2)
    return _Table.build(win_open[keep], win_close[keep], label[keep])


# --------------------------------------------------------------------------- #
# Parsing and formatting helpers                                               #
# --------------------------------------------------------------------------- #


def _parse_tz(tz) -> zoneinfo.ZoneInfo:
    """Return a ZoneInfo for a zone name or ZoneInfo."""
    if isinstance(tz, zoneinfo.ZoneInfo):
        return tz
    if not isinstance(tz, str):
        raise TypeError(f"tz must be a time zone name or a zoneinfo.ZoneInfo, got {type(tz).__name__}")
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def _parse_time(value, what: str, *, allow_24: bool = False) -> int:
    """Return a local time of day as nanoseconds after midnight ("24:00" allowed when `allow_24`)."""
    if isinstance(value, _dt.time):
        if value.tzinfo is not None:
            raise ValueError(f"{what} must be a local time without tzinfo, got {value!r}")
        seconds = value.hour * 3600 + value.minute * 60 + value.second
        return seconds * NS_PER_SECOND + value.microsecond * 1000
    if not isinstance(value, str):
        raise TypeError(f"{what} must be an 'HH:MM[:SS]' string or a datetime.time, got {type(value).__name__}")
    match = _TIME_RE.match(value.strip())
    if match is None:
        raise ValueError(f"{what} {value!r} is not a time of day 'HH:MM' or 'HH:MM:SS'")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if hours == 24 and minutes == 0 and seconds == 0 and allow_24:
        return NS_PER_DAY
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{what} {value!r} is not a valid time of day")
    return (hours * 3600 + minutes * 60 + seconds) * NS_PER_SECOND


def _weekday_number(value) -> int:
    """Return Monday=0 .. Sunday=6 for a day number or name."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= value <= 6:
            return int(value)
        raise ValueError(f"day {value!r} is out of range 0 (Monday) .. 6 (Sunday)")
    if isinstance(value, str):
        key = value.strip().lower()
        for number, (short, full) in enumerate(zip(_WEEKDAY_NAMES, _FULL_WEEKDAY_NAMES)):
            if key in (short.lower(), full):
                return number
        raise ValueError(f"unknown day {value!r}; use Mon, Tue, Wed, Thu, Fri, Sat or Sun")
    raise TypeError(f"a day must be an int (Monday=0) or a name, got {type(value).__name__}")


def _parse_days(days) -> np.ndarray:
    """Return the sorted unique weekday numbers of a days spec."""
    if isinstance(days, str):
        numbers: list[int] = []
        for part in days.split(","):
            if "-" in part:
                first, last = (_weekday_number(p) for p in part.split("-", 1))
                numbers.extend((first + k) % 7 for k in range((last - first) % 7 + 1))
            elif part.strip():
                numbers.append(_weekday_number(part))
    else:
        numbers = [_weekday_number(d) for d in _iterable(days, "days")]
    if not numbers:
        raise ValueError(f"days {days!r} selects no weekday")
    return np.unique(np.array(numbers, dtype=np.int64))


def _iterable(value, what: str):
    """Return `value` if it is a non-string iterable, else raise TypeError."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be an iterable, got {type(value).__name__}")
    return value


def _to_day(value, what: str) -> int:
    """Return a date-like value as int64 days since the epoch."""
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise ValueError(f"{what} must be a date, got NaT")
        return int(value.astype("datetime64[D]").astype(np.int64))
    if isinstance(value, _dt.datetime):  # includes pandas.Timestamp
        value = value.date()
    if isinstance(value, _dt.date):
        return (value - _dt.date(1970, 1, 1)).days
    if isinstance(value, str):
        try:
            parsed = np.datetime64(value.strip())
        except ValueError:
            raise ValueError(f"{what} {value!r} is not a date 'YYYY-MM-DD'") from None
        if np.isnat(parsed):
            raise ValueError(f"{what} {value!r} is not a date 'YYYY-MM-DD'")
        return int(parsed.astype("datetime64[D]").astype(np.int64))
    raise TypeError(
        f"{what} must be a date (str, datetime.date, numpy.datetime64, pandas.Timestamp), "
        f"got {type(value).__name__}"
    )


def _as_ns(value, what: str) -> int:
    """Return an integer nanosecond timestamp as a Python int."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be an int of nanoseconds, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int of nanoseconds since the epoch, got {type(value).__name__}") from None


def _first_day_of_year(year: int) -> int:
    """Days since the epoch of 1 January of `year`."""
    return int(np.datetime64(year - 1970, "Y").astype("datetime64[D]").astype(np.int64))


def _year_of_day(day: int) -> int:
    """Calendar year of a day count since the epoch."""
    return int(np.datetime64(day, "D").astype("datetime64[Y]").astype(np.int64)) + 1970


def _day_str(day: int) -> str:
    """ISO form of a day count."""
    return str(np.datetime64(day, "D"))


def _ns_str(ns: int) -> str:
    """ISO form of a UTC nanosecond timestamp, to the second when exact."""
    stamp = np.datetime64(ns, "ns")
    if ns % NS_PER_SECOND == 0:
        stamp = stamp.astype("datetime64[s]")
    return str(stamp).replace("T", " ")


def _plural(n: int, noun: str) -> str:
    """'1 window', '2 windows'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _tod_str(tod: int) -> str:
    """'HH:MM' or 'HH:MM:SS' for a time of day in ns."""
    seconds, rest = divmod(tod, NS_PER_SECOND)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{hours:02d}:{minutes:02d}"
    if seconds or rest:
        text += f":{seconds:02d}"
    if rest:
        text += f".{rest:09d}".rstrip("0")
    return text


def _days_str(weekdays: np.ndarray) -> str:
    """Short form of a weekday set: a wrapping range like 'Sun-Thu' when possible, else a list."""
    chosen = set(weekdays.tolist())
    if len(chosen) == 7:
        return "Mon-Sun"
    for first in chosen:
        if (first - 1) % 7 not in chosen:  # start of a run
            run = [(first + k) % 7 for k in range(len(chosen))]
            if set(run) == chosen:
                if len(run) == 1:
                    return _WEEKDAY_NAMES[first]
                return f"{_WEEKDAY_NAMES[first]}-{_WEEKDAY_NAMES[run[-1]]}"
    return ",".join(_WEEKDAY_NAMES[d] for d in sorted(chosen))


_FX = Calendar.weekly("America/New_York", "17:00", "17:00", "Mon-Fri", name="FX")
