"""The result of a read (:class:`ReadResult`) and the collector that builds it: clean rows
gathered per symbol, joined in time order, validated once (prices, volume, order)."""

from __future__ import annotations

import csv
import datetime as _dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._core import validation as _validation
from ..bars import FAULTS, PRICE_COLUMNS, Bars
from ..calendar import WindowSpan, extended_hours
from ..intervals import parse_interval
from ..symbols import check_symbol

from .base import (
    _FAULT_DUPLICATE, _FAULT_MISALIGNED, _FAULT_OUTSIDE, _FAULT_UNSORTED,
    _open_binary, _text_encoding, POLICIES, ReadError, ReadOptions,
)


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
    dropped_rows : dict[str, tuple[numpy.ndarray, numpy.ndarray]]
        Set by :meth:`check_sessions` under ``on_bad="drop"``: per symbol, the open time
        (int64 ns UTC) and the fault code (``bars.FAULTS``) of each bar it dropped (also
        counted in :attr:`dropped`), so that a run counts them in their sessions.
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
    dropped_rows: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    # Per source index: how to find a row's time as written (for messages), and the time
    # parser (whether the times were naive).
    _time_fields: dict[int, tuple] = field(default_factory=dict, repr=False)
    _parsers: dict[int, Any] = field(default_factory=dict, repr=False)
    # Per symbol, the Bars whose prices, volume and order ``store_checked`` checked (sorted,
    # strictly increasing): the session check does not check them again.
    _validated: dict[str, Bars] = field(default_factory=dict, repr=False)
    # Per symbol, the Bars as ``store_checked`` stored them and their spacing
    # (``validation.step_counts`` of their times): the plausibility check reuses it.
    _steps: dict[str, tuple[Bars, tuple[int, int, int, int]]] = field(default_factory=dict,
                                                                      repr=False)

    @property
    def symbols(self) -> list[str]:
        return list(self.bars)

    def step_counts(self, symbol: str) -> tuple[int, int, int, int] | None:
        """``validation.step_counts`` of the times of ``symbol``'s bars, when the reader
        took it of these very bars (None otherwise)."""
        held = self._steps.get(symbol)
        return held[1] if held is not None and held[0] is self.bars.get(symbol) else None

    @property
    def naive(self) -> bool:
        """Whether the times of any source were naive: wall-clock times without an offset,
        read in the ``tz`` option's zone (:attr:`tz`).  False for times with an offset,
        epoch numbers, zoned Parquet timestamps and the vendor formats (whose readers
        settle the zone themselves)."""
        return any(getattr(p, "naive_seen", False) for p in self._parsers.values())

    @property
    def tz(self) -> str | None:
        """The zone the naive times were read in (the ``tz`` option), or None when no
        time was naive."""
        for p in self._parsers.values():
            if getattr(p, "naive_seen", False):
                return str(p.zone.key)
        return None

    @property
    def stamp(self) -> str:
        """``"end"`` when the times were read as bar ends (``stamp="end"``: shifted back
        by the base interval), else ``"start"``."""
        return "end" if any(getattr(p, "shift", 0) for p in self._parsers.values()) \
            else "start"

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

    def note_dropped(self, symbol: str, ts: np.ndarray, codes: np.ndarray) -> None:
        """Record the open times and fault codes of bars of ``symbol`` dropped under
        ``on_bad="drop"`` (:attr:`dropped_rows`; the caller counts them in :attr:`dropped`)."""
        if symbol in self.dropped_rows:
            held_ts, held_codes = self.dropped_rows[symbol]
            ts, codes = np.concatenate([held_ts, ts]), np.concatenate([held_codes, codes])
        self.dropped_rows[symbol] = (np.asarray(ts, np.int64), np.asarray(codes, np.uint8))

    def keep(self, symbol: str, mask: np.ndarray) -> None:
        """Keep only the bars of ``symbol`` where ``mask`` is true."""
        bars = self.bars[symbol]
        cols = {name: getattr(bars, name)[mask] for name in ("ts",) + PRICE_COLUMNS}
        self.bars[symbol] = Bars(**cols, interval=bars.interval, validate=False,
                                 has_volume=bars.has_volume)
        if self._validated.get(symbol) is bars:   # a subset of checked bars is checked
            self._validated[symbol] = self.bars[symbol]
        if symbol in self._source_of:
            self._source_of[symbol] = self._source_of[symbol][mask]
            self._line_of[symbol] = self._line_of[symbol][mask]

    def check_sessions(self, calendar, interval=None, on_bad: str = "raise", *,
                       span=None) -> Counter:
        """Check that every bar lies inside a session window of ``calendar`` and on the grid
        of ``interval`` (default: the bars' own).

        A bar outside every window on a day that is a session of ``calendar`` (pre- or
        after-market, the hours after an early close) is *outside the session's hours*: not
        bad data.  It leaves :attr:`bars` for :attr:`outside` (with its session in
        :attr:`outside_sessions`) under either policy, and the returned counter has it
        under ``"outside the session's hours"``.  (When another reading of the
        times fits the calendar clearly better on all the bars, by the score of
        :func:`sessiondata.plausibility.misread_hint`: another zone, UTC included, the other
        stamp or the base interval the spacing shows, the file is taken as misread, not as
        extended hours, and the error names the options that fit.)

        Other bad bars raise ReadError naming the first one's file, line and the time as
        written there, or (``on_bad="drop"``) are dropped, counted by reason in the returned
        counter and in :attr:`dropped`.

        ``span`` (a ``calendar.WindowSpan`` of ``calendar``) holds the windows laid out
        already over these bars: each symbol's are cut from it.
        """
        if on_bad not in POLICIES:
            raise ValueError(f"on_bad must be 'raise' or 'drop', got {on_bad!r}")
        dropped: Counter = Counter()
        hours: Counter = Counter()
        misread: str | None = None   # scored once, on every bar, when first needed
        for symbol in list(self.bars):
            bars = self.bars[symbol]
            if not len(bars):
                continue
            iv = parse_interval(interval) if interval is not None else bars.interval
            base_ns = iv.ns if iv is not None else 0
            windows = WindowSpan.of(calendar, span).windows(
                int(bars.ts[0]) - base_ns, int(bars.ts[-1]) + max(base_ns, 1))
            faults = np.zeros(len(bars), np.uint8)
            if len(windows) == 0:  # the kernel skips session checks without windows
                faults[:] = _FAULT_OUTSIDE
                first = 0
            elif self._validated.get(symbol) is bars:
                # Prices, volume and order were checked by the reader (store_checked): only
                # the sessions are left to check.
                first, _counts = _validation.locate_bars(
                    bars.ts, windows.open_ns, windows.close_ns, base_ns, faults)
            else:
                first, _counts = _validation.validate_bars(
                    bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
                    windows.open_ns, windows.close_ns, base_ns, faults, False,
                    volume_optional=not bars.has_volume)
            if first < 0:
                continue    # every bar sound and inside a session
            outside = faults == _FAULT_OUTSIDE
            hint = ""
            if outside.any():
                if misread is None:
                    misread = self._misread(calendar, interval)
                hint = misread
                if not hint:
                    ext, labels = extended_hours(bars.ts, outside, calendar)
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
                    what += hint
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
            self.note_dropped(symbol, bars.ts[bad], faults[bad])
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

    def _misread(self, calendar, interval) -> str:
        """``"; the whole file fits ... far better: ..."`` when the plausibility scorer
        finds a reading (zone incl. UTC, stamp, base interval) that fits ``calendar``
        clearly better than the one read with, on all the bars; else ""."""
        from .. import plausibility

        if interval is not None:
            base_ns = parse_interval(interval).ns
        else:
            base_ns = next((b.interval.ns for b in self.bars.values()
                            if b.interval is not None), 0)
        if base_ns <= 0:
            return ""
        return plausibility.misread_hint(self, calendar, base_ns)

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


