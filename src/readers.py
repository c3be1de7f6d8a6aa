"""Readers: bars from CSV and Parquet files, folders of them, and pandas or polars DataFrames.

Every reader returns a :class:`ReadResult`: per symbol a sorted, validated :class:`Bars` with
its interval set, plus where each bar came from (file and line), so that a problem found
later (a bar outside every session, say) can still name its line.

Timestamps become int64 nanoseconds UTC, labelled by the bar's open.  What the readers need to
know and never guess:

- which column holds the time (auto-detected by name, case-insensitively: ``timestamp``,
  ``ts``, ``datetime``, ``time``, ``date``, or a ``date`` column and a ``time`` column);
- how it is written: ISO 8601 (the default, with an integer epoch recognised by its number
  of digits), a ``strptime`` format, or an epoch unit ``s``, ``ms``, ``us``, ``ns``;
- the time zone of naive times (default UTC; times with an offset carry their own);
- whether a bar is stamped at its ``start`` (the default) or its ``end``: end-stamped bars
  are shifted back by the base interval, which must then be given.

A malformed row is an error naming the file, the line (``row`` for Parquet and DataFrames)
and what is wrong: a bad number, a missing field, an unparseable time, a time that int64
nanoseconds cannot hold (before 1677-09-21 00:12:43 or after 2262-04-11 23:47:16 UTC; never
wrapped around), a field count that differs from the header's, a duplicate or out-of-order
timestamp, an impossible bar.  A price column of bools, complex numbers or datetimes is
refused whole, and a damaged file (a bad gzip CRC, corrupt compressed data) is an error
naming the file.  With
``on_bad="drop"`` such rows are dropped instead and counted by reason in
:attr:`ReadResult.dropped`.

CSV files are read by pyarrow's multithreaded parser, the columns typed as needed (prices
float64, ISO 8601 times as timestamps).  When it meets anything it cannot vouch for, the file
is read again by a careful line-by-line reader that finds the exact line and says what is
wrong (or drops the row); clean files never pay for it.  Line numbers assume one record per
line (no line breaks inside quoted fields).  Parquet files are read column by column, without
a copy where the types allow.  pandas is not needed (only to read a pandas DataFrame).

The volume column is optional (quotes, indices): without it the bars' volume is NaN and
``Bars.has_volume`` is False.  ``columns=[...]`` names the fields of a row (replacing the
header line, or with ``header=False`` for files without one).

:meth:`ReadResult.check_sessions` tells bars outside the session's hours (on a session's
day: pre- and after-market, after an early close), which are not bad data and are kept apart
in :attr:`ReadResult.outside`, from bars outside every session, which are; the error for
those quotes the time as written in the file and says when ``stamp="end"`` or ``tz=`` would
put the bars inside the sessions.
"""

from __future__ import annotations

import bz2
import csv
import datetime as _dt
import errno
import gzip
import lzma
import os
import re
import stat
import warnings
import zlib
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ._core import validation as _validation
from .bars import FAULTS, PRICE_COLUMNS, Bars
from .calendar import local_days, resolve_wall_ns, zone_transitions
from .intervals import parse_interval
from .session import check_symbol

__all__ = [
    "DATA_SUFFIXES",
    "ReadError",
    "ReadOptions",
    "ReadResult",
    "ReadWarning",
    "data_files",
    "read_bars",
    "read_csv",
    "read_frame",
    "read_parquet",
]

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz")
DATA_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
TS_FORMATS_EPOCH = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
STAMPS = ("start", "end")
POLICIES = ("raise", "drop")

# Column names recognised without options (compared in lower case).
_TS_NAMES = ("timestamp", "ts", "datetime", "date_time", "time_stamp")
_TS_PREFIXES = ("timestamp", "datetime")
_SYMBOL_NAMES = ("symbol", "ticker")
_DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "\\t": "\t", "|": "|"}

# An integer epoch is recognised by its number of digits (dates 1973 .. 2286).
_EPOCH_DIGITS = {9: "s", 10: "s", 12: "ms", 13: "ms", 15: "us", 16: "us", 18: "ns", 19: "ns"}
_INT_RE = re.compile(r"^-?\d+$")
_OFFSET_RE = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"

# Fault codes of the validation kernel (sessiondata._core.validation.FAULTS) named here.
_FAULT_UNSORTED, _FAULT_DUPLICATE, _FAULT_OUTSIDE, _FAULT_MISALIGNED = 4, 5, 6, 7

CHUNK_ROWS = 250_000
_CAREFUL_CHUNK = 65_536

# int64 nanoseconds hold 1677-09-21 00:12:43.145224193 .. 2262-04-11 23:47:16.854775807 UTC
# (the smallest int64 is NaT); times outside are an error, never wrapped around.
_NS_MAX = int(np.iinfo(np.int64).max)
_NS_MIN = -_NS_MAX
_NS_RANGE = "1677-09-21 00:12:43 .. 2262-04-11 23:47:16 UTC"
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_DAY_NS = 86_400 * 1_000_000_000
# What a damaged or truncated file (plain or compressed) raises while it is read.
_READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)


# --------------------------------------------------------------------------------------------
# Errors and options
# --------------------------------------------------------------------------------------------


class ReadError(ValueError):
    """A source could not be read; the message names the file, the line (or row) and why.

    Attributes
    ----------
    path : str
        The file (or ``"<DataFrame>"``).
    line : int or None
        The line (CSV, 1 is the header) or row (Parquet, DataFrame) at fault, when one is.
    reason : str
        What is wrong, without the location.
    """

    def __init__(self, path: str, line: int | None, reason: str, unit: str = "line"):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}, {unit} {line}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class ReadOptions:
    """How to read a source; every field has a keyword of the same name in the readers.

    Parameters
    ----------
    interval : str, optional
        The bars' interval (e.g. ``"1m"``), set on the result; required with
        ``stamp="end"``.
    stamp : {"start", "end"}
        Whether a row's time is the bar's open (``start``) or its close (``end``).
    tz : str
        Time zone of naive timestamps (``"UTC"``, ``"Europe/Berlin"`` ...).
    ts_format : str, optional
        ``None``/``"auto"`` (ISO 8601, or an integer epoch recognised by its digits), a
        ``strptime`` format such as ``"%d.%m.%Y %H:%M"``, or an epoch unit ``s``, ``ms``,
        ``us``, ``ns``.
    ts_column : str, optional
        The timestamp column (else auto-detected).
    date_column, time_column : str, optional
        A date column and a time-of-day column whose values are joined by a space.
    symbol_column : str, optional
        The symbol column (else ``symbol`` or ``ticker`` when present).
    symbol : str, optional
        The symbol of a source without a symbol column (else the file name's stem).
    columns : sequence of str or mapping, optional
        A sequence names the fields of each row, in order (``["date", "time", "open",
        ...]``): it replaces the header line when there is one (``header=True``) and is
        required when there is none.  A mapping names the price columns when they differ:
        ``{"open": "Open Price", ...}``.
    header : bool
        Whether the first line of a CSV file is a header (default True).
    delimiter : str, optional
        ``","``, ``";"``, ``"\\t"`` (or ``"tab"``), ``"|"``; detected from the header when
        not given.
    on_bad : {"raise", "drop"}
        Raise at the first malformed or impossible row, or drop and count such rows.
    encoding : str
        Text encoding of CSV files; a UTF-8 byte order mark is always accepted.
    chunk_rows : int
        Rows per chunk.
    """

    interval: str | None = None
    stamp: str = "start"
    tz: str = "UTC"
    ts_format: str | None = None
    ts_column: str | None = None
    date_column: str | None = None
    time_column: str | None = None
    symbol_column: str | None = None
    symbol: str | None = None
    columns: Mapping[str, str] | Sequence[str] | None = None
    header: bool = True
    delimiter: str | None = None
    on_bad: str = "raise"
    encoding: str = "utf-8"
    chunk_rows: int = CHUNK_ROWS

    def checked(self) -> "ReadOptions":
        """The options, validated; raises ValueError naming the bad one."""
        if self.stamp not in STAMPS:
            raise ValueError(f"stamp must be 'start' or 'end', got {self.stamp!r}")
        if self.on_bad not in POLICIES:
            raise ValueError(f"on_bad must be 'raise' or 'drop', got {self.on_bad!r}")
        if self.interval is not None:
            iv = parse_interval(self.interval)
            if iv.is_session:
                raise ValueError("the bars' interval cannot be '1d'; give an intraday interval")
        if self.stamp == "end" and self.interval is None:
            raise ValueError("stamp='end' needs the bars' interval (e.g. interval='1m') to "
                             "shift each bar back to its open")
        _zone(self.tz)
        if self.ts_column and (self.date_column or self.time_column):
            raise ValueError("give either ts_column or date_column + time_column, not both")
        if bool(self.date_column) != bool(self.time_column):
            raise ValueError("date_column and time_column go together")
        if self.delimiter is not None and self.delimiter not in _DELIMITERS:
            raise ValueError(f"delimiter {self.delimiter!r} is not one of , ; tab |")
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {self.chunk_rows}")
        names = self.field_names
        if names is not None:
            if not names or not all(isinstance(c, str) and c.strip() for c in names):
                raise ValueError(f"columns= names every field with a non-empty name; got "
                                 f"{list(names)!r}")
            lowered = [c.strip().lower() for c in names]
            dupes = sorted({c for c in lowered if lowered.count(c) > 1})
            if dupes:
                raise ValueError(f"columns= names {dupes[0]!r} more than once")
        elif not self.header:
            raise ValueError("header=False (--no-header) needs the names of the fields: "
                             "columns=[...] (--columns NAME,NAME,...)")
        if self.renames:
            unknown = set(self.renames) - set(PRICE_COLUMNS)
            if unknown:
                raise ValueError(f"columns= renames only {', '.join(PRICE_COLUMNS)}; got "
                                 f"{', '.join(sorted(unknown))}")
        if self.symbol is not None:
            check_symbol(self.symbol)
        return self

    @property
    def field_names(self) -> tuple[str, ...] | None:
        """The names given for the fields of a row (``columns`` as a sequence), or None."""
        if self.columns is None or isinstance(self.columns, Mapping):
            return None
        if isinstance(self.columns, str):
            return tuple(c.strip() for c in self.columns.split(","))
        return tuple(self.columns)

    @property
    def renames(self) -> Mapping[str, str] | None:
        """Names of the price columns (``columns`` as a mapping), or None."""
        return self.columns if isinstance(self.columns, Mapping) else None

    @property
    def shift_ns(self) -> int:
        """Nanoseconds to subtract from each time (the interval for end-stamped bars)."""
        if self.stamp != "end" or self.interval is None:
            return 0
        return parse_interval(self.interval).ns


def _zone(tz: str) -> zoneinfo.ZoneInfo:
    if isinstance(tz, zoneinfo.ZoneInfo):
        return tz
    try:
        return zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {tz!r} (use a name such as 'UTC' or "
                         "'Europe/Berlin')") from None


def _is_utc(zone: zoneinfo.ZoneInfo) -> bool:
    return zone.key in ("UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu",
                        "GMT", "Etc/GMT")


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


