"""``SessionData``: the single registry of the symbols of a trading session.

``SessionData._symbols`` maps each symbol to its :class:`SymbolSessionData`, and is the only
record of which symbols exist, which are loaded, which derived intervals each has and what
their gaps and quality are.  Every other component asks it; none keeps a copy.  One lock
guards the registry and every change to what it holds; reads hand out snapshots.
"""

from __future__ import annotations

import collections
import contextlib
from datetime import date as _date
import threading
import weakref
from typing import Any, Callable, Iterable, Mapping, NoReturn, Sequence

import numpy as np

from ._core.stream import EVENT_KINDS, Event, SessionCore, SymbolCore, SymbolStream
from .kernels import Grid, default_calendar, make_grid
from .documents import session_fields
from .live_result import live_doc, live_result
from .results import GapInfo, Gaps, QualityReport, RunResult, local_time
from .bars import COLUMNS, FAULTS, Bars, BadBarError, coerce_float, coerce_ts, describe_row
from .calendar import Calendar, Windows
from .faults import Fault
from .intervals import Interval, check_bars_interval, check_derivable, parse_interval
from .symbols import check_symbol

POLICIES = ("raise", "drop", "revise")


class SymbolSessionData(SymbolCore):
    """The bars of one symbol in the session: base bars and every derived interval.

    Attributes
    ----------
    symbol : str
    base_interval : str
        The interval of the bars that arrive (e.g. ``"1m"``).
    derived_intervals : list[str]
        Intervals made from the base bars (e.g. ``["5m", "15m", "1h"]``).
    is_loaded : bool
        Set when the load phase finished.
    bar_gaps : dict[str, Sequence[GapInfo]]
        Gaps per interval, as last computed by the quality manager.
    quality : dict[str, QualityReport]
        Quality per interval, as last computed.
    """

    def __init__(self, symbol: str, base_interval: Interval, stream: SymbolStream):
        self.symbol = symbol
        self.base_interval = base_interval.name
        self.derived_intervals: list[str] = []
        self.is_loaded = False
        self.bar_gaps: dict[str, Sequence[GapInfo]] = {}
        self.quality: dict[str, QualityReport] = {}
        # The span the last scoring covered: (since_ns, until_ns), None where unbounded.
        self.scored_span: tuple[int | None, int | None] = (None, None)
        self._stream = stream
        self._slot: dict[str, int] = {base_interval.name: -1}  # interval -> store index
        self._session_ref: weakref.ref[SessionData] | None = None

    @property
    def _session(self) -> "SessionData | None":
        """The registry holding this entry (for its lock), or None.  Held weakly: the registry
        holds its entries, and a cycle would keep a dropped session, its streams and their
        stores alive until the cyclic GC ran (a new session meanwhile takes new memory)."""
        ref = self._session_ref
        return None if ref is None else ref()

    @_session.setter
    def _session(self, session: "SessionData | None") -> None:
        self._session_ref = None if session is None else weakref.ref(session)

    # -- reads (snapshots) ----------------------------------------------------------------

    def intervals(self) -> list[str]:
        """The base interval, then the derived ones."""
        return [self.base_interval] + list(self.derived_intervals)

    def bars(self, interval: str | None = None) -> Bars:
        """A snapshot of the bars held for ``interval`` (default: the base interval)."""
        session = self._session
        if session is None:
            return self._bars(interval)
        # A batch load runs in the kernel without the GIL, holding the registry lock, and
        # grows the columns as it goes: copy them only while it does not run.
        with session._lock:
            return self._bars(interval)

    def _bars(self, interval: str | None = None) -> Bars:
        """``bars()`` for a caller that holds the registry lock."""
        name = self.base_interval if interval is None else parse_interval(interval).name
        try:
            k = self._slot[name]
        except KeyError:
            raise KeyError(f"{self.symbol} has no interval {name!r} "
                           f"(has {', '.join(self.intervals())})") from None
        cols = self._stream.bars(k)
        return Bars(cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"],
                    cols["volume"], count=cols.get("count"), coverage=cols.get("coverage"),
                    interval=name, validate=False)

    def bars_until(self, interval: str | None, until_ns: int | None) -> Bars:
        """The bars of ``interval`` held, plus, for a derived interval, the bar still being
        built when a base slot of its bucket closed by ``until_ns`` (it is not closed by
        this)."""
        name = self.base_interval if interval is None else parse_interval(interval).name
        session = self._session
        with session._lock if session is not None else contextlib.nullcontext():
            bars = self._bars(name)
            k = self._slot[name]
            partial = self._stream.partial_bar(k) if k >= 0 and until_ns is not None else None
        if partial is None or until_ns is None or partial["ts"] + self._stream.base_ns > until_ns:
            return bars
        assert bars.count is not None and bars.coverage is not None  # derived bars have both
        cols = {c: np.append(getattr(bars, c), partial[c]) for c in COLUMNS}
        return Bars(cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"],
                    cols["volume"], count=np.append(bars.count, partial["count"]),
                    coverage=np.append(bars.coverage, partial["coverage"]), interval=name,
                    validate=False)

    def bar_count(self, interval: str | None = None) -> int:
        name = self.base_interval if interval is None else parse_interval(interval).name
        return self._stream.count(self._slot[name])

    @property
    def rejected(self) -> dict[str, int]:
        """Bars refused by the validation, by reason."""
        return {FAULTS[code]: int(n) for code, n in enumerate(self._stream.rejected)
                if n and code in FAULTS}

    @property
    def revised(self) -> int:
        """Bars the ``revise`` policy took: late, out of order or sent again."""
        return int(self._stream.revised)

    @property
    def nbytes(self) -> int:
        """Bytes allocated for the bars held."""
        return int(self._stream.nbytes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: per interval, the bar count, quality and gaps (the gap schema
        of the specification: ``gap_count``, ``missing_bars``, ``ranges`` with exchange-local
        times of day); the results model's session document, for this symbol."""
        session = self._session
        if session is None or session.windows is None:
            raise RuntimeError(f"{self.symbol}: not in an active session")
        return live_doc(session, [self])["symbols"][self.symbol]

    def __repr__(self) -> str:
        held = "reused" if isinstance(self._stream, _Reused) else len(self._stream)
        return (f"SymbolSessionData({self.symbol!r}, base={self.base_interval}, "
                f"derived={self.derived_intervals}, bars={held}, "
                f"loaded={self.is_loaded})")


class _Reused:
    """Stands in for the stream of an entry whose session ended with ``keep_buffers``: its
    buffers went to a later session's symbols, so any read fails instead of showing theirs."""

    __slots__ = ("symbol",)

    def __init__(self, symbol: str):
        self.symbol = symbol

    def _gone(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(
            f"{self.symbol}: its session ended and its buffers were kept for the next "
            "session's symbols; take what you need (bars(), to_json(), an export) before "
            "stop(), or end the session with keep_buffers=False")

    bars = count = advance = flush = push = push_many = add_derived = _gone
    rejected = nbytes = held_nbytes = busy = revised = property(_gone)

    def __len__(self) -> int:
        self._gone()


class SessionData(SessionCore):
    """The registry of the symbols of one trading session, behind one lock.

    Parameters
    ----------
    calendar : Calendar, optional
        Defaults to ``Calendar.always()``.
    on_bad : {"raise", "drop", "revise"}
        What a bad bar does: raise ``BadBarError`` (the bar is not stored, nothing held is
        lost), or be dropped and counted in the quality report.  ``revise``: a bar that comes
        out of order, twice, or after its derived bucket closed (late) fills or replaces its
        slot, every derived bar it belongs to is made again, and so are the gap counters
        (a ``revised`` event tells); other bad bars are dropped and counted, as with ``drop``.
    stale_after : int
        Slots without a bar after which a symbol is reported ``stale`` (0: never).
    gap_grace : int
        Slots the clock must be past a slot's end before the slot is reported missing
        (``gap_opened``): 1 lets the bars of one slot arrive in any order across symbols.

    Notes
    -----
    Events: ``subscribe(callback, kinds=...)`` hands ``Event`` objects to ``callback`` as the
    bars and ``advance(now_ns)`` move the clock (see docs/live.md).
    """

    def __init__(self, calendar: Calendar | None = None, *, on_bad: str = "raise",
                 stale_after: int = 5, gap_grace: int = 1):
        if on_bad not in POLICIES:
            raise ValueError(f"on_bad must be one of {POLICIES}, got {on_bad!r}")
        for name, value in (("stale_after", stale_after), ("gap_grace", gap_grace)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
                raise ValueError(f"{name} must be a non-negative integer of slots, "
                                 f"got {value!r}")
        self.calendar = default_calendar(calendar)
        self.on_bad = on_bad
        self._raise_on_bad = on_bad == "raise"
        self._revise = on_bad == "revise"
        self._stale_slots = stale_after
        self._grace_slots = gap_grace
        # (event, callback, exception) of the latest callbacks that raised, oldest first.
        self.event_errors: collections.deque[
            tuple[Event, Callable[[Event], Any], Exception]] = collections.deque(
                maxlen=_MAX_EVENT_ERRORS)
        self._lock = threading.Lock()
        # The registry itself, ``_symbols: dict[str, SymbolSessionData]``, and the bars
        # offered for unknown symbols live in the compiled base class (``SessionCore``),
        # whose ``add_bar`` is the per-bar fast path.
        self._session: np.datetime64 | None = None
        self._windows: Windows | None = None
        self._grids: dict[tuple[str, str], Grid] = {}
        self._spare_streams: list[SymbolStream] = []  # buffers kept from the last session
        # Unknown-symbol bars offered in batches.  Kept apart from ``_unknown_bars``, which the
        # compiled ``add_bar`` updates without the lock: a read-modify-write of one dict from
        # both sides would lose counts when threads switch in between.
        self._unknown_batched: dict[str, int] = {}
        self._derived_gaps = False      # some subscriber wants derived gap events

    # -- the session ----------------------------------------------------------------------

    @property
    def session(self) -> np.datetime64 | None:
        """The label of the active session, or None."""
        return self._session

    @property
    def windows(self) -> Windows | None:
        """The active session's windows."""
        return self._windows

    @property
    def is_active(self) -> bool:
        return self._session is not None

    def start_session(self, session: str | np.datetime64 | _date) -> None:
        """Make ``session`` (a trading date of the calendar) the active session.  The registry
        starts empty."""
        windows = self.calendar.session_windows(session)
        with self._lock:
            if self._session is not None:
                raise RuntimeError(f"session {self._session} is still active; end it first")
            self._session = windows.sessions[0]
            self._windows = windows
            self._grids = {}
            self._symbols = {}
            self._clock = _NO_CLOCK
            self._next_scan = _NO_CLOCK
            self._current = _STALE_COUNT
            self._unknown_bars = {}
            self._unknown_batched = {}

    def end_session(self, *, keep_buffers: bool = True) -> None:
        """Deactivate the session and clear the registry (``SessionCoordinator.stop`` first
        closes the derived bars and scores the session).

        With ``keep_buffers`` the symbols' bar buffers are kept for the next session's
        symbols (a backtest then touches no fresh memory from one day to the next); call
        ``release_buffers()`` to hand them back.  Removed symbols always free theirs.
        """
        if self._events_on:
            self._deliver()     # what the session's last calls produced
        with self._lock:
            self._pending = []
            # The registry goes first (its lookup cache with it): a bar offered from another
            # thread from here on finds no symbol, never a stream being handed back.
            entries = list(self._symbols.values())
            self._symbols = {}
            if keep_buffers:
                for e in entries:
                    self._spare_streams.append(e._stream)
                    # A caller may still hold the entry: it must not read the bars of
                    # whichever symbol of a later session gets these buffers.
                    e._stream = _Reused(e.symbol)
            else:
                self._spare_streams.clear()
            self._session = None
            self._windows = None
            self._grids = {}
            self._clock = _NO_CLOCK

    def release_buffers(self) -> None:
        """Free the buffers kept from ended sessions."""
        with self._lock:
            self._spare_streams.clear()

    def grid(self, interval: str, base: str) -> Grid:
        """The grid of ``interval`` for bars of ``base`` on the active session (cached)."""
        key = (interval, base)
        grid = self._grids.get(key)
        if grid is None:
            if self._windows is None:
                raise RuntimeError("no active session")
            grid = make_grid(self._windows, parse_interval(interval), parse_interval(base))
            self._grids[key] = grid
        return grid

    @property
    def clock_ns(self) -> int | None:
        """The session's clock: the latest bar end seen, or a later time set by advance()."""
        return None if self._clock == _NO_CLOCK else int(self._clock)

    def advance(self, now_ns: int) -> int:
        """Move the clock to ``now_ns``: every derived bar whose bucket ended closes.  Returns
        how many closed."""
        if isinstance(now_ns, float) or not -(2**63) <= int(now_ns) <= _I64_MAX:
            raise ValueError(f"now_ns must be an integer of nanoseconds inside int64, "
                             f"got {now_ns!r}")
        with self._lock:
            self._note_clock(int(now_ns))
            closed = sum(entry._stream.advance(self._clock) for entry in self._symbols.values())
            if self._events_on:
                for symbol, entry in self._symbols.items():
                    entry._stream.collect(symbol, self._pending)
                self._scan_all(self._clock)
        if self._events_on:
            self._deliver()
        return closed

    def finish(self, symbol: str | None = None, until_ns: int | None = None) -> int:
        """The end of the session (``SessionCoordinator.stop`` calls it), for one symbol or
        all: every derived bar being built closes, and every gap still open, or not yet told
        because no bar and no clock came after it, gets its ``gap_closed`` with its final
        range, up to ``until_ns`` (default: the session's close).  Returns how many derived
        bars closed."""
        with self._lock:
            if symbol is None:
                entries = list(self._symbols.values())
            else:
                entry = self._symbols.get(symbol)
                entries = [entry] if entry is not None else []
            closed = sum(e._stream.flush() for e in entries)
            if self._events_on and self._windows is not None:
                end = int(self._windows.close_ns[-1]) if until_ns is None else int(until_ns)
                for e in entries:
                    e._stream.collect(e.symbol, self._pending)
                    e._stream.scan(e.symbol, self._pending, end, 0, True)
                    e._stream.close_derived_gaps(e.symbol, self._pending, end)
        if self._events_on:
            self._deliver()      # outside the lock
        return closed

    def last_closed(self, symbol: str) -> int:
        """How many derived bars the latest base bar of ``symbol`` closed (0 for a symbol
        not registered)."""
        with self._lock:
            entry = self._symbols.get(symbol)
            return int(entry._stream.last_closed) if entry is not None else 0

    # -- events ---------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[Event], Any], kinds: Iterable[str] | None = None,
                  *, errors: str = "collect",
                  intervals: Iterable[str] | None = None) -> Callable[[Event], Any]:
        """Call ``callback(event)`` for every event of the kinds given (default: all).

        Kinds: ``gap_opened`` (a base slot ended, by ``gap_grace`` slots of the clock, without
        a bar), ``gap_closed`` (the gap's range is final: a bar ended it, the clock passed
        its window's close, or the session ended; ``event.gap`` is its ``GapInfo``),
        ``gap_revised`` (a gap told before is taken back: its slot's bar came after all; what
        remains of it is told anew), ``stale`` (``stale_after`` slots without a bar), ``bar_closed`` (a derived bar closed),
        ``revised`` (the revise policy changed a bar: ``event.old``, ``event.bar``).  The clock
        is the latest bar end seen or ``advance(now_ns)``: no thread of the library's own.

        Callbacks run outside the registry lock, one at a time, in the order the events
        happened, on the thread whose call delivers them; a callback may call back into this
        ``SessionData`` (its own bars' events follow the ones being delivered).  An exception
        of a callback never loses a bar or an event for the other callbacks: with
        ``errors="collect"`` it is appended to ``event_errors`` (the latest 1000 are kept);
        with ``errors="raise"`` it is
        also re-raised from the call that delivered it (``add_bar``, ``add_bars``,
        ``advance``), after the bar was stored and every pending event was delivered.
        ``intervals``: the intervals whose gap events (``gap_opened``, ``gap_closed``,
        ``gap_revised``) the callback gets, base or derived (default: the base interval
        only).  A derived interval's gap is a run of buckets without any base bar; its
        events come as its bars close (a later bar, ``advance``) and at the session's end.
        Nothing is spent on them while no subscriber names a derived interval.
        Returns ``callback`` (pass it to ``unsubscribe``).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        if errors not in ("collect", "raise"):
            raise ValueError(f"errors must be 'collect' or 'raise', got {errors!r}")
        wanted = list(EVENT_KINDS) if kinds is None else [kinds] if isinstance(kinds, str) \
            else list(kinds)
        mask = 0
        for kind in wanted:
            if kind not in EVENT_KINDS:
                raise ValueError(f"unknown event kind {kind!r} (kinds: {', '.join(EVENT_KINDS)})")
            mask |= 1 << EVENT_KINDS.index(kind)
        names = None if intervals is None else frozenset(
            parse_interval(i).name for i in ([intervals] if isinstance(intervals, str)
                                             else intervals))
        with self._lock:
            if not self._events_on:
                # Events start now: what is held already was not news to anyone.
                for entry in self._symbols.values():
                    entry._stream.sync_events()
                self._next_scan = _NO_CLOCK
                self._current = _STALE_COUNT
            # Replaced, never changed in place: a delivery loop iterates the old list.
            self._subscribers = self._subscribers + [(callback, mask, errors == "raise", names)]
            self._wanted |= mask
            self._events_on = True
            self._set_derived_gaps()
        return callback

    def _set_derived_gaps(self) -> None:
        """Streams make derived gap events only while a subscriber asks for them (the
        caller holds the lock)."""
        on = any(sub[3] for sub in self._subscribers)
        self._derived_gaps = on
        for entry in self._symbols.values():
            entry._stream.want_derived_gaps(on)

    def unsubscribe(self, callback: Callable[[Event], Any]) -> bool:
        """Stop calling ``callback``; False when it was not subscribed."""
        with self._lock:
            kept = [sub for sub in self._subscribers if sub[0] is not callback]
            found = len(kept) != len(self._subscribers)
            self._subscribers = kept
            self._wanted = 0
            for sub in kept:
                self._wanted |= sub[1]
            self._events_on = bool(kept)
            self._set_derived_gaps()
            if not kept:
                self._pending = []
        return found

    def _gap_info(self, event: Event) -> GapInfo:
        """The ``GapInfo`` of a ``gap_closed`` event, in the calendar's zone."""
        tz = self.calendar.tz
        return GapInfo(local_time(event.ts, tz), local_time(event.end_ns, tz), event.bar_count)

    def _event_failed(self, event: Event, sub: tuple[Any, int, bool, frozenset[str] | None],
                      exc: Exception) -> bool:
        """Record a callback's exception; True when it is to be re-raised."""
        self.event_errors.append((event, sub[0], exc))
        return bool(sub[2])

    # -- the registry ---------------------------------------------------------------------

    def add_symbol(self, symbol: str, base_interval: str = "1m",
                   derived_intervals: Iterable[str] = ()) -> SymbolSessionData:
        """Register a symbol for the active session.

        Adding a symbol that is already there keeps its bars; derived intervals not yet
        present are added (and filled from the base bars held).  A different base interval
        is an error.
        """
        check_symbol(symbol)
        base = parse_interval(base_interval)
        derived = [parse_interval(d) for d in derived_intervals]
        for d in derived:
            check_derivable(base, d)
        with self._lock:
            if self._windows is None:
                raise RuntimeError(f"cannot add {symbol!r}: no active session (start one first)")
            entry = self._symbols.get(symbol)
            if entry is None:
                if self._spare_streams:  # buffers of the last session: no fresh pages
                    stream = self._spare_streams.pop()
                    stream.reset(self._windows.open_ns, self._windows.close_ns, base.ns)
                else:
                    stream = SymbolStream(self._windows.open_ns, self._windows.close_ns,
                                          base.ns)
                stream.names = (base.name,)
                stream.want_derived_gaps(self._derived_gaps)
                entry = SymbolSessionData(symbol, base, stream)
                entry._session = self
                self._put_symbol(symbol, entry)
                self._current = _STALE_COUNT    # the scans look at every stream again
            elif entry.base_interval != base.name:
                raise ValueError(f"{symbol!r} is registered with base interval "
                                 f"{entry.base_interval}, not {base.name}")
            for d in derived:
                self._add_derived(entry, d)
            return entry

    def _add_derived(self, entry: SymbolSessionData, interval: Interval) -> None:
        if interval.name in entry._slot:
            return
        grid = self.grid(interval.name, entry.base_interval)
        k = entry._stream.add_derived(grid.open_ns, grid.close_ns, grid.base_slots,
                                      grid.step_ns, grid.last_open)
        entry._slot[interval.name] = k
        entry.derived_intervals.append(interval.name)
        entry._stream.names = (*entry._stream.names, interval.name)

    def remove_symbol(self, symbol: str) -> bool:
        """Drop a symbol and everything held for it; False when it was not there."""
        with self._lock:
            self._current = _STALE_COUNT
            # One compiled step takes it out of the registry and of the per-bar lookup cache.
            return self._pop_symbol(symbol) is not None

    def mark_loaded(self, symbol: str) -> None:
        with self._lock:
            entry = self._symbols.get(symbol)
            if entry is None:
                raise KeyError(f"unknown symbol {symbol!r}")
            entry.is_loaded = True

    def get_symbol_data(self, symbol: str) -> SymbolSessionData | None:
        """The entry of a symbol, or None."""
        with self._lock:
            return self._symbols.get(symbol)

    def get_active_symbols(self) -> list[str]:
        """The symbols of the active session (empty when no session is active)."""
        with self._lock:
            return list(self._symbols)

    def get_loaded_symbols(self) -> list[str]:
        with self._lock:
            return [s for s, e in self._symbols.items() if e.is_loaded]

    def get_symbols_with_derived(self) -> list[str]:
        with self._lock:
            return [s for s, e in self._symbols.items() if e.derived_intervals]

    def get_derived_intervals(self, symbol: str) -> list[str]:
        """The derived intervals of a symbol (a copy); empty for an unknown symbol."""
        with self._lock:
            entry = self._symbols.get(symbol)
            return list(entry.derived_intervals) if entry is not None else []

    def set_gaps(self, symbol: str, interval: str, gaps: list[GapInfo]) -> bool:
        """Store the gaps of an interval; False (and nothing stored) for a removed symbol."""
        with self._lock:
            entry = self._symbols.get(symbol)
            if entry is None:
                return False
            entry.bar_gaps[parse_interval(interval).name] = list(gaps)
            return True

    def set_quality(self, symbol: str, interval: str, quality: QualityReport) -> bool:
        """Store the quality of an interval; False (and nothing stored) for a removed symbol."""
        with self._lock:
            entry = self._symbols.get(symbol)
            if entry is None:
                return False
            entry.quality[parse_interval(interval).name] = quality
            return True

    def store_scores(self, entry: SymbolSessionData, interval: str,
                      gaps: Gaps | Sequence[GapInfo],
                      quality: QualityReport,
                      span: tuple[int | None, int | None]) -> bool:
        """Store gaps, quality and scored span of one interval on ``entry``, together and
        only while ``entry`` is still the registered entry of its symbol.

        A calculation binds to the entry it read: if the symbol was removed (and perhaps
        added again, as a new, empty entry) meanwhile, nothing is stored and False is
        returned, so results of the old bars never land on the new entry.
        """
        name = parse_interval(interval).name
        with self._lock:
            if self._symbols.get(entry.symbol) is not entry:
                return False
            entry.bar_gaps[name] = gaps if isinstance(gaps, Gaps) else list(gaps)
            entry.quality[name] = quality
            entry.scored_span = span
            return True

    @property
    def unknown_bars(self) -> dict[str, int]:
        """Bars that arrived for symbols not in the registry (unknown or removed), by symbol."""
        with self._lock:
            return self._unknown_counts()

    def _unknown_counts(self) -> dict[str, int]:
        """Both counts of unknown-symbol bars, merged (the caller holds the lock)."""
        out = dict(self._unknown_bars)
        for symbol, n in self._unknown_batched.items():
            out[symbol] = out.get(symbol, 0) + n
        return out

    # -- bars in --------------------------------------------------------------------------

    # ``add_bar(symbol, ts, open, high, low, close, volume)`` is inherited from the compiled
    # ``SessionCore``: 0 when stored, -1 for a symbol not registered (counted in
    # ``unknown_bars``), the fault code of a bar the ``drop`` policy dropped; under ``raise``
    # a bad bar raises ``BadBarError`` (the bar is not stored, nothing held is lost).

    def _add_bar_waiting(self, symbol: str, ts: int, open: float, high: float, low: float,
                         close: float, volume: float) -> int:
        """The slow path of add_bar: the symbol's stream is busy with a batch, which holds the
        lock; wait for it, then push."""
        with self._lock:
            self._defer += 1     # events wait until the lock is released
            try:
                result = self.add_bar(symbol, ts, open, high, low, close, volume)
            finally:
                self._defer -= 1
        if self._events_on:
            self._deliver()
        return result

    def _bad_bar(self, symbol: str, fault: int, ts: int, open: float, high: float, low: float,
                 close: float, volume: float) -> NoReturn:
        raise BadBarError(
            f"{symbol}: {FAULTS[fault]} (ts={np.datetime64(int(ts), 'ns')}Z open={open!r} "
            f"high={high!r} low={low!r} close={close!r} volume={volume!r})", -1, Fault(fault))

    def add_bars(self, symbol: str, bars: Bars | Mapping[str, Any] | None = None,
                 **columns: Any) -> int:
        """Offer a batch of base bars of ``symbol`` (a ``Bars``, a dict of columns, or the
        columns as keywords), in one compiled pass.

        Returns how many were stored.  With the ``raise`` policy the first bad bar raises
        ``BadBarError`` naming the symbol and row; the bars before it are kept.  With
        ``drop`` bad bars are dropped and counted.  With ``revise`` rows out of order, twice
        or late revise what is held (runs of rows in order still go in one compiled pass).
        The batch's events are delivered after it.  A symbol not in the registry gets nothing
        stored; its bars are counted in ``unknown_bars`` and 0 is returned.
        """
        if not isinstance(symbol, str):
            raise TypeError(f"symbol must be a string, got {type(symbol).__name__}")
        try:
            labelled = _interval_of(bars, columns)
            cols = _columns_of(bars, columns)
        except (TypeError, ValueError) as exc:
            # The column is named; say the symbol too, as a streamed bar does.
            raise type(exc)(f"{symbol}: {exc}") from None
        n = cols["ts"].shape[0]
        with self._lock:
            entry = self._symbols.get(symbol)
            if entry is None:
                self._unknown_batched[symbol] = self._unknown_batched.get(symbol, 0) + n
                return 0
            check_bars_interval(symbol, labelled, entry.base_interval)
            stream = entry._stream
            if self._revise:
                accepted, first, fault = self._push_revising(symbol, stream, cols)
            else:
                accepted, first, fault = stream.push_many(
                    cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"],
                    cols["volume"], self.on_bad == "raise")
            if accepted:
                self._note_clock(min(stream.last_ns + stream.base_ns, _I64_MAX))
            if self._events_on:
                stream.collect(symbol, self._pending)
                if self._clock >= self._next_scan:
                    self._scan_all(self._clock)
        if self._events_on:
            self._deliver()
        if first >= 0 and self.on_bad == "raise":
            raise BadBarError(f"{symbol}: row {first}: {FAULTS[fault]} "
                              f"({describe_row(cols['ts'], cols, first)}); "
                              f"{accepted} bars before it were stored", first, Fault(fault))
        return int(accepted)

    def _push_revising(self, symbol: str, stream: SymbolStream,
                       cols: dict[str, np.ndarray]) -> tuple[int, int, int]:
        """``push_many`` under the revise policy (the caller holds the lock), in one compiled
        pass: runs of rows in order as ``push_many`` takes them, a row out of order or late
        revised, another bad row dropped and counted.  Returns ``(accepted, -1, 0)``."""
        accepted = stream.push_revising(
            cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"],
            symbol, self._pending if self._events_on else None)
        return accepted, -1, 0

    # -- reads ----------------------------------------------------------------------------

    def get_bars(self, symbol: str, interval: str | None = None) -> Bars:
        """A snapshot of the bars of ``symbol`` for ``interval``."""
        with self._lock:
            entry = self._symbols.get(symbol)
            if entry is None:
                raise KeyError(f"unknown symbol {symbol!r}")
            return entry._bars(interval)

    def session_info(self) -> dict[str, Any]:
        """The session's label, calendar and windows, for exports."""
        if self._session is None or self._windows is None:
            return {"session": None, "calendar": self.calendar.name,
                    "timezone": str(self.calendar.tz.key)}
        return session_fields(str(self._session), self._windows.open_ns,
                              self._windows.close_ns, self.calendar)

    def result(self) -> RunResult:
        """What the active session holds, in the results model (one session)."""
        return live_result(self)

    def to_json(self) -> dict[str, Any]:
        """The whole session as a JSON-ready dict (an empty session is valid and empty)."""
        if self._session is None:
            info = self.session_info()
            info["symbols"] = {}
            info["unknown_bars"] = self.unknown_bars
            return info
        return live_doc(self)

    def memory(self) -> dict[str, int]:
        """Bytes allocated for bars and bytes of the bars held."""
        with self._lock:
            entries = list(self._symbols.values())
            allocated = sum(e._stream.nbytes for e in entries)
            held = sum(e._stream.held_nbytes for e in entries)
        return {"allocated": int(allocated), "held": int(held)}

    def __repr__(self) -> str:
        return (f"SessionData(session={self._session}, calendar={self.calendar.name}, "
                f"symbols={len(self._symbols)})")


_NO_CLOCK = -(2**63)
_MAX_EVENT_ERRORS = 1000    # event_errors keeps the latest ones: a callback failing on every
                            # bar must not grow memory without bound
_STALE_COUNT = -(2**62)     # SessionCore._current after the registry changed
_I64_MAX = 2**63 - 1


def _interval_of(bars: Any, columns: dict[str, Any]) -> Interval | None:
    """The interval a batch says its bars have (a ``Bars``' label, or an ``interval`` entry
    of a mapping of columns), or None when it does not say."""
    if isinstance(bars, Bars):
        return bars.interval
    label = columns.get("interval")
    if label is None and isinstance(bars, Mapping):
        label = bars.get("interval")
    return None if label is None else parse_interval(label)


def _columns_of(bars: Any, columns: dict[str, Any]) -> dict[str, np.ndarray]:
    """Coerced columns from a Bars, a mapping or keywords (validation happens in the kernel)."""
    if isinstance(bars, Bars):
        return {name: getattr(bars, name) for name in COLUMNS}
    source = dict(bars) if bars is not None else {}
    source.update(columns)
    missing = [c for c in COLUMNS if c not in source]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")
    cols = {"ts": coerce_ts(source["ts"])}
    for name in COLUMNS[1:]:
        cols[name] = coerce_float(source[name], name)
        if cols[name].shape != cols["ts"].shape:
            raise ValueError(f"column {name!r} has {cols[name].shape[0]} rows, "
                             f"ts has {cols['ts'].shape[0]}")
    return cols