def _ts_str(ns: int, tz=None) -> str:
    """``2024-01-02 14:31:00 UTC`` (or local, with the zone's abbreviation)."""
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    t = epoch + _dt.timedelta(microseconds=ns // 1000)
    if tz is not None:
        t = t.astimezone(tz)
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text} {t.tzname() or 'UTC'}"


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
        self._pending_first: tuple[int, str, str] | None = None
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
        self._pending_first = None
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
        self._pending_first = None

    @property
    def pending_rows(self) -> int:
        """Rows of the current source so far, bad ones included."""
        return self._pending_rows + sum(self._pending_dropped.values())

    def commit(self) -> None:
        kept = sum(len(piece[1]) for _symbol, piece in self._pending)
        lost = sum(self._pending_dropped.values())
        if lost >= DROP_MIN_ROWS and lost > DROP_MAX_SHARE * (kept + lost):
            source = len(self.result.sources) - 1
            line, _category, reason = self._pending_first or (0, "", "")
            why = ", ".join(f"{n} {r}" for r, n in self._pending_dropped.most_common())
            raise ReadError(self.result.sources[source], None, (
                f"--on-bad drop would drop {lost} of {kept + lost} rows ({why}; the first, "
                f"{self.result._units[source]} {line}: {reason}): more than "
                f"{DROP_MAX_SHARE:.0%}, so the file looks misread, not dirty; check its "
                "options"))
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
        first = min(problems)
        if self._pending_first is None or first < self._pending_first:
            self._pending_first = first
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
        raise ReadError(path, None if line is None else int(line), f"bad symbol: {exc}",
                        unit) from None