@dataclass
class ReadResult:
    """What a reader produced.

    Attributes
    ----------
    bars : dict[str, Bars]
        Per symbol, sorted by open time, validated, with ``interval`` set when known.
    dropped : collections.Counter
        Rows dropped under ``on_bad="drop"``, by reason.
    rows : int
        Data rows read (blank lines not counted).
    sources : list[str]
        The files (or ``"<DataFrame>"``) read, in order.
    outside : dict[str, numpy.ndarray]
        Set by :meth:`check_sessions`: per symbol, the open times (int64 ns UTC, sorted) of
        the bars that fall on a session's day but outside its hours (pre- and after-market
        in a regular-hours run, the hours after an early close).  They are not bad data:
        they are taken out of :attr:`bars`, not counted in :attr:`dropped`, and
        :attr:`outside_sessions` gives the session of each.
    outside_sessions : dict[str, numpy.ndarray]
        Per symbol, the session label (datetime64[D]) of each time in :attr:`outside`.
    unreadable : list[tuple[str, str]]
        Files of a folder that could not be read, with why (``on_bad="drop"`` only; with
        ``"raise"`` the first is an error).  Each was also warned about and counted in
        :attr:`dropped` as ``"unreadable file"``.
    """

    bars: dict[str, Bars] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    rows: int = 0
    sources: list[str] = field(default_factory=list)
    # Per symbol, for each bar: the index of its source and its line (or row) there.
    _source_of: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _line_of: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _units: list[str] = field(default_factory=list, repr=False)
    outside: dict[str, np.ndarray] = field(default_factory=dict)
    outside_sessions: dict[str, np.ndarray] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    # Per source index: how to find a row's time as written (for messages), and the time
    # parser (whether the times were naive).
    _time_fields: dict[int, tuple] = field(default_factory=dict, repr=False)
    _parsers: dict[int, Any] = field(default_factory=dict, repr=False)

    @property
    def symbols(self) -> list[str]:
        return list(self.bars)

    def where(self, symbol: str, row: int) -> tuple[str, int | None, str]:
        """``(source, line, unit)`` of the bar at index ``row`` of ``symbol``'s bars."""
        src = self._source_of.get(symbol)
        if src is None or not 0 <= row < len(src):
            return (f"<{symbol}>", None, "row")
        k = int(src[row])
        return (self.sources[k], int(self._line_of[symbol][row]), self._units[k])

    def error(self, symbol: str, row: int, reason: str) -> ReadError:
        """A ReadError for the bar at ``row`` of ``symbol``."""
        path, line, unit = self.where(symbol, row)
        return ReadError(path, line, reason, unit)

    def keep(self, symbol: str, mask: np.ndarray) -> None:
        """Keep only the bars of ``symbol`` where ``mask`` is true."""
        bars = self.bars[symbol]
        cols = {name: getattr(bars, name)[mask] for name in ("ts",) + PRICE_COLUMNS}
        self.bars[symbol] = Bars(**cols, interval=bars.interval, validate=False,
                                 has_volume=bars.has_volume)
        if symbol in self._source_of:
            self._source_of[symbol] = self._source_of[symbol][mask]
            self._line_of[symbol] = self._line_of[symbol][mask]

    def check_sessions(self, calendar, interval=None, on_bad: str = "raise") -> Counter:
        """Check that every bar lies inside a session window of ``calendar`` and on the grid
        of ``interval`` (default: the bars' own).

        A bar outside every window on a day that is a session of ``calendar`` (pre- or
        after-market, the hours after an early close) is *outside the session's hours*: not
        bad data.  It leaves :attr:`bars` for :attr:`outside` (with its session in
        :attr:`outside_sessions`) under either policy, and the returned counter has it
        under ``"outside the session's hours"``.  (When shifting every such bar by the
        interval, as ``stamp="end"`` would, or reading the times in the calendar's zone, as
        ``tz=`` would, puts them all inside sessions, they are taken as a misread file, not
        as extended hours, and the error says which option fits.)

        Other bad bars raise ReadError naming the first one's file, line and the time as
        written there, or (``on_bad="drop"``) are dropped, counted by reason in the returned
        counter and in :attr:`dropped`.
        """
        if on_bad not in POLICIES:
            raise ValueError(f"on_bad must be 'raise' or 'drop', got {on_bad!r}")
        dropped: Counter = Counter()
        hours: Counter = Counter()
        for symbol in list(self.bars):
            bars = self.bars[symbol]
            if not len(bars):
                continue
            iv = parse_interval(interval) if interval is not None else bars.interval
            base_ns = iv.ns if iv is not None else 0
            windows = calendar.windows(int(bars.ts[0]) - base_ns,
                                       int(bars.ts[-1]) + max(base_ns, 1))
            faults = np.zeros(len(bars), np.uint8)
            if len(windows) == 0:  # the kernel skips session checks without windows
                faults[:] = _FAULT_OUTSIDE
            else:
                _validation.validate_bars(
                    bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                    windows.open_ns, windows.close_ns, base_ns, faults, False,
                    volume_optional=not bars.has_volume)
            outside = faults == _FAULT_OUTSIDE
            hint = ""
            if outside.any():
                hint = self._misread_hint(symbol, bars.ts[outside], calendar, base_ns)
                if not hint:
                    ext, labels = _extended_hours(bars.ts, outside, calendar)
                    if ext.any():
                        self._add_outside(symbol, bars.ts[ext], labels)
                        hours["outside the session's hours"] += int(ext.sum())
                        faults[ext] = 0
                        keep = ~ext
                        self.keep(symbol, keep)
                        bars = self.bars[symbol]
                        faults = faults[keep]
            bad = np.flatnonzero(faults)
            if not len(bad):
                continue
            if on_bad == "raise":
                first = int(bad[0])
                fault = int(faults[first])
                t = _ts_str(int(bars.ts[first]), calendar.tz)
                what = FAULTS.get(fault, "bad bar")
                written = self.field_text(symbol, first)
                at = f"{written!r} ({t})" if written else t
                if fault == _FAULT_OUTSIDE:
                    what = f"the bar at {at} lies outside every session of {calendar.name}"
                    what += hint or self._misread_hint(symbol, bars.ts[first:first + 1],
                                                       calendar, base_ns)
                elif fault == _FAULT_MISALIGNED:
                    grid = iv.name if iv is not None else "base-interval"
                    what = f"the bar at {at} is not on the {grid} grid of its session"
                else:
                    what = f"{what} (bar at {at})"
                raise self.error(symbol, first, what)
            counts = np.bincount(faults, minlength=len(FAULTS) + 1)
            for code, n in enumerate(counts.tolist()):
                if code and n:
                    dropped[FAULTS.get(code, "bad bar")] += int(n)
            self.keep(symbol, faults == 0)
        self.dropped.update(dropped)
        return dropped + hours

    def _add_outside(self, symbol: str, ts: np.ndarray, labels: np.ndarray) -> None:
        if symbol in self.outside:
            ts = np.concatenate([self.outside[symbol], ts])
            labels = np.concatenate([self.outside_sessions[symbol], labels])
            order = np.argsort(ts, kind="stable")
            ts, labels = ts[order], labels[order]
        self.outside[symbol] = np.ascontiguousarray(ts, dtype=np.int64)
        self.outside_sessions[symbol] = labels.astype("datetime64[D]")

    def _misread_hint(self, symbol: str, ts: np.ndarray, calendar, base_ns: int) -> str:
        """``"; with --stamp end ... it would lie inside ..."`` when reading the file with
        ``stamp="end"`` or ``tz=<the calendar's zone>`` would put every time of ``ts`` (bars
        outside every session) inside a session; else ""."""
        if not len(ts):
            return ""
        k = self._source_of.get(symbol)
        parser = self._parsers.get(int(k[0])) if k is not None and len(k) else None
        if parser is None:
            return ""
        fixes = []
        if parser.shift == 0 and base_ns > 0:
            fixes.append(("--stamp end (stamp='end': bars stamped at their close)",
                          ts - base_ns))
        zone = calendar.tz
        if not parser.aware and parser.zone.key != zone.key:
            # The times as wall clock in the calendar's zone instead of the zone read with.
            wall = _rewall(ts, parser.zone)
            local, nonexistent, ambiguous, oob = resolve_wall_ns(wall, zone)
            if not (nonexistent | oob).any():
                fixes.append((f"--tz {zone.key} (tz={zone.key!r})", local))
                if parser.shift == 0 and base_ns > 0:
                    fixes.append((f"--tz {zone.key} --stamp end", local - base_ns))
        for label, moved in fixes:
            try:
                w = calendar.windows(int(moved.min()), int(moved.max()) + 1)
            except ValueError:
                continue
            if len(w) and _inside(moved, w.open_ns, w.close_ns).all():
                what = "it" if len(ts) == 1 else f"all {len(ts)} such bars of {symbol}"
                return f"; with {label} {what} would lie inside sessions"
        return ""

    def field_text(self, symbol: str, row: int) -> str | None:
        """The time of the bar at ``row`` of ``symbol`` as written in its file (the field,
        or the date and time fields joined by a space), or None when it cannot be told."""
        src = self._source_of.get(symbol)
        if src is None or not 0 <= row < len(src):
            return None
        k = int(src[row])
        how = self._time_fields.get(k)
        line = int(self._line_of[symbol][row])
        try:
            if how is None:
                return None
            if how[0] == "csv":
                _kind_, delimiter, idx, encoding = how
                with _open_binary(Path(self.sources[k])) as f:
                    for n, raw in enumerate(f, start=1):
                        if n == line:
                            text = raw.decode(_text_encoding(encoding) if n == 1 else
                                              encoding, errors="replace")
                            fields = next(csv.reader([text.rstrip("\r\n")],
                                                     delimiter=delimiter))
                            return " ".join(fields[i].strip() for i in idx)
                return None
            if how[0] == "parquet":
                import pyarrow.parquet as pq

                table = pq.read_table(self.sources[k], columns=list(how[1]))
                return " ".join(str(table.column(c)[line - 1].as_py()) for c in how[1])
        except Exception:  # noqa: BLE001 - only for a message; the error stands without it
            return None
        return None


def _inside(ts: np.ndarray, open_ns: np.ndarray, close_ns: np.ndarray) -> np.ndarray:
    """Whether each time lies in one of the sorted ``[open, close)`` windows."""
    k = np.searchsorted(open_ns, ts, side="right") - 1
    ok = k >= 0
    return ok & (ts < close_ns[np.maximum(k, 0)])


def _rewall(ts: np.ndarray, zone) -> np.ndarray:
    """UTC instants -> the wall-clock ns they were read from in ``zone``."""
    if _is_utc(zone):
        return np.asarray(ts, dtype=np.int64)
    at_s, off_s = zone_transitions(zone, int(ts.min()) // 10**9 - 86_400,
                                   int(ts.max()) // 10**9 + 86_400)
    off = off_s[np.searchsorted(at_s, ts // 10**9, side="right")]
    return ts + off * 1_000_000_000


def _extended_hours(ts: np.ndarray, outside: np.ndarray, calendar
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Which bars outside every window fall on a session's day (its local date in the
    calendar's zone is a session label), and the label of each of those."""
    idx = np.flatnonzero(outside)
    days = local_days(ts[idx], calendar.tz)
    try:
        labels = calendar.sessions(np.datetime64(int(days.min()), "D"),
                                   np.datetime64(int(days.max()), "D"))
    except ValueError:
        return np.zeros(len(ts), bool), np.empty(0, "datetime64[D]")
    known = np.isin(days, labels.astype(np.int64))
    ext = np.zeros(len(ts), bool)
    ext[idx[known]] = True
    return ext, days[known].astype("datetime64[D]")


def _ts_str(ns: int, tz=None) -> str:
    """``2024-01-02 14:31:00 UTC`` (or local, with the zone's abbreviation)."""
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    t = epoch + _dt.timedelta(microseconds=ns // 1000)
    if tz is not None:
        t = t.astimezone(tz)
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text} {t.tzname() or 'UTC'}"


# --------------------------------------------------------------------------------------------
# Column detection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Which source columns play which role."""

    ts: str | None              # single timestamp column
    date: str | None            # or a date column ...
    time: str | None            # ... and a time column
    prices: dict[str, str]      # role -> column name
    symbol: str | None

    @property
    def time_columns(self) -> list[str]:
        if self.ts is not None:
            return [self.ts]
        assert self.date is not None and self.time is not None
        return [self.date, self.time]

    @property
    def time_label(self) -> str:
        return repr(self.ts) if self.ts is not None else f"{self.date!r} + {self.time!r}"

    @property
    def has_volume(self) -> bool:
        return "volume" in self.prices

    @property
    def price_columns(self) -> list[str]:
        """The source columns of the prices (and the volume, when there is one), in order."""
        return [self.prices[c] for c in PRICE_COLUMNS if c in self.prices]

    @property
    def needed(self) -> list[str]:
        out = list(self.time_columns) + self.price_columns
        if self.symbol is not None:
            out.append(self.symbol)
        return out


def _detect_layout(names: list[str], opts: ReadOptions, where: str) -> _Layout:
    """Find the columns by name (case-insensitive), or as the options say."""
    clean = [str(n).strip() for n in names]
    lower: dict[str, str] = {}
    for raw, n in zip(names, clean):
        key = n.lower()
        if key in lower:
            continue
        lower[key] = raw
    has = ", ".join(map(repr, clean)) or "none"

    def pick(name: str, what: str) -> str:
        hit = lower.get(name.strip().lower())
        if hit is None:
            raise ReadError(where, None, f"no {what} column {name!r} (columns: {has})")
        return hit

    dupes = sorted({n for n in (c.lower() for c in clean) if
                    [c.lower() for c in clean].count(n) > 1})
    ts = date = time = None
    if opts.ts_column:
        ts = pick(opts.ts_column, "timestamp")
    elif opts.date_column:
        date, time = pick(opts.date_column, "date"), pick(str(opts.time_column), "time")
    else:
        ts = next((lower[n] for n in _TS_NAMES if n in lower), None)
        if ts is None:
            ts = next((raw for key, raw in lower.items() if key.startswith(_TS_PREFIXES)), None)
        if ts is None and "date" in lower and "time" in lower:
            date, time = lower["date"], lower["time"]
        elif ts is None:
            ts = lower.get("time") or lower.get("date")
        if ts is None and date is None:
            raise ReadError(where, None, "no timestamp column (looked for timestamp, ts, "
                            f"datetime, time, date, or date + time; columns: {has}); "
                            "name it with ts_column (--ts-column)")
    renames = dict(opts.renames or {})
    prices = {}
    missing = []
    for role in PRICE_COLUMNS:
        name = renames.get(role, role)
        hit = lower.get(name.strip().lower())
        if hit is None:
            # Volume is optional (quotes, indices) unless a column was named for it.
            if role != "volume" or "volume" in renames:
                missing.append(name)
        else:
            prices[role] = hit
    if missing:
        hint = "" if opts.field_names else \
            "; name the fields with columns=[...] (--columns NAME,NAME,...)"
        raise ReadError(where, None, f"missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(repr, missing))} (columns: {has}){hint}")
    symbol: str | None
    if opts.symbol_column:
        symbol = pick(opts.symbol_column, "symbol")
    elif opts.symbol is None:
        symbol = next((lower[n] for n in _SYMBOL_NAMES if n in lower), None)
    else:
        symbol = None
    layout = _Layout(ts, date, time, prices, symbol)
    used = {str(n).strip().lower() for n in layout.needed}
    clash = [d for d in dupes if d in used]
    if clash:
        raise ReadError(where, None, f"column {clash[0]!r} appears more than once in the header")
    return layout


# --------------------------------------------------------------------------------------------
# Time parsing (vectorised, with the rows it could not parse)
# --------------------------------------------------------------------------------------------


class _TimeParser:
    """Turns a source's time values into int64 ns UTC.  The way to read them (ISO, epoch
    unit, format) is settled once, from the first value, and then holds for the source."""

    def __init__(self, opts: ReadOptions):
        self.fmt = None if opts.ts_format in (None, "", "auto") else opts.ts_format
        self.zone = _zone(opts.tz)
        self.shift = opts.shift_ns
        self.mode: str | None = None      # "iso", "format", or an epoch unit
        self.aware: bool | None = None     # times carry an offset
        if self.fmt in TS_FORMATS_EPOCH:
            self.mode = self.fmt
        elif self.fmt is not None:
            self.mode = "format"
            self.aware = "%z" in self.fmt or "%Z" in self.fmt

    def settle(self, first: str) -> None:
        """Settle ISO vs. epoch from the first value (a stripped string)."""
        if self.mode is not None:
            return
        if _INT_RE.match(first):
            digits = len(first.lstrip("-"))
            unit = _EPOCH_DIGITS.get(digits)
            if unit is None and digits != 8:  # 8 digits: ISO basic date 20240102
                raise ValueError(f"cannot tell the epoch unit of {first!r} ({digits} digits); "
                                 "give ts_format (--ts-format) s, ms, us or ns")
            if unit is not None:
                self.mode = unit
                return
        self.mode = "iso"
        self.aware = re.search(_OFFSET_RE, first) is not None and _looks_timed(first)

    def describe(self) -> str:
        if self.mode in TS_FORMATS_EPOCH:
            return f"epoch {self.mode}"
        if self.mode == "format":
            return f"format {self.fmt!r}"
        return "ISO 8601"

    def parse_text(self, values) -> tuple[np.ndarray, np.ndarray, list]:
        """Parse stripped strings (an object array, or a pyarrow string array); returns (ns,
        bad mask, (category, reason) of each bad row in order).

        Empty strings are not handled here (the caller reports them as missing fields).
        Clean columns are parsed by pyarrow in one vectorised call; a column it refuses is
        parsed value by value, to say which values are bad and why.
        """
        import pyarrow as pa

        n = len(values)
        if n == 0:
            return np.empty(0, np.int64), np.zeros(0, bool), []
        arrow = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else None
        if self.mode is None:
            self.settle(str(values[0] if arrow is None else values[0].as_py()))
        if arrow is None:
            arrow = pa.array(np.asarray(values, dtype=object), type=pa.string())
        if self.mode in TS_FORMATS_EPOCH:
            nums, bad_num = _text_numbers(arrow)
            ns, bad, oob = _epoch_ns(nums, self.mode)
            bad |= bad_num
            return self._finish(ns, bad, _pylist(values), aware=True, out_of_range=oob)
        if self.mode == "format":
            ns, bad, oob = _strptime_ns(arrow, str(self.fmt), bool(self.aware))
            return self._finish(ns, bad, _pylist(values) if bad.any() else values,
                                aware=bool(self.aware), out_of_range=oob)
        got = _arrow_iso_ns(arrow, bool(self.aware))
        if got is not None:
            return self._finish(got, np.zeros(n, bool), values, aware=bool(self.aware))
        texts = _pylist(values)
        ns, bad, oob, other_kind = _iso_ns_each(texts, bool(self.aware))
        return self._finish(ns, bad, texts, aware=bool(self.aware), offset_mismatch=other_kind,
                            out_of_range=oob)

    def parse_naive_ns(self, ns: np.ndarray, out_of_range=None, shown=None
                       ) -> tuple[np.ndarray, np.ndarray, list]:
        """Naive datetimes as int64 ns (wall clock in ``tz``) -> UTC.

        ``out_of_range`` marks times that do not fit int64 ns (their ``ns`` is ignored);
        ``shown`` holds the original values, to name them in the reasons.
        """
        return self._finish(ns.astype(np.int64, copy=False), np.zeros(len(ns), bool), None,
                            aware=False, out_of_range=out_of_range, shown=shown)

    def parse_utc_ns(self, ns: np.ndarray, out_of_range=None, shown=None
                     ) -> tuple[np.ndarray, np.ndarray, list]:
        """Times already in UTC ns (``out_of_range`` and ``shown`` as for parse_naive_ns)."""
        return self._finish(ns.astype(np.int64, copy=False), np.zeros(len(ns), bool), None,
                            aware=True, out_of_range=out_of_range, shown=shown)

    def parse_epoch(self, nums: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
        """Numeric epoch values (unit from ts_format, else from the first value's digits)."""
        if self.mode is None:
            finite = nums[np.isfinite(nums)] if nums.dtype.kind == "f" else nums
            self.settle(str(int(finite[0])) if len(finite) else "0")
        if self.mode not in TS_FORMATS_EPOCH:
            raise ValueError(f"numeric times cannot be read as {self.describe()}; give "
                             "ts_format (--ts-format) s, ms, us or ns")
        ns, bad, oob = _epoch_ns(nums, self.mode)
        return self._finish(ns, bad, None, aware=True, out_of_range=oob, shown=nums)

    def _finish(self, ns, bad, values, *, aware: bool, offset_mismatch=None,
                out_of_range=None, shown=None):
        """Localise naive times, shift end stamps; say why each bad row is bad.

        Returns (ns, bad mask, list of (category, reason) for the bad rows in order).
        """
        reasons_by_row: dict[int, str] = {}
        if offset_mismatch is not None:
            for i in np.flatnonzero(offset_mismatch).tolist():
                reasons_by_row[i] = (
                    f"unparseable time {_text_at(values, i)!r}: "
                    + ("no UTC offset, while the first time has one" if self.aware
                       else "has a UTC offset, while the first time has none"))
        oob = np.zeros(len(ns), bool) if out_of_range is None else out_of_range.copy()
        bad = bad | oob
        if not aware and not _is_utc(self.zone):
            wall = ns
            ns, local_bad, local_oob = _localize(wall, bad, self.zone)
            for i in np.flatnonzero(local_bad).tolist():
                label = _text_at(values, i) if values is not None else _shown(shown, i)
                if label is None:
                    label = _ns_text(int(wall[i]))
                reasons_by_row[i] = (f"time {label!r} does not exist or is ambiguous in "
                                     f"{self.zone.key} (a daylight-saving change); give UTC "
                                     "times or times with an offset")
            oob = oob | local_oob
            bad = bad | local_bad | local_oob
        under = None
        if self.shift:
            ok = ~bad
            under = ok & (ns < _NS_MIN + self.shift)   # the open would be before 1677
            if under.any():
                oob = oob | under
                bad = bad | under
                ok = ~bad
            if not ns.flags.writeable:
                ns = ns.copy()
            ns[ok] -= self.shift
        reasons = []
        for i in np.flatnonzero(bad).tolist():
            if i in reasons_by_row:
                reasons.append(("unparseable time", reasons_by_row[i]))
            elif oob[i]:
                label = _text_at(values, i) if values is not None else _shown(shown, i)
                what = "time" if label is None else f"time {label!r}"
                if under is not None and under[i]:
                    what = f"the open of the bar ending at {what}"
                reasons.append(("time out of range",
                                f"{what} is out of range: int64 nanoseconds hold only "
                                f"{_NS_RANGE}"))
            elif values is not None:
                reasons.append(("unparseable time", f"unparseable time {_text_at(values, i)!r} "
                                f"(expected {self.describe()})"))
            else:
                label = _shown(shown, i)
                reasons.append(("unparseable time", "unparseable time"
                                + ("" if label is None else f" {label!r}")))
        return ns, bad, reasons


def _shown(shown, i: int) -> str | None:
    """The original value ``shown[i]`` as text, for a message (None when not known)."""
    if shown is None:
        return None
    value = shown[i]
    if isinstance(value, np.datetime64):
        return _dt64_text(value)
    return str(value.item() if isinstance(value, np.generic) else value)


def _text_at(values, i: int):
    """The i-th value of a list, object array or pyarrow array, as Python text."""
    value = values[i]
    return value.as_py() if hasattr(value, "as_py") else value


def _pylist(values) -> list:
    """Values of an object array or pyarrow array as a Python list."""
    return values.to_pylist() if hasattr(values, "to_pylist") else list(values)


def _ns_text(ns: int) -> str:
    """``2024-03-10 02:30:00`` (with a fraction when there is one) of int64 ns."""
    return _dt64_text(np.datetime64(ns, "ns"))


def _dt64_text(value: np.datetime64) -> str:
    """A datetime64 as ``YYYY-MM-DD HH:MM:SS[.ffffff[fff]]`` (any unit and range)."""
    unit, _count = np.datetime_data(value.dtype)
    if np.isnat(value):
        return "NaT"
    if unit in ("Y", "M", "W", "D", "h", "m", "s"):
        text = str(value.astype("datetime64[s]")).replace("T", " ")
        return text if unit not in ("Y", "M", "W", "D") else text + (
            " 00:00:00" if len(text) == 10 else "")
    text = str(value.astype("datetime64[ns]") if unit in ("ms", "us", "ns") and
               abs(int(value.astype("datetime64[us]").astype(np.int64))) < 9 * 10**15
               else value).replace("T", " ")
    if "." in text:
        head, frac = text.split(".", 1)
        frac = frac.rstrip("0")
        if not frac:
            return head
        return f"{head}.{frac.ljust(6, '0') if len(frac) <= 6 else frac.ljust(9, '0')}"
    return text


def _looks_timed(text: str) -> bool:
    """A date followed by a time (so a trailing '-05' is an offset, not a day)."""
    return re.search(r"\d[T ]\d", text) is not None


def _scale_ns(raw: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer times in units of ``factor`` ns -> int64 ns, with a mask of those that do not
    fit (their ns is 0).  Vectorised: the bounds are checked before multiplying."""
    raw = np.asarray(raw)
    if raw.dtype != np.int64:
        raw = raw.astype(np.int64)
    if factor == 1:
        oob = raw == np.iinfo(np.int64).min
        return np.where(oob, 0, raw), oob
    limit = _NS_MAX // factor
    oob = (raw > limit) | (raw < -limit)
    ns = np.where(oob, 0, raw) * factor if oob.any() else raw * factor
    return ns, oob


def _dt64_ns(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A numpy datetime64 array of any unit -> (int64 ns, NaT mask, out-of-range mask);
    NaT and out-of-range times have ns 0.  Never wraps around (unlike ``astype``)."""
    arr = np.asarray(arr)
    nat = np.isnat(arr)
    unit, count = np.datetime_data(arr.dtype)
    if unit == "generic":
        return np.zeros(len(arr), np.int64), np.ones(len(arr), bool), np.zeros(len(arr), bool)
    if unit in ("ps", "fs", "as"):     # finer than ns: a narrower range than int64 ns
        ns = arr.astype("datetime64[ns]").view(np.int64).copy()
        ns[nat] = 0
        return ns, nat, np.zeros(len(arr), bool)
    if unit in ("Y", "M"):             # calendar units: through seconds
        arr = arr.astype("datetime64[s]")
        unit, count = "s", 1
    factor = int(np.timedelta64(count, unit) // np.timedelta64(1, "ns"))  # type: ignore[call-overload]
    raw = arr.view(np.int64)
    if nat.any():
        raw = np.where(nat, 0, raw)
    ns, oob = _scale_ns(raw, factor)
    return ns, nat, oob & ~nat


_ISO_RE = re.compile(
    r"^(\d{4})-?(\d{2})-?(\d{2})"
    r"(?:[T ](\d{2})(?::?(\d{2})(?::?(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$")


def _arrow_iso_ns(arr, aware: bool) -> np.ndarray | None:
    """ISO 8601 text parsed by pyarrow as int64 ns (UTC when ``aware``, else wall times), or
    None when pyarrow refuses any value (the caller then parses value by value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        got = pc.cast(arr, pa.timestamp("ns", "UTC" if aware else None))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if got.null_count:
        return None
    return _arrow_i64(got)


def _arrow_i64(arr) -> np.ndarray:
    """An arrow integer or timestamp array without nulls as int64 numpy (zero-copy for one
    chunk of int64 or timestamp)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_timestamp(arr.type) or pa.types.is_date64(arr.type):
        arr = arr.view(pa.int64())
    out = arr.to_numpy(zero_copy_only=False)
    return out if out.dtype == np.int64 else out.astype(np.int64)


def _iso_one(text: str) -> tuple[int | None, bool, bool]:
    """One ISO 8601 time -> (ns or None when unparseable, has an offset, out of range).

    Naive times are wall-clock ns; times with an offset are UTC ns."""
    m = _ISO_RE.match(text)
    if m is None:
        return None, False, False
    y, mo, d, hh, mi, ss, frac, z, sign, oh, om = m.groups()
    try:
        day = _dt.date(int(y), int(mo), int(d)).toordinal() - 719163
    except ValueError:
        return None, False, False
    h, minute, sec = int(hh or 0), int(mi or 0), int(ss or 0)
    if h > 23 or minute > 59 or sec > 59:
        return None, False, False
    nanos = int((frac or "")[:9].ljust(9, "0")) if frac else 0
    ns = ((day * 24 + h) * 60 + minute) * 60 + sec
    ns = ns * 1_000_000_000 + nanos
    aware = bool(z or sign)
    if sign:
        if int(oh) > 23 or int(om or 0) > 59:
            return None, False, False
        off = (int(oh) * 60 + int(om or 0)) * 60 * 1_000_000_000
        ns = ns - off if sign == "+" else ns + off
    if not -_NS_MAX <= ns <= _NS_MAX:
        return 0, aware, True
    return ns, aware, False


def _iso_ns_each(texts: list, aware: bool):
    """ISO 8601 times one by one: (ns, bad, out of range, of the other kind than ``aware``)."""
    n = len(texts)
    ns = np.zeros(n, np.int64)
    bad = np.zeros(n, bool)
    oob = np.zeros(n, bool)
    other = np.zeros(n, bool)
    for i, text in enumerate(texts):
        value, has_offset, out = _iso_one(text) if isinstance(text, str) else (None, False, False)
        if value is None:
            bad[i] = True
        elif has_offset != aware and _looks_timed(text):
            bad[i] = other[i] = True
        elif out:
            bad[i] = oob[i] = True
        else:
            ns[i] = value
    return ns, bad, oob, other


def _text_numbers(arr) -> tuple[np.ndarray, np.ndarray]:
    """Numbers written as text (a pyarrow string array) -> int64 or float64 numpy, and a mask
    of the values that are no number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for typ in (pa.int64(), pa.float64()):
        try:
            got = pc.cast(arr, typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        if not got.null_count:
            return got.to_numpy(zero_copy_only=False), np.zeros(len(arr), bool)
    texts = _pylist(arr)
    ints = all(isinstance(t, str) and _INT_RE.match(t.strip()) for t in texts)
    out = np.zeros(len(texts), np.float64 if not ints else object)
    bad = np.zeros(len(texts), bool)
    for i, t in enumerate(texts):
        try:
            out[i] = int(t) if ints else float(t)
        except (TypeError, ValueError):
            bad[i] = True
    if ints:        # beyond int64: out of range, told apart by _epoch_ns
        big = np.array([abs(v) > _NS_MAX for v in out.tolist()], bool)
        vals = np.where(big, 0, out).astype(np.int64)
        if big.any():
            vals = vals.astype(np.float64)
            vals[big] = np.array([float(v) for v in out[big].tolist()])
        return vals, bad
    return out, bad


def _strptime_ns(arr, fmt: str, aware: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times in a strptime format -> (int64 ns, bad mask, out-of-range mask): pyarrow parses
    the column, Python's strptime the values pyarrow refused (and names them bad)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(arr)
    ns = np.zeros(n, np.int64)
    todo = np.ones(n, bool)
    try:
        got = pc.strptime(arr, format=fmt, unit="ns", error_is_null=True)
        if aware and got.type.tz is None:
            raise pa.ArrowInvalid("offsets not kept")
        valid = ~np.asarray(got.is_null().to_numpy(zero_copy_only=False), bool)
        ns[valid] = _arrow_i64(got.fill_null(0))[valid]
        todo = ~valid
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    bad = np.zeros(n, bool)
    oob = np.zeros(n, bool)
    if todo.any():
        texts = _pylist(arr)
        for i in np.flatnonzero(todo).tolist():
            try:
                t = _dt.datetime.strptime(texts[i], fmt)
            except (TypeError, ValueError):
                bad[i] = True
                continue
            if aware:
                if t.tzinfo is None:
                    bad[i] = True
                    continue
                t = t.astimezone(_dt.timezone.utc).replace(tzinfo=None)
            elif t.tzinfo is not None:
                t = t.replace(tzinfo=None)
            us = (t - _dt.datetime(1970, 1, 1)) // _dt.timedelta(microseconds=1)
            value = us * 1000
            if not -_NS_MAX <= value <= _NS_MAX:
                bad[i] = oob[i] = True
            else:
                ns[i] = value
    return ns, bad, oob


def _epoch_ns(nums: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epoch numbers (int or float) in ``unit`` -> int64 ns, a mask of bad values (not a
    finite number, or out of range) and a mask of those out of range."""
    factor = TS_FORMATS_EPOCH[unit]
    nums = np.asarray(nums)
    limit = _NS_MAX // factor
    if nums.dtype.kind in "iu":
        bad = (nums > limit) | (nums < -limit)
        ns = np.where(bad, 0, nums).astype(np.int64) * factor
        return ns, bad, bad.copy()
    nums = nums.astype(np.float64)
    finite = np.isfinite(nums)
    with np.errstate(invalid="ignore"):
        oob = finite & (np.abs(nums) > limit)
    bad = ~finite | oob
    ns = np.zeros(len(nums), np.int64)
    ok = ~bad
    if factor == 1:
        ns[ok] = nums[ok].astype(np.int64)
    else:
        # limit * factor can round past int64 in float: check the product, too.
        scaled = np.round(nums[ok] * factor)
        over = np.abs(scaled) >= 2.0**63
        if over.any():
            idx = np.flatnonzero(ok)[over]
            oob[idx] = bad[idx] = True
            ok[idx] = False
            scaled = scaled[~over]
        ns[ok] = scaled.astype(np.int64)
    return ns, bad, oob


def _localize(wall_ns: np.ndarray, bad: np.ndarray, zone
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Naive wall times in ``zone`` -> UTC ns; returns the UTC ns, a mask of nonexistent or
    ambiguous times and a mask of times whose UTC falls outside int64 ns (rows already
    ``bad`` are in neither).  zoneinfo through :func:`calendar.resolve_wall_ns`."""
    safe = np.where(bad, 0, wall_ns)
    utc, nonexistent, ambiguous, oob = resolve_wall_ns(safe, zone)
    out_bad = (nonexistent | ambiguous) & ~bad
    out_oob = oob & ~bad
    utc = utc.copy()
    utc[out_bad | out_oob | bad] = 0
    return utc, out_bad, out_oob


# --------------------------------------------------------------------------------------------
# Collecting rows into per-symbol bars
# --------------------------------------------------------------------------------------------


class _Problems(Exception):
    """Malformed rows of one chunk: (line, category, reason) sorted by line."""

    def __init__(self, items: list[tuple[int, str, str]]):
        super().__init__(items[0][2] if items else "")
        self.items = sorted(items)


class _Collector:
    """Gathers clean rows per symbol, file by file, and builds the result."""

    def __init__(self, opts: ReadOptions):
        self.opts = opts
        self.result = ReadResult()
        # symbol -> list of (source index, ts, cols, lines) pieces in reading order
        self._pieces: dict[str, list] = {}
        self._pending: list = []
        self._pending_rows = 0
        self._pending_dropped: Counter = Counter()
        self._pending_declared: set[str] = set()
        self._source_volume: list[bool] = []

    def begin(self, name: str, unit: str, has_volume: bool = True) -> int:
        """Start a source; ``has_volume`` False when it has no volume column (its rows then
        carry NaN volume)."""
        self.result.sources.append(name)
        self.result._units.append(unit)
        self._source_volume.append(bool(has_volume))
        self._pending = []
        self._pending_rows = 0
        self._pending_dropped = Counter()
        self._pending_declared = set()
        return len(self.result.sources) - 1

    def declare(self, symbol: str) -> None:
        """The current source holds ``symbol`` (even if it has no rows)."""
        self._pending_declared.add(symbol)

    def restart(self) -> None:
        """Forget what the current source gave so far (it is read again)."""
        self._pending = []
        self._pending_rows = 0
        self._pending_dropped = Counter()

    def commit(self) -> None:
        for symbol in self._pending_declared:
            self._pieces.setdefault(symbol, [])
        for symbol, piece in self._pending:
            self._pieces.setdefault(symbol, []).append(piece)
        self.result.rows += self._pending_rows
        self.result.dropped.update(self._pending_dropped)
        self._pending = []

    def handle(self, source: int, problems: list[tuple[int, str, str]]) -> np.ndarray | None:
        """Raise for the first problem (raise policy) or count them (drop)."""
        if not problems:
            return None
        if self.opts.on_bad == "raise":
            line, _category, reason = min(problems)
            raise ReadError(self.result.sources[source], line, reason,
                            self.result._units[source])
        for _line, category, _reason in problems:
            self._pending_dropped[category] += 1
        return None

    def add(self, source: int, symbols, ts: np.ndarray, cols: list[np.ndarray],
            lines: np.ndarray, rows_read: int) -> None:
        """Clean rows of one chunk (``symbols`` a str, or an array of str per row)."""
        self._pending_rows += rows_read
        if len(ts) == 0:
            return
        if isinstance(symbols, str):
            self._pending.append((symbols, (source, ts, cols, lines)))
            return
        if isinstance(symbols, tuple):      # (codes, uniques), e.g. from a dictionary column
            codes, uniques = symbols
            codes = np.asarray(codes, dtype=np.int64)
        else:
            index: dict = {}
            codes = np.fromiter((index.setdefault(s, len(index)) for s in
                                 np.asarray(symbols, dtype=object).tolist()), np.int64,
                                len(symbols))
            uniques = list(index)
        if len(uniques) > 1:
            present = np.bincount(codes, minlength=len(uniques)) > 0
            if not present.all():
                keep = np.flatnonzero(present)
                remap = np.full(len(uniques), -1, np.int64)
                remap[keep] = np.arange(len(keep))
                codes = remap[codes]
                uniques = [uniques[k] for k in keep.tolist()]
        if len(uniques) == 1:
            self._pending.append((_symbol(uniques[0], self.result.sources[source],
                                          lines[0], self.result._units[source]),
                                  (source, ts, cols, lines)))
            return
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        for k, name in enumerate(uniques):
            take = order[bounds[k]:bounds[k + 1]]
            symbol = _symbol(name, self.result.sources[source], lines[take[0]],
                             self.result._units[source])
            self._pending.append((symbol, (source, ts[take], [c[take] for c in cols],
                                           lines[take])))

    def finish(self) -> ReadResult:
        """Join each symbol's pieces (files in time order), validate, build Bars."""
        result = self.result
        iv = parse_interval(self.opts.interval) if self.opts.interval else None
        for symbol in sorted(self._pieces):
            pieces = self._pieces[symbol]
            if not pieces:
                result.bars[symbol] = Bars.empty(iv)
                result._source_of[symbol] = np.empty(0, np.int32)
                result._line_of[symbol] = np.empty(0, np.int64)
                continue
            by_source: dict[int, list] = {}
            for piece in pieces:
                by_source.setdefault(piece[0], []).append(piece)
            # Files of one symbol follow each other in time; within a file, reading order.
            groups = sorted(by_source.values(), key=lambda g: (int(g[0][1][0]), g[0][0]))
            ordered = [p for g in groups for p in g]
            with_volume = sorted({p[0] for p in ordered if self._source_volume[p[0]]})
            without = sorted({p[0] for p in ordered if not self._source_volume[p[0]]})
            if with_volume and without:
                raise ReadError(result.sources[without[0]], None,
                                f"{symbol} has no volume column here, while "
                                f"{result.sources[with_volume[0]]} gives it one; give its "
                                "files the same columns")
            has_volume = not without
            if len(ordered) == 1:           # one piece: its arrays as they are, no copy
                _k, ts, cols, lines = ordered[0]
                cols = list(cols)
                src = np.broadcast_to(np.int32(_k), (len(ts),))     # one source: no memory
            else:
                ts = np.concatenate([p[1] for p in ordered])
                cols = [np.concatenate([p[2][k] for p in ordered]) for k in range(5)]
                src = np.concatenate([np.full(len(p[1]), p[0], np.int32) for p in ordered])
                lines = np.concatenate([p[3] for p in ordered])
            result._source_of[symbol] = src
            result._line_of[symbol] = lines
            store_checked(result, symbol, ts, cols, iv, has_volume, self.opts.on_bad)
        return result


def _symbol(value, path: str, line, unit: str) -> str:
    text = str(value).strip()
    try:
        return check_symbol(text)
    except (TypeError, ValueError) as exc:
        raise ReadError(path, int(line), f"bad symbol: {exc}", unit) from None


def store_checked(result: ReadResult, symbol: str, ts: np.ndarray, cols: list[np.ndarray],
                  interval: Any, has_volume: bool, on_bad: str) -> None:
    """Check a symbol's bars (prices, volume, order) and store them in ``result``: the first
    bad one raises, naming its file and line, or (``on_bad="drop"``) bad ones are dropped and
    counted by reason.  ``result``'s source and line arrays of the symbol are set already."""
    faults = np.zeros(len(ts), np.uint8)
    empty = np.empty(0, np.int64)
    first, counts = _validation.validate_bars(
        ts, cols[0], cols[1], cols[2], cols[3], cols[4], empty, empty, 0, faults,
        on_bad == "raise", volume_optional=not has_volume)
    result.bars[symbol] = Bars(ts, *cols, interval=interval, validate=False,
                               has_volume=has_volume)
    if first < 0:
        return
    if on_bad == "raise":
        raise bar_error(result, symbol, first, int(faults[first]), ts, cols)
    for code, n in enumerate(counts):
        if n:
            result.dropped[FAULTS.get(code, "bad bar")] += int(n)
    result.keep(symbol, faults == 0)


def bar_error(result: ReadResult, symbol: str, row: int, fault: int, ts, cols) -> ReadError:
    """The error of a bad bar of ``symbol`` at ``row``, naming its file and line (and, for a
    bar out of order or repeated, where the bar before it is)."""
    """The message for a bar that breaks the contract, naming the row it clashes with."""
    t = _ts_str(int(ts[row]))
    if fault in (_FAULT_UNSORTED, _FAULT_DUPLICATE) and row > 0:
        prev_path, prev_line, prev_unit = result.where(symbol, row - 1)
        path, _line, _unit = result.where(symbol, row)
        other = f"{prev_unit} {prev_line}" if prev_path == path else \
            f"{prev_path}, {prev_unit} {prev_line}"
        if fault == _FAULT_DUPLICATE:
            reason = f"duplicate timestamp {t} of {symbol} (also on {other})"
        else:
            reason = (f"timestamp out of order: {t} of {symbol} comes after "
                      f"{_ts_str(int(ts[row - 1]))} ({other})")
    else:
        values = " ".join(f"{k}={float(cols[i][row])!r}" for i, k in enumerate(PRICE_COLUMNS))
        reason = f"{FAULTS.get(fault, 'bad bar')}: {symbol} at {t} ({values})"
    return result.error(symbol, row, reason)


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def _open_binary(path: Path):
    """A binary stream over a plain or compressed file."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def _text_encoding(encoding: str) -> str:
    """The codec to decode with: UTF-8 with an optional byte order mark for UTF-8."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


@dataclass(frozen=True)
class _CsvHead:
    """What the first lines of a CSV file say."""

    delimiter: str
    fields: list[str]           # the names of the fields (the header's, or columns=)
    first: list[str] | None     # the first data row (None when none is seen)
    first_line: int             # its line
    skip: int                   # lines before the data: 1 with a header line, else 0


def _sniff(path: Path, opts: ReadOptions) -> _CsvHead:
    """Delimiter, field names and first data row, from the first 64 KiB.

    Lines are decoded one by one, so that a byte that is not text is reported on its own
    line (by the careful reader when it is a data line)."""
    name = str(path)
    try:
        with _open_binary(path) as f:
            head = f.read(1 << 16)
            at_end = len(head) < (1 << 16) or not f.read(1)
    except _READ_ERRORS as exc:
        raise ReadError(name, None, f"cannot read: {_why(exc)}") from None
    raw = head.split(b"\n")
    if not at_end:
        raw = raw[:-1]              # a line cut at 64 KiB
    if raw and raw[-1] == b"":
        raw = raw[:-1]
    enc = _text_encoding(opts.encoding)

    def line_text(k: int) -> str | None:
        try:
            text = raw[k].decode(enc if k == 0 else opts.encoding if enc != "utf-8-sig"
                                 else "utf-8")
        except UnicodeDecodeError as exc:
            if k == 0 or (opts.header and k == 0):
                raise ReadError(name, k + 1, f"not {opts.encoding} text ({exc.reason} at "
                                f"byte {exc.start} of the line)") from None
            return None
        except LookupError:
            raise ValueError(f"unknown encoding {opts.encoding!r}") from None
        return text.rstrip("\r")

    names = opts.field_names
    first_text = line_text(0) if raw else None
    if first_text is None or (not first_text.strip() and (opts.header or names is None)):
        raise ReadError(name, 1 if raw else None,
                        "no header line (the file is empty)" if not raw else
                        "line 1 is empty; expected the header")
    if opts.delimiter is not None:
        delimiter = _DELIMITERS[opts.delimiter]
    else:
        counts = {d: first_text.count(d) for d in (",", ";", "\t", "|")}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter] == 0 and (names is None or len(names) > 1):
            what = "header" if opts.header else "first line"
            raise ReadError(name, 1, f"cannot tell the delimiter of the {what} "
                            f"{first_text[:60]!r}; give delimiter (--delimiter)")
    skip = 1 if opts.header else 0
    fields = list(names) if names is not None else \
        next(csv.reader([first_text], delimiter=delimiter))
    first, first_line = None, skip + 1
    for k in range(skip, len(raw)):
        text = line_text(k)
        if text is None:
            break
        if text.strip():
            first, first_line = next(csv.reader([text], delimiter=delimiter)), k + 1
            break
    return _CsvHead(delimiter, fields, first, first_line, skip)


def read_csv(path: str | os.PathLike, **options) -> ReadResult:
    """Read bars from one CSV file (plain, ``.gz``, ``.bz2`` or ``.xz``).

    Parameters
    ----------
    path : path-like
    **options
        The fields of :class:`ReadOptions` (``interval``, ``stamp``, ``tz``, ``ts_format``,
        ``ts_column``, ``date_column``, ``time_column``, ``symbol_column``, ``symbol``,
        ``columns`` (names of the fields, or renames of the price columns), ``header``,
        ``delimiter``, ``on_bad``, ``encoding``, ``chunk_rows``).  A file without a volume
        column gives bars without volume (NaN, ``Bars.has_volume`` False).

    Returns
    -------
    ReadResult

    Raises
    ------
    ReadError
        A malformed file or row, naming the file and line.
    """
    opts = ReadOptions(**options).checked()
    collector = _Collector(opts)
    _read_csv_into(Path(path), opts, collector)
    return collector.finish()


@dataclass
class _CsvPlan:
    """A CSV file sniffed, its layout found, its time format settled and (unless it must be
    read carefully) its columns parsed by pyarrow: everything that needs no collector, so
    that it can run on a worker thread while the previous file is collected."""

    path: Path
    head: _CsvHead
    layout: _Layout
    symbol: str | None
    parser: _TimeParser
    table: Any = None           # the pyarrow table of the fast path, None to read carefully


def _csv_plan(path: Path, opts: ReadOptions, split: bool = True) -> _CsvPlan:
    """Prepare a CSV file (``split``: cut a big plain file in a block per core)."""
    name = str(path)
    head = _sniff(path, opts)
    header, first, first_line = head.fields, head.first, head.first_line
    layout = _detect_layout(header, opts, name)
    symbol = None if layout.symbol else (opts.symbol or _stem(path))
    if symbol is not None:
        symbol = _symbol(symbol, name, None, "line") if opts.symbol is None else symbol
    parser = _TimeParser(opts)
    if first is not None and len(first) == len(header):
        idx = [header.index(c) for c in layout.time_columns]
        text = " ".join(first[i].strip() for i in idx)
        if text.strip():
            try:
                parser.settle(text)
            except ValueError as exc:
                raise ReadError(name, first_line, str(exc)) from None
    plan = _CsvPlan(path, head, layout, symbol, parser)
    if first is not None and len(first) != len(header):
        return plan             # the first row already differs from the header: careful
    try:
        plan.table = _csv_table(path, opts, head, layout, parser, split)
    except _Careful:
        pass
    return plan


def _read_csv_into(path: Path, opts: ReadOptions, collector: _Collector,
                   plan: _CsvPlan | None = None) -> None:
    plan = plan if plan is not None else _csv_plan(path, opts)
    name = str(path)
    head, layout, symbol, parser = plan.head, plan.layout, plan.symbol, plan.parser
    source = collector.begin(name, "line", layout.has_volume)
    collector.result._time_fields[source] = (
        "csv", head.delimiter, [head.fields.index(c) for c in layout.time_columns],
        opts.encoding)
    collector.result._parsers[source] = parser
    if symbol is not None:
        collector.declare(symbol)
    try:
        if plan.table is None:
            raise _Careful()
        _csv_fast(plan, collector, source)
    except _Careful:
        collector.restart()
        _csv_careful(path, opts, collector, source, head, layout, symbol, parser)
    collector.commit()


# Files above this size are not read ahead: several would be held in memory at once.
_AHEAD_MAX_BYTES = 1 << 27


def _read_ahead(files: list[Path], fn, alone):
    """``fn(path)`` of each file, in order, computed a few files ahead on worker threads
    (pyarrow reads without the GIL); a file's error is raised when its turn comes.  Without
    workers to spare, or with a big file among them, ``alone(path)`` one at a time."""
    workers = max(1, min(os.cpu_count() or 1, 8))
    big = any(p.stat().st_size > _AHEAD_MAX_BYTES for p in files)
    if len(files) < 2 or workers < 2 or big:
        for path in files:
            yield alone(path)
        return
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sessiondata-read")
    try:
        ahead: list[Any] = [pool.submit(fn, path) for path in files[:workers + 1]]
        for k in range(len(files)):
            got = ahead[k].result()
            if k + workers + 1 < len(files):
                ahead.append(pool.submit(fn, files[k + workers + 1]))
            ahead[k] = None     # the table goes with the result once collected
            yield got
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _csv_plans(files: list[Path], opts: ReadOptions):
    """The plans of several CSV files, in order, prepared ahead (one pyarrow block per file:
    a file per core); a single or big file is cut in a block per core instead."""
    return _read_ahead(files, lambda p: _csv_plan(p, opts, False),
                       lambda p: _csv_plan(p, opts, True))


def _parquet_tables(files: list[Path], opts: ReadOptions):
    """The needed columns of several Parquet files, read ahead; None for a file that is
    read where its turn comes (a big one, or one with anything wrong: its error is then
    raised there, naming the file)."""
    def read(path: Path):
        try:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path, memory_map=True)
            if pf.metadata.num_rows > 64 * opts.chunk_rows:
                return None
            layout = _detect_layout(list(pf.schema_arrow.names), opts, str(path))
            return pf.read(columns=list(dict.fromkeys(layout.needed)), use_threads=True)
        except Exception:  # noqa: BLE001 - read again where its turn comes, to say why
            return None

    return _read_ahead(files, read, lambda p: None)


def _why(exc: BaseException) -> str:
    """An exception as text for a message: its own words, else its type."""
    return str(exc).strip() or type(exc).__name__


class _Careful(Exception):
    """The fast reader met something irregular: read the file again, line by line."""


def _csv_table(path: Path, opts: ReadOptions, head: _CsvHead, layout: _Layout,
               parser: _TimeParser, split: bool):
    """The whole file through pyarrow's CSV parser, with the columns typed as the layout
    needs (prices float64, ISO 8601 times as timestamps).  Anything it cannot vouch for (a
    field count that differs, an empty or malformed field, a time of the other kind, a line
    that is not text) raises _Careful: the careful reader then names the line.  Line numbers
    assume one record per line: no blank line inside (pyarrow would refuse one) and no line
    break inside quotes."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = head.fields
    # Fields are named by position: the header's own names may be empty or repeated.
    ids = [f"f{i}" for i in range(len(header))]
    pos = {c: ids[header.index(c)] for c in layout.needed}
    types = {pos[c]: pa.float64() for c in layout.price_columns}
    if layout.ts is not None:
        if parser.mode == "iso":
            types[pos[layout.ts]] = pa.timestamp("ns", "UTC" if parser.aware else None)
        elif parser.mode in TS_FORMATS_EPOCH:
            types[pos[layout.ts]] = pa.int64()
        else:
            types[pos[layout.ts]] = pa.string()
    else:
        types[pos[str(layout.date)]] = pa.string()
        types[pos[str(layout.time)]] = pa.string()
    if layout.symbol is not None:
        types[pos[layout.symbol]] = pa.dictionary(pa.int32(), pa.string())
    enc = _text_encoding(opts.encoding)
    # pyarrow parses blocks in parallel: a single plain file is cut in about one block per
    # core; several files are parsed a file per core instead (see _csv_plans).
    block = 1 << 23
    if split and path.suffix.lower() in CSV_SUFFIXES:
        block = min(max(1 << 20, path.stat().st_size // (os.cpu_count() or 1) + 1), 1 << 26)
    elif path.suffix.lower() in CSV_SUFFIXES:
        block = min(max(block, path.stat().st_size + 1), 1 << 26)
    read_options = pacsv.ReadOptions(
        column_names=ids, skip_rows=head.skip, use_threads=True, block_size=block,
        encoding="utf8" if enc == "utf-8-sig" else opts.encoding)
    parse_options = pacsv.ParseOptions(delimiter=head.delimiter, newlines_in_values=False,
                                       ignore_empty_lines=False)
    convert_options = pacsv.ConvertOptions(
        column_types=types, include_columns=sorted(set(pos.values()), key=ids.index),
        null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
        check_utf8=True)
    try:
        with _open_binary(path) as raw:
            data = raw.read()
        if enc == "utf-8-sig" and not _valid_utf8(data):
            # pyarrow checks only the columns it converts: a byte that is not text in any
            # field goes to the careful reader, which names its line (as for any other).
            raise _Careful()
        table = pacsv.read_csv(pa.BufferReader(data), read_options=read_options,
                               parse_options=parse_options, convert_options=convert_options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError,
            UnicodeDecodeError):
        raise _Careful() from None
    except _READ_ERRORS as exc:
        # A damaged compressed file (bad CRC, corrupt deflate data ...) or a failing disk:
        # reading it again line by line would meet the same error.
        raise ReadError(str(path), None, f"cannot read: {_why(exc)}") from None
    if any(table.column(c).null_count for c in set(pos.values())):
        raise _Careful()
    return table.rename_columns([header[ids.index(c)] for c in table.column_names])


def _valid_utf8(data: bytes) -> bool:
    """Whether ``data`` is UTF-8 text, checked by pyarrow without a copy."""
    import pyarrow as pa

    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    blob = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1,
                                            [None, offsets, pa.py_buffer(data)])
    try:
        blob.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _csv_fast(plan: _CsvPlan, collector: _Collector, source: int) -> None:
    """Collect the rows of a file pyarrow parsed (raises _Careful for a bad time)."""
    import pyarrow as pa

    table, head, layout, symbol, parser = (plan.table, plan.head, plan.layout, plan.symbol,
                                           plan.parser)
    pos: dict[Any, str] = {c: c for c in layout.needed}
    n = table.num_rows
    if n == 0:
        return
    lines = np.arange(head.skip + 1, head.skip + 1 + n, dtype=np.int64)
    if layout.ts is not None and parser.mode == "iso":
        arr = table.column(pos[layout.ts])
        ints = _arrow_i64(arr)
        got = parser.parse_utc_ns(ints) if parser.aware else parser.parse_naive_ns(ints)
    elif layout.ts is not None and parser.mode in TS_FORMATS_EPOCH:
        got = parser.parse_epoch(_arrow_i64(table.column(pos[layout.ts])))
    else:
        import pyarrow.compute as pc

        if layout.ts is not None:
            text = pc.utf8_trim_whitespace(table.column(pos[layout.ts]))
        else:
            text = pc.binary_join_element_wise(
                pc.utf8_trim_whitespace(table.column(pos[layout.date])),
                pc.utf8_trim_whitespace(table.column(pos[layout.time])), " ")
        text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        got = parser.parse_text(text)
    ns, bad, _reasons = got
    if bad.any():
        raise _Careful()
    cols = [_arrow_f64(table.column(pos[layout.prices[c]])) if c in layout.prices
            else np.full(n, np.nan) for c in PRICE_COLUMNS]
    syms: Any
    if symbol is not None:
        syms = symbol
    else:
        col = table.column(pos[layout.symbol]).unify_dictionaries().combine_chunks() \
            if table.column(pos[layout.symbol]).num_chunks > 1 else \
            table.column(pos[layout.symbol]).chunk(0)
        syms = (col.indices.to_numpy(zero_copy_only=False).astype(np.int64),
                col.dictionary.to_pylist())
    collector.add(source, syms, ns, cols, lines, n)


def _arrow_f64(arr) -> np.ndarray:
    """A float64 arrow column without nulls as numpy (zero-copy for one chunk)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr.to_numpy(zero_copy_only=False)


def _strip(values: np.ndarray) -> np.ndarray:
    """Strip surrounding spaces of an object array of str (non-str values become "")."""
    return np.array([v.strip() if isinstance(v, str) else "" for v in values.tolist()],
                    dtype=object) if len(values) else np.asarray(values, dtype=object)


def _decoded_lines(f, encoding: str, bad_lines: list):
    """The lines of a binary stream, decoded one by one; a line that is not text in
    ``encoding`` is noted in ``bad_lines`` (line, reason) and given as an empty line."""
    enc = _text_encoding(encoding)
    for k, raw in enumerate(f, start=1):
        try:
            yield raw.decode(enc if k == 1 else ("utf-8" if enc == "utf-8-sig" else enc))
        except UnicodeDecodeError as exc:
            bad_lines.append((k, f"not {encoding} text ({exc.reason} at byte {exc.start} of "
                                 "the line)"))
            yield "\n"


def _csv_careful(path, opts, collector, source, head: _CsvHead, layout, symbol, parser):
    """Line by line, with exact line numbers and reasons (only for irregular files)."""
    name = str(path)
    header = head.fields
    width = len(header)
    pos = {c: header.index(c) for c in layout.needed}
    time_idx = [pos[c] for c in layout.time_columns]
    price_idx = [pos[layout.prices[c]] if c in layout.prices else None for c in PRICE_COLUMNS]
    sym_idx = pos[layout.symbol] if layout.symbol else None
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[tuple[int, str, str]] = []
    not_text: list[tuple[int, str]] = []
    line = head.skip
    try:
        with _open_binary(path) as f:
            reader = csv.reader(_decoded_lines(f, opts.encoding, not_text),
                                delimiter=head.delimiter)
            for _ in range(head.skip):
                next(reader, None)
            for row in reader:
                line = reader.line_num
                if not_text:
                    problems.extend((k, "not text", why) for k, why in not_text)
                    not_text.clear()
                if not row:
                    continue
                if len(row) != width:
                    hint = " (a truncated line?)" if len(row) < width else ""
                    what = "the header has" if opts.header and opts.field_names is None \
                        else "columns= names"
                    problems.append((line, "wrong field count",
                                     f"{len(row)} fields, {what} {width}{hint}"))
                    continue
                rows.append(row)
                lines.append(line)
                if len(rows) >= _CAREFUL_CHUNK:
                    _careful_chunk(collector, source, rows, lines, problems, time_idx,
                                   price_idx, sym_idx, header, symbol, parser, name)
                    rows, lines, problems = [], [], []
            problems.extend((k, "not text", why) for k, why in not_text)
    except csv.Error as exc:
        problems.append((line + 1, "unreadable line", f"cannot parse the line: {exc}"))
    except _READ_ERRORS as exc:
        raise ReadError(name, None, f"cannot read: {_why(exc)}") from None
    _careful_chunk(collector, source, rows, lines, problems, time_idx, price_idx, sym_idx,
                   header, symbol, parser, name)


def _careful_chunk(collector, source, rows, lines, problems, time_idx, price_idx, sym_idx,
                   header, symbol, parser, name):
    n = len(rows)
    ok = np.ones(n, bool)
    cols = [np.empty(n, np.float64) for _ in PRICE_COLUMNS]
    text = np.empty(n, dtype=object)
    syms = np.empty(n, dtype=object) if sym_idx is not None else None
    for i, row in enumerate(rows):
        issue = None
        parts = [row[k].strip() for k in time_idx]
        for k, part in zip(time_idx, parts):
            if not part:
                issue = ("missing field", f"missing field {header[k]!r} (empty)")
                break
        text[i] = " ".join(parts)
        if issue is None and syms is not None:
            s = row[sym_idx].strip()
            if not s:
                issue = ("missing field", f"missing field {header[sym_idx]!r} (empty)")
            syms[i] = s
        if issue is None:
            for j, k in enumerate(price_idx):
                if k is None:           # no volume column
                    cols[j][i] = np.nan
                    continue
                raw = row[k].strip()
                if not raw:
                    issue = ("missing field", f"missing field {header[k]!r} (empty)")
                    break
                try:
                    cols[j][i] = float(raw)
                except ValueError:
                    issue = ("bad number", f"bad number {raw!r} in column {header[k]!r}")
                    break
        if issue is not None:
            ok[i] = False
            problems.append((lines[i], *issue))
    line_arr = np.asarray(lines, dtype=np.int64)
    idx = np.flatnonzero(ok)
    ns = np.zeros(n, np.int64)
    if len(idx):
        try:
            sub_ns, bad, reasons = parser.parse_text(text[idx])
        except ValueError as exc:
            raise ReadError(name, int(line_arr[idx[0]]), str(exc)) from None
        ns[idx] = sub_ns
        for i, (category, reason) in zip(idx[bad].tolist(), reasons):
            ok[i] = False
            problems.append((int(line_arr[i]), category, reason))
    collector.handle(source, problems)
    keep = np.flatnonzero(ok)
    collector.add(source, symbol if symbol is not None else syms[keep], ns[keep],
                  [c[keep] for c in cols], line_arr[keep], n)


# --------------------------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------------------------


def read_parquet(path: str | os.PathLike, **options) -> ReadResult:
    """Read bars from a Parquet file through pyarrow, a row group batch at a time.

    Options are those of :func:`read_csv` (``delimiter`` and ``encoding`` do not apply).
    The timestamp column may be a timestamp (with or without a time zone), an integer epoch
    or text; the price columns must be numeric.  Errors name the file and the row (1 is the
    first row of data).
    """
    opts = ReadOptions(**options).checked()
    collector = _Collector(opts)
    _read_parquet_into(Path(path), opts, collector)
    return collector.finish()


def _read_parquet_into(path: Path, opts: ReadOptions, collector: _Collector,
                       table: Any = None) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the environment
        raise ReadError(str(path), None, "reading Parquet needs pyarrow, a dependency of "
                        "sessiondata: pip install --force-reinstall sessiondata") from None
    name = str(path)
    try:
        pf = pq.ParquetFile(path, memory_map=True)
    except (OSError, pa.ArrowException) as exc:
        raise ReadError(name, None, f"not a readable Parquet file: {exc}") from None
    try:
        _parquet_into(pf, path, opts, collector, table)
    except ReadError:
        raise
    except (pa.ArrowException, *_READ_ERRORS) as exc:
        raise ReadError(name, None, f"cannot read: {_why(exc)}") from None
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as exc:
        # Whatever goes wrong inside names the file (issue 11: every error while reading a
        # Parquet file does).
        raise ReadError(name, None, _why(exc)) from None


def _parquet_into(pf, path: Path, opts: ReadOptions, collector: _Collector,
                  prefetched: Any = None) -> None:
    import pyarrow as pa

    name = str(path)
    schema = pf.schema_arrow
    layout = _detect_layout(list(schema.names), opts, name)
    for role in PRICE_COLUMNS:
        if role not in layout.prices:
            continue
        col = layout.prices[role]
        typ = schema.field(col).type
        if not (pa.types.is_integer(typ) or pa.types.is_floating(typ)
                or pa.types.is_decimal(typ)):
            raise ReadError(name, None, f"wrong schema: column {col!r} is {typ}, expected a "
                            "number")
    for col in layout.time_columns:
        typ = schema.field(col).type
        if not (pa.types.is_timestamp(typ) or pa.types.is_integer(typ)
                or pa.types.is_floating(typ) or pa.types.is_string(typ)
                or pa.types.is_large_string(typ) or pa.types.is_date(typ)
                or pa.types.is_time(typ)):
            raise ReadError(name, None, f"wrong schema: column {col!r} is {typ}, expected a "
                            "timestamp, an epoch number or text")
    if layout.symbol is not None:
        typ = schema.field(layout.symbol).type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)
                or pa.types.is_dictionary(typ)):
            raise ReadError(name, None, f"wrong schema: column {layout.symbol!r} is {typ}, "
                            "expected text")
    symbol = None if layout.symbol else (opts.symbol or _symbol(_stem(path), name, None, "row"))
    parser = _TimeParser(opts)
    source = collector.begin(name, "row", layout.has_volume)
    collector.result._time_fields[source] = ("parquet", tuple(layout.time_columns))
    collector.result._parsers[source] = parser
    if symbol is not None:
        collector.declare(symbol)
    # Column by column, all row groups at once (pyarrow reads them on its threads); a
    # float64, int64 or timestamp column without nulls in one chunk reaches NumPy without a
    # copy.  Very large files go in slices of row groups, to bound the memory.
    needed = list(dict.fromkeys(layout.needed))
    groups = list(range(pf.num_row_groups))
    offset = 0
    step = max(1, len(groups))
    if pf.metadata.num_rows > 4 * opts.chunk_rows * 16:
        per_group = max(1, pf.metadata.num_rows // max(1, len(groups)))
        step = max(1, (16 * opts.chunk_rows) // per_group)
    for k in range(0, max(1, len(groups)), step):
        part = groups[k:k + step]
        if prefetched is not None and step >= len(groups):
            table = prefetched          # read ahead on a worker thread
        elif part and step < len(groups):
            table = pf.read_row_groups(part, columns=needed, use_threads=True)
        else:
            table = pf.read(columns=needed, use_threads=True)
        n = table.num_rows
        rows = np.arange(offset + 1, offset + n + 1, dtype=np.int64)
        offset += n
        columns = {c: _one_chunk(table.column(c)) for c in needed}
        _arrow_chunk(columns, rows, layout, symbol, parser, collector, source, name)
    collector.commit()


def _one_chunk(arr):
    """A chunked arrow column as one array (no copy when it is one chunk already)."""
    if hasattr(arr, "num_chunks"):
        if arr.num_chunks == 1:
            return arr.chunk(0)
        return arr.combine_chunks()
    return arr


def _arrow_chunk(columns, rows, layout, symbol, parser, collector, source, name):
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(rows)
    ok = np.ones(n, bool)
    problems: list[tuple[int, str, str]] = []
    ns = np.zeros(n, np.int64)

    def missing(arr, col):
        if arr.null_count:
            nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False))
            for i in np.flatnonzero(nulls & ok).tolist():
                problems.append((int(rows[i]), "missing field", f"missing value in {col!r}"))
            ok[nulls] = False

    cols = []
    for role in PRICE_COLUMNS:
        if role not in layout.prices:       # no volume column
            cols.append(np.full(n, np.nan))
            continue
        col = layout.prices[role]
        arr = columns[col]
        missing(arr, col)
        if arr.type != pa.float64():
            arr = pc.cast(arr, pa.float64())
        if arr.null_count:
            arr = arr.fill_null(0.0)
        cols.append(arr.to_numpy(zero_copy_only=False))
    for col in layout.time_columns:
        missing(columns[col], col)
    if layout.ts is not None:
        arr = columns[layout.ts]
        typ = arr.type
        if pa.types.is_timestamp(typ) and typ.unit == "ns" and not arr.null_count:
            vals = _arrow_i64(arr)            # zero-copy
            got = parser.parse_utc_ns(vals) if typ.tz else parser.parse_naive_ns(vals)
        elif pa.types.is_timestamp(typ):
            # The stored integers in their own unit, scaled with a range check (a cast to
            # ns would fail for the whole batch without naming the row).
            raw = _arrow_ints(pc.cast(arr, pa.int64()))
            vals, oob = _scale_ns(raw, _UNIT_NS[typ.unit])
            shown = raw.view(f"datetime64[{typ.unit}]")
            got = (parser.parse_utc_ns(vals, oob, shown) if typ.tz
                   else parser.parse_naive_ns(vals, oob, shown))
        elif pa.types.is_integer(typ) or pa.types.is_floating(typ):
            vals = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False))
            got = parser.parse_epoch(vals)
        elif pa.types.is_date(typ):
            days = _arrow_ints(pc.cast(pc.cast(arr, pa.date32()), pa.int32()))
            vals, oob = _scale_ns(days, _DAY_NS)
            got = parser.parse_naive_ns(vals, oob, days.view("datetime64[D]"))
        else:
            text = np.asarray(arr.fill_null("").to_numpy(zero_copy_only=False), dtype=object)
            text = _strip(text)
            got = _parse_text_rows(parser, text, ok, rows, problems, name)
    else:
        d, t = columns[layout.date], columns[layout.time]
        if pa.types.is_date(d.type) and pa.types.is_time(t.type):
            days = _arrow_ints(pc.cast(pc.cast(d, pa.date32()), pa.int32()))
            tod = _arrow_ints(pc.cast(pc.cast(t, pa.time64("ns")), pa.int64()))
            day_ns, oob = _scale_ns(days, _DAY_NS)
            oob |= day_ns > _NS_MAX - tod            # 0 <= tod < one day
            vals = np.where(oob, 0, day_ns + np.where(oob, 0, tod))
            got = parser.parse_naive_ns(vals, oob, days.view("datetime64[D]"))
        else:
            dt = np.asarray(pc.cast(d, pa.string()).fill_null("").to_numpy(
                zero_copy_only=False), dtype=object)
            tm = np.asarray(pc.cast(t, pa.string()).fill_null("").to_numpy(
                zero_copy_only=False), dtype=object)
            text = _strip(np.asarray([f"{a} {b}" for a, b in zip(dt, tm)], dtype=object))
            got = _parse_text_rows(parser, text, ok, rows, problems, name)
    ns, bad, reasons = got
    if bad.any():
        for i, (category, reason) in zip(np.flatnonzero(bad & ok).tolist(),
                                         _reasons_for(bad, ok, reasons)):
            problems.append((int(rows[i]), category, reason))
        ok &= ~bad
    syms = symbol
    if layout.symbol is not None:
        arr = columns[layout.symbol]
        if pa.types.is_dictionary(arr.type):
            arr = pc.cast(arr, pa.string())
        missing(arr, layout.symbol)
        # One check per distinct symbol: the column as codes into its distinct values.
        enc = pc.dictionary_encode(arr.fill_null("") if arr.null_count else arr)
        names = [v.strip() for v in enc.dictionary.to_pylist()]
        codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        blank = np.array([not v for v in names], bool)
        if blank.any():
            empty = blank[codes] & ok
            for i in np.flatnonzero(empty).tolist():
                problems.append((int(rows[i]), "missing field",
                                 f"missing value in {layout.symbol!r}"))
            ok &= ~empty
        syms = (codes, names)
    collector.handle(source, problems)
    if ok.all():
        collector.add(source, syms, ns, cols, rows, n)
        return
    keep = np.flatnonzero(ok)
    collector.add(source, syms if isinstance(syms, str) else (syms[0][keep], syms[1]),
                  ns[keep], [c[keep] for c in cols], rows[keep], n)


def _arrow_ints(arr) -> np.ndarray:
    """An arrow integer array as int64 numpy, nulls as 0 (they are reported elsewhere)."""
    return np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False)).astype(np.int64,
                                                                             copy=False)