# A bar more than FAR_NS away from every other bar of its symbol, in a group of at most
# FAR_MAX_BARS (or a thousandth of the symbol's bars, when more), is taken as a mistyped date
# (2112 for 2024): it would stretch the run over the decades between.  Found here, before any
# span is built on it.
FAR_NS = 365 * 86_400 * 1_000_000_000
FAR_MAX_BARS = 10
# Under on_bad="drop", a symbol that would lose more than this share of its bars (and a file
# more than this share of its rows), at least DROP_MIN_ROWS of them, is an error instead:
# such a file is misread, not dirty.
DROP_MAX_SHARE = 0.5
DROP_MIN_ROWS = 10                  # ... once at least this many would go


def store_checked(result: ReadResult, symbol: str, ts: np.ndarray, cols: list[np.ndarray],
                  interval: Any, has_volume: bool, on_bad: str) -> None:
    """Check a symbol's bars (dates, prices, volume, order) and store them in ``result``.

    The first bad one raises, naming its file and line, or (``on_bad="drop"``) bad ones are
    dropped and counted by reason.  ``result``'s source and line arrays of the symbol are
    set already.  In order:

    - a bar far from all others (more than a year from the rest, in a group of at most
      ``FAR_MAX_BARS`` bars or a thousandth of the symbol's) is a mistyped date;
    - rows in descending order (more than half of the steps go back in time) are an error
      under either policy: the file is newest first, not dirty;
    - prices, volume and order (the validation kernel); under ``"drop"`` the order is
      judged against the neighbours: the fewest rows are dropped that leave the rest in
      strictly increasing order (a row that breaks it is dropped, not the rows after it);
    - under ``"drop"``, losing more than ``DROP_MAX_SHARE`` (half) of the bars, and at
      least ``DROP_MIN_ROWS`` (10), is an error.
    """
    n_in = len(ts)
    far_dropped = 0
    in_order, far, steps = True, None, None
    if n_in > 1:
        # The steps between bars in one compiled pass (no array of them): in order when
        # every step is positive, and no bar can be far from the rest when none is long.
        steps = _validation.step_counts(np.ascontiguousarray(ts, dtype=np.int64))
        _least, _count, positive, largest = steps
        in_order = positive == n_in - 1
        far = None if in_order and largest <= FAR_NS else _far_rows(ts)
        if far is not None:
            if on_bad == "raise":
                raise _far_error(result, symbol, ts, far)
            far_dropped = int(far.sum())
            keep = ~far
            ts = ts[keep]
            cols = [c[keep] for c in cols]
            result._source_of[symbol] = np.asarray(result._source_of[symbol])[keep]
            result._line_of[symbol] = np.asarray(result._line_of[symbol])[keep]
            result.dropped["time far from the other bars"] += far_dropped
        if len(ts) > 1 and (far is not None or not in_order):
            _check_not_descending(result, symbol, ts)
    if in_order and far is None and _validation.prices_sound(
            cols[0], cols[1], cols[2], cols[3], cols[4], volume_optional=not has_volume):
        # The common case, told by one quick pass: in order (the steps above) and every
        # price and volume sound, which is what the validation kernel would find.
        result.bars[symbol] = Bars(ts, *cols, interval=interval, validate=False,
                                   has_volume=has_volume)
        result._validated[symbol] = result.bars[symbol]
        if steps is not None:
            result._steps[symbol] = (result.bars[symbol], steps)
        return
    faults = np.zeros(len(ts), np.uint8)
    empty = np.empty(0, np.int64)
    first, counts = _validation.validate_bars(
        ts, cols[0], cols[1], cols[2], cols[3], cols[4], empty, empty, 0, faults,
        on_bad == "raise", volume_optional=not has_volume)
    result.bars[symbol] = Bars(ts, *cols, interval=interval, validate=False,
                               has_volume=has_volume)
    if first < 0:
        result._validated[symbol] = result.bars[symbol]
        _check_share(result, symbol, far_dropped, n_in, Counter())
        return
    if on_bad == "raise":
        raise bar_error(result, symbol, first, int(faults[first]), ts, cols)
    if counts[_FAULT_UNSORTED] or counts[_FAULT_DUPLICATE]:
        faults = _order_faults(ts, faults)
        counts = np.bincount(faults, minlength=len(counts)).tolist()
    lost: Counter = Counter()
    for code, n in enumerate(counts):
        if code and n:
            lost[FAULTS.get(code, "bad bar")] += int(n)
    _check_share(result, symbol, far_dropped + sum(lost.values()), n_in, lost)
    result.dropped.update(lost)
    bad = faults != 0
    result.note_dropped(symbol, ts[bad], faults[bad])
    result._validated[symbol] = result.bars[symbol]
    result.keep(symbol, ~bad)      # (the bars kept are checked: sorted, sound)