def _reasons_for(bad, ok, reasons):
    """The (category, reason) of the rows that are bad and were otherwise ok (reasons follow
    bad)."""
    idx = np.flatnonzero(bad)
    keep = ok[idx]
    return [r for r, k in zip(reasons, keep.tolist()) if k]


def _parse_text_rows(parser, text, ok, rows, problems, name):
    """Parse time strings where present; empty ones were reported as missing already."""
    n = len(text)
    present = np.array([bool(s) for s in text], bool) if n else np.zeros(0, bool)
    ns = np.zeros(n, np.int64)
    bad = np.zeros(n, bool)
    reasons_all: list[tuple[str, str]] = []
    idx = np.flatnonzero(present)
    if len(idx):
        try:
            sub, sub_bad, sub_reasons = parser.parse_text(text[idx])
        except ValueError as exc:
            raise ReadError(name, int(rows[idx[0]]), str(exc), "row") from None
        ns[idx] = sub
        bad[idx] = sub_bad
        reasons_all = sub_reasons
    return ns, bad, reasons_all


# --------------------------------------------------------------------------------------------
# DataFrames
# --------------------------------------------------------------------------------------------


def read_frame(df, **options) -> ReadResult:
    """Read bars from a pandas or polars DataFrame.

    Columns are found as for CSV files.  A pandas frame without a timestamp column may carry
    its times in a DatetimeIndex.  Timestamps may be datetimes (naive ones are in ``tz``),
    epoch numbers or text.  Without a symbol column the symbol is ``symbol=`` (required).
    Errors name the row (the position, from 0).
    """
    opts = ReadOptions(**options).checked()
    collector = _Collector(opts)
    _read_frame_into(df, opts, collector)
    return collector.finish()


def _read_frame_into(df, opts: ReadOptions, collector: _Collector, name="<DataFrame>"):
    columns, index_times = _frame_columns(df)
    names = list(columns)
    try:
        layout = _detect_layout(names, opts, name)
    except ReadError:
        if index_times is None or opts.ts_column or opts.date_column:
            raise
        columns = dict(columns)
        columns["__index__"] = index_times
        layout = _detect_layout(names + ["__index__"],
                                replace(opts, ts_column="__index__"), name)
    if layout.symbol is None and opts.symbol is None:
        raise ReadError(name, None, "the frame has no symbol column; give symbol=")
    symbol = opts.symbol if layout.symbol is None else None
    parser = _TimeParser(opts)
    source = collector.begin(name, "row", layout.has_volume)
    collector.result._parsers[source] = parser
    if symbol is not None:
        collector.declare(symbol)
    n = len(columns[layout.prices["open"]])
    rows = np.arange(n, dtype=np.int64)
    ok = np.ones(n, bool)
    problems: list[tuple[int, str, str]] = []
    cols = []
    for role in PRICE_COLUMNS:
        if role not in layout.prices:       # no volume column
            cols.append(np.full(n, np.nan))
            continue
        col = layout.prices[role]
        values, bad, raw = _frame_numbers(columns[col], col, name)
        for i in np.flatnonzero(bad & ok).tolist():
            problems.append((i, "bad number", f"bad number {raw[i]!r} in column {col!r}"))
        ok &= ~bad
        cols.append(values)
    if layout.ts is not None:
        got = _frame_times(columns[layout.ts], parser, ok, rows, problems, name)
    else:
        d = list(columns[str(layout.date)])
        t = list(columns[str(layout.time)])
        text = _strip(np.array([f"{a} {b}" for a, b in zip(d, t)], dtype=object))
        got = _parse_text_rows(parser, text, ok, rows, problems, name)
    ns, bad, reasons = got
    for i, (category, reason) in zip(np.flatnonzero(bad & ok).tolist(),
                                     _reasons_for(bad, ok, reasons)):
        problems.append((i, category, reason))
    ok &= ~bad
    syms: Any = symbol
    if layout.symbol is not None:
        texts = ["" if _is_missing(v) else str(v).strip() for v in list(columns[layout.symbol])]
        syms = np.array(texts, dtype=object)
        empty = np.array([not s for s in texts], dtype=np.bool_) & ok
        for i in np.flatnonzero(empty).tolist():
            problems.append((i, "missing field", f"missing value in {layout.symbol!r}"))
        ok &= ~empty
    collector.handle(source, problems)
    keep = np.flatnonzero(ok)
    collector.add(source, syms if isinstance(syms, str) else syms[keep], ns[keep],
                  [c[keep] for c in cols], rows[keep], n)
    collector.commit()