def _far_rows(ts: np.ndarray) -> np.ndarray | None:
    """A mask of the bars far from all others (see store_checked), or None when none is."""
    n = len(ts)
    steps = np.diff(ts)
    if steps.min() > 0:                     # sorted, the common case: no sort needed
        if steps.max() <= FAR_NS:
            return None
        order = None
        sorted_ts = ts
    else:
        order = np.argsort(ts, kind="stable")
        sorted_ts = ts[order]
        steps = np.diff(sorted_ts)
        if steps.max() <= FAR_NS:
            return None
    cuts = np.flatnonzero(steps > FAR_NS) + 1
    bounds = np.concatenate([[0], cuts, [n]])
    sizes = np.diff(bounds)
    # The main group: the biggest; between equal ones, the group of the file's first row.
    first_pos = 0 if order is None else int(np.flatnonzero(order == 0)[0])
    home = int(np.searchsorted(bounds, first_pos, side="right")) - 1
    main = home if sizes[home] == sizes.max() else int(np.argmax(sizes))
    limit = max(FAR_MAX_BARS, n // 1000)
    out = np.zeros(n, bool)
    for k in range(len(sizes)):
        if k != main and sizes[k] <= limit:
            out[bounds[k]:bounds[k + 1]] = True
    if not out.any():
        return None
    if order is not None:
        unsorted = np.zeros(n, bool)
        unsorted[order] = out
        out = unsorted
    return out


def _span_text(ns: int) -> str:
    """A distance in time for a message: ``88 years`` or ``400 days``."""
    days = ns / 86_400e9
    return f"{days / 365.25:.0f} years" if days >= 2 * 365.25 else f"{days:.0f} days"


def _far_error(result: ReadResult, symbol: str, ts: np.ndarray, far: np.ndarray) -> ReadError:
    row = int(np.flatnonzero(far)[0])
    rest = ts[~far]
    lo, hi = int(rest.min()), int(rest.max())
    t = int(ts[row])
    side = f"{_span_text(t - hi)} after" if t > hi else f"{_span_text(lo - t)} before"
    written = result.field_text(symbol, row)
    at = f"{written!r} ({_ts_str(t)})" if written else _ts_str(t)
    extra = int(far.sum()) - 1
    more = f" (and {extra} more such bar{'s' if extra > 1 else ''})" if extra else ""
    return result.error(symbol, row, (
        f"the bar at {at} is {side} the rest of {symbol} ({_ts_str(lo)} .. {_ts_str(hi)})"
        f"{more}: a mistyped date? (--on-bad drop drops and counts it)"))


def _check_not_descending(result: ReadResult, symbol: str, ts: np.ndarray) -> None:
    """A file (or symbol) whose rows mostly go back in time is newest first: an error under
    either policy, naming it (drop would keep one row in two at best)."""
    back = int(np.count_nonzero(ts[1:] < ts[:-1]))
    steps = len(ts) - 1
    if back * 2 > steps:
        path, _line, _unit = result.where(symbol, 0)
        raise ReadError(path, None, f"the rows of {symbol} are in descending time order "
                        f"({back} of {steps} steps go back in time: newest first?); sort "
                        "them oldest first")


def _order_faults(ts: np.ndarray, faults: np.ndarray) -> np.ndarray:
    """Order faults judged against the neighbours: of the rows without a price fault, the
    fewest are marked that leave the rest strictly increasing (the complement of a longest
    increasing run, kept in file order, the earlier of equal times kept); a dropped row with
    the time of the last kept row before it is a duplicate, another one is out of order.
    Only for files out of order (drop policy)."""
    out = faults.copy()
    order_codes = (out == _FAULT_UNSORTED) | (out == _FAULT_DUPLICATE)
    out[order_codes] = 0
    cand = np.flatnonzero(out == 0)
    keep = _isolated_strays(ts[cand])
    if keep is None:
        keep = _longest_increasing(ts[cand])
    dropped = cand[~keep]
    # A dropped row with the time of the last kept row before it is a duplicate.
    last_kept = np.maximum.accumulate(np.where(keep, np.arange(len(keep)), -1))[~keep]
    prev_ts = ts[cand[np.maximum(last_kept, 0)]]
    dup = (last_kept >= 0) & (prev_ts == ts[dropped])
    out[dropped[dup]] = _FAULT_DUPLICATE
    out[dropped[~dup]] = _FAULT_UNSORTED
    return out


def _isolated_strays(v: np.ndarray) -> np.ndarray | None:
    """Rows to keep when every step back in time is isolated (no other within two rows) and
    one row explains it: a row above both neighbours' order (dropped) or below it; each
    such step needs one dropped row, so this is a longest increasing run, found without a
    loop per row.  None when another pattern is present (the general search then runs)."""
    n = len(v)
    back = np.flatnonzero(v[1:] <= v[:-1]) + 1          # v[j] <= v[j - 1]
    if not len(back):
        return np.ones(n, bool)
    if len(back) > 1 and np.diff(back).min() <= 2:
        return None
    j = back
    before = np.where(j >= 2, v[np.maximum(j - 2, 0)], np.iinfo(np.int64).min)
    after = np.where(j + 1 < n, v[np.minimum(j + 1, n - 1)], np.iinfo(np.int64).max)
    # The earlier row sticks out (above this one and the next): drop it; else this one,
    # when the rows around it are in order without it.
    high = (v[j] != v[j - 1]) & (before < v[j]) & (v[j - 1] > after)
    low = ~high & (after > v[j - 1])
    if not (high | low).all():
        return None
    keep = np.ones(n, bool)
    keep[j[high] - 1] = False
    keep[j[low]] = False
    return keep


def _longest_increasing(v: np.ndarray) -> np.ndarray:
    """Rows to keep: a longest strictly increasing run (patience sorting, O(n log n); the
    earlier of equal values kept)."""
    import bisect

    values: list[int] = v.tolist()
    tails: list[int] = []              # smallest last value of an increasing run of length k+1
    tail_at: list[int] = []            # its position in v
    parent = [-1] * len(values)
    for i, x in enumerate(values):
        k = bisect.bisect_left(tails, x)
        if k < len(tails) and tails[k] == x:
            continue                    # a repeat: the earlier of equal times is kept
        if k == len(tails):
            tails.append(x)
            tail_at.append(i)
        else:
            tails[k] = x
            tail_at[k] = i
        parent[i] = tail_at[k - 1] if k else -1
    keep = np.zeros(len(values), bool)
    i = tail_at[-1] if tail_at else -1
    while i >= 0:
        keep[i] = True
        i = parent[i]
    return keep


def _check_share(result: ReadResult, symbol: str, lost: int, total: int,
                 reasons: Counter) -> None:
    """Under drop: more than DROP_MAX_SHARE of a symbol's bars dropped is an error."""
    if lost >= DROP_MIN_ROWS and lost > DROP_MAX_SHARE * total:
        path, _line, _unit = result.where(symbol, 0) if len(result._source_of.get(
            symbol, ())) else (f"<{symbol}>", None, "row")
        why = ", ".join(f"{n} {r}" for r, n in reasons.most_common()) or "far from the rest"
        raise ReadError(path, None, f"--on-bad drop would drop {lost} of {total} bars of "
                        f"{symbol} ({why}): more than {DROP_MAX_SHARE:.0%}, so the input "
                        "looks misread, not dirty; check its options")


def bar_error(result: ReadResult, symbol: str, row: int, fault: int, ts, cols) -> ReadError:
    """The error of a bad bar of ``symbol`` at ``row``, naming its file and line (and, for a
    bar out of order or repeated, where the bar before it is)."""
    t = _ts_str(int(ts[row]))
    if fault in (_FAULT_UNSORTED, _FAULT_DUPLICATE) and row > 0:
        prev_path, prev_line, prev_unit = result.where(symbol, row - 1)
        path, _line, _unit = result.where(symbol, row)
        other = f"{prev_unit} {prev_line}" if prev_path == path else \
            f"{prev_path}, {prev_unit} {prev_line}"
        if fault == _FAULT_DUPLICATE:
            reason = f"duplicate timestamp {t} of {symbol} (also on {other})"
        elif 2 <= row < len(ts) - 1 and ts[row - 2] < ts[row] and ts[row - 1] > ts[row + 1]:
            # The row before sticks out above this row and the next one, between rows in
            # order: it is the one out of order, not this one.
            before = result.where(symbol, row - 2)
            here = result.where(symbol, row)
            return result.error(symbol, row - 1, (
                f"timestamp out of order: {_ts_str(int(ts[row - 1]))} of {symbol} lies after "
                f"the rows around it ({_ts_str(int(ts[row - 2]))} on {before[2]} {before[1]}, "
                f"{t} on {here[2]} {here[1]})"))
        else:
            reason = (f"timestamp out of order: {t} of {symbol} comes after "
                      f"{_ts_str(int(ts[row - 1]))} ({other})")
    else:
        values = " ".join(f"{k}={float(cols[i][row])!r}" for i, k in enumerate(PRICE_COLUMNS))
        reason = f"{FAULTS.get(fault, 'bad bar')}: {symbol} at {t} ({values})"
    return result.error(symbol, row, reason)