def _frame_columns(df) -> tuple[dict[str, Any], Any]:
    """Columns of a pandas or polars frame as array-likes, and a pandas DatetimeIndex."""
    module = type(df).__module__
    if module.startswith("polars"):
        return {str(c): df[c] for c in df.columns}, None
    if hasattr(df, "columns") and hasattr(df, "index"):
        index = df.index
        times = index if str(getattr(index, "dtype", "")).startswith("datetime64") else None
        return {str(c): df[c] for c in df.columns}, times
    raise TypeError(f"expected a pandas or polars DataFrame, got {type(df).__name__}")


# Values that are not real numbers of the data contract, though pandas would take them as
# numbers (True as 1.0, a complex number by its real part, a datetime as its nanoseconds).
_NOT_REAL = (bool, np.bool_, complex, np.complexfloating, _dt.date, _dt.time, _dt.timedelta,
             np.datetime64, np.timedelta64)


def _frame_numbers(values, col: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A numeric column as float64, a mask of values that are not numbers, and the values
    (to name a bad one).  A column of bools, complex numbers or datetimes is refused whole:
    like Bars.from_arrays, the readers take only real numbers."""
    dtype = getattr(values, "dtype", None)
    if type(values).__module__.startswith("polars"):
        if str(dtype).startswith(("Boolean", "Date", "Time", "Duration")):  # and Datetime
            raise ReadError(name, None, f"column {col!r} is {dtype}, expected real numbers "
                            "(int or float)")
        values = values.to_numpy()
    elif dtype is not None and getattr(dtype, "kind", None) in ("b", "c", "M", "m"):
        # pandas' nullable boolean, complex and datetime dtypes (with or without NA)
        raise ReadError(name, None, f"column {col!r} is {dtype}, expected real numbers "
                        "(int or float)")
    arr = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64), np.zeros(len(arr), bool), arr
    if arr.dtype.kind in "bcMm":
        raise ReadError(name, None, f"column {col!r} is {arr.dtype}, expected real numbers "
                        "(int or float)")
    obj = np.asarray(arr, dtype=object)
    nums = np.full(len(obj), np.nan)
    bad = np.zeros(len(obj), bool)
    for i, v in enumerate(obj.tolist()):
        if _is_missing(v):
            continue                    # NaN: validation names it as a non-finite price
        if isinstance(v, _NOT_REAL):
            bad[i] = True
            continue
        try:
            nums[i] = float(v.strip() if isinstance(v, str) else v)
        except (TypeError, ValueError, OverflowError):
            bad[i] = True
            continue
        if nums[i] != nums[i] and not (isinstance(v, str) and v.strip().lower() == "nan"):
            bad[i] = isinstance(v, str)
    return nums, bad, obj


def _is_missing(v) -> bool:
    """None, NaN, and pandas' NaT and NA (without importing pandas)."""
    if v is None:
        return True
    if isinstance(v, float) and v != v:
        return True
    return type(v).__name__ in ("NaTType", "NAType")


def _frame_times(values, parser: _TimeParser, ok, rows, problems, name):
    """Times of a frame column: datetimes, epoch numbers or text."""
    if type(values).__module__.startswith("polars"):
        import polars as pl

        dtype = values.dtype
        if isinstance(dtype, pl.Datetime):
            nulls = values.is_null().to_numpy()
            # The stored integers in their own unit, scaled with a range check (polars'
            # cast_time_unit("ns") raises for the whole column without naming the row).
            raw = np.asarray(values.cast(pl.Int64).fill_null(0).to_numpy(), dtype=np.int64)
            unit = dtype.time_unit or "us"
            ints, oob = _scale_ns(raw, _UNIT_NS[unit])
            for i in np.flatnonzero(nulls & ok).tolist():
                problems.append((i, "missing field", "missing time"))
            ok &= ~nulls
            oob &= ~nulls
            shown = raw.view(f"datetime64[{unit}]")
            return (parser.parse_utc_ns(ints, oob, shown) if dtype.time_zone
                    else parser.parse_naive_ns(ints, oob, shown))
        values = values.to_numpy()
    if type(values).__module__.startswith("pandas"):
        import pandas as pd
    if type(values).__module__.startswith("pandas") and isinstance(values, (pd.Series, pd.Index)):
        dtype = values.dtype
        if isinstance(dtype, pd.DatetimeTZDtype) or str(dtype).startswith("datetime64"):
            nulls = np.asarray(values.isna())
            for i in np.flatnonzero(nulls & ok).tolist():
                problems.append((i, "missing field", "missing time"))
            ok &= ~nulls
            series = pd.Series(values)
            aware = series.dt.tz is not None
            if aware:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            # In its own unit (pandas 3 makes microseconds of most inputs), converted with a
            # range check: a cast to ns would wrap times beyond 2262 into another century.
            arr = series.to_numpy()
            ints, _nat, oob = _dt64_ns(arr)
            return (parser.parse_utc_ns(ints, oob, arr) if aware
                    else parser.parse_naive_ns(ints, oob, arr))
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        ints, nulls, oob = _dt64_ns(arr)
        for i in np.flatnonzero(nulls & ok).tolist():
            problems.append((i, "missing field", "missing time"))
        ok &= ~nulls
        return parser.parse_naive_ns(ints, oob, arr)
    if arr.dtype.kind in "iuf":
        if arr.dtype.kind == "f":
            nulls = np.isnan(arr)
            for i in np.flatnonzero(nulls & ok).tolist():
                problems.append((i, "missing field", "missing time"))
            ok &= ~nulls
        try:
            return parser.parse_epoch(arr)
        except ValueError as exc:
            raise ReadError(name, None, str(exc), "row") from None
    text = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                     for v in arr], dtype=object)
    text = _strip(text)
    empty = np.array([not s for s in text], bool) & ok
    for i in np.flatnonzero(empty).tolist():
        problems.append((i, "missing field", "missing time"))
    ok &= ~empty
    return _parse_text_rows(parser, text, ok, rows, problems, name)


# --------------------------------------------------------------------------------------------
# Files and folders
# --------------------------------------------------------------------------------------------


def _stem(path: Path) -> str:
    """The file name without its data and compression suffixes."""
    name = path.name
    lower = name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            name, lower = name[: -len(suffix)], lower[: -len(suffix)]
            break
    for suffix in DATA_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _kind(path: Path) -> str | None:
    lower = path.name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lower.endswith(suffix):
            lower = lower[: -len(suffix)]
            if lower.endswith(PARQUET_SUFFIXES):
                return None
            break
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def data_files(folder: str | os.PathLike, on_bad: str = "raise",
               unreadable: list | None = None) -> list[Path]:
    """The data files of a folder (not its subfolders), sorted: CSV (``.csv``, ``.txt``,
    ``.tsv``, optionally ``.gz``/``.bz2``/``.xz``) and Parquet; hidden files are skipped.

    An entry named like a data file that cannot be read (a broken symbolic link, a link
    loop, a file without read permission, something that is not a regular file) is never
    skipped silently: with ``on_bad="raise"`` it is a ReadError naming it; with ``"drop"``
    a warning names it and ``(path, why)`` is appended to ``unreadable`` (when given).
    """
    if on_bad not in POLICIES:
        raise ValueError(f"on_bad must be 'raise' or 'drop', got {on_bad!r}")
    folder = Path(folder)
    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or _kind(p) is None:
            continue
        why = _unreadable(p)
        if why is None:
            found.append(p)
        elif why == "":
            continue                        # a folder named like a data file
        elif on_bad == "raise":
            raise ReadError(str(p), None, f"cannot read: {why} (give --on-bad drop to skip "
                            "it with a warning)")
        else:
            warnings.warn(f"{p}: skipped, cannot read: {why}", ReadWarning, stacklevel=2)
            if unreadable is not None:
                unreadable.append((str(p), why))
    return found


class ReadWarning(UserWarning):
    """A file of a data folder was skipped under ``on_bad="drop"`` (the message names it)."""


def _unreadable(p: Path) -> str | None:
    """Why a folder entry cannot be read as a file (None when it can; "" for a folder)."""
    try:
        st = p.stat()
    except OSError as exc:
        if p.is_symlink():
            if exc.errno == errno.ELOOP:
                return "a symbolic link loop"
            try:
                target = os.readlink(p)
            except OSError:
                target = "?"
            return f"a broken symbolic link (to {target})"
        return _why(exc)
    if stat.S_ISDIR(st.st_mode):
        return ""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        return exc.strerror.lower() if exc.strerror else _why(exc)
    return None


def read_bars(paths: str | os.PathLike | Iterable[str | os.PathLike], *,
              format: str | None = None, **options) -> ReadResult:
    """Read a file, a folder of files, or a list of either; one result over all of them.

    A symbol found in several files is joined in time order; overlapping files are an error
    (a duplicate or out-of-order timestamp, naming the line).

    Parameters
    ----------
    paths : path-like or iterable of path-like
    format : str, optional
        ``None``, ``"csv"`` or ``"parquet"``: CSV and Parquet files by their suffix.
        ``"lean"``, ``"databento"``, ``"binance"``: vendor files, read by
        :mod:`sessiondata.formats` (see there).
    **options
        The fields of :class:`ReadOptions`; ``symbol`` only with a single file.
    """
    if format is not None and str(format).lower() not in ("csv", "parquet"):
        from . import formats

        return formats.read_format(paths, format, **options)
    opts = ReadOptions(**options).checked()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    unreadable: list[tuple[str, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = data_files(p, opts.on_bad, unreadable)
            if not found and not unreadable:
                raise ReadError(str(p), None, "no data files in the folder (looked for "
                                f"{', '.join(DATA_SUFFIXES)}, optionally compressed)")
            files.extend(found)
        elif p.exists():
            if _kind(p) is None:
                raise ReadError(str(p), None, "not a data file (expected "
                                f"{', '.join(DATA_SUFFIXES)}, optionally compressed)")
            files.append(p)
        else:
            raise ReadError(str(p), None, "no such file or folder")
    if opts.symbol is not None and len(files) > 1:
        raise ValueError("symbol= names the symbol of a single file; these are "
                         f"{len(files)} files")
    collector = _Collector(opts)
    plans = _csv_plans([p for p in files if _kind(p) != "parquet"], opts)
    tables = _parquet_tables([p for p in files if _kind(p) == "parquet"], opts)
    try:
        for path in files:
            if _kind(path) == "parquet":
                _read_parquet_into(path, opts, collector, next(tables))
            else:
                _read_csv_into(path, opts, collector, next(plans))
    finally:
        plans.close()           # stops the workers when a file's error ends the read
        tables.close()
    result = collector.finish()
    if unreadable:
        result.unreadable.extend(unreadable)
        result.dropped["unreadable file"] += len(unreadable)
    return result
