"""The engine: a run of sessions over many symbols, symbol by symbol, in a few GIL-free passes.

Every way of running a range of sessions goes through :class:`Engine`: the command line's
main job, ``sessiondata.run``, ``SessionCoordinator.run_sessions``/``replay`` of whole days
and ``backtest.run_universe``.  For each symbol the engine hands the whole date range to the
kernels at once (validate, aggregate each derived interval, find gaps, count per session) and
makes a small :class:`~sessiondata.results.SymbolResult`; the derived bars go to the sink given
to :meth:`Engine.run` as they are made (``export.run_export`` gives it the bar dataset's
writer: the one export path, for threads and for Dask).  Symbols are read and processed partition by partition (a file, or a
batch of in-memory symbols) through one executor interface (:class:`ThreadExecutor` here), so
peak memory follows the largest partition, not the universe.

The scored span.  Data rarely starts at a session's open and ends at a close.  The run is
scored from the data's first bar to the end of its last one, dataset-wide (a symbol whose data
starts later than the others' has a real gap); a symbol added in the middle of a session is
scored from then.  One rule serves every interval (see ``grid.bound_grid``): a base slot is
expected when it lies inside the span, a bucket when it holds an expected base slot, and a
bucket cut by the span counts its bars over its expected slots only.  When the data's span is
not known before reading (files), each symbol's first and last session are held back (they
are small) and finished once every partition has been read, unless the span cannot cut them:
a first session whose first bar is at its open, a last whose last bar ends at its close.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from ._core import quality as _quality
from ._core import validation as _validation
from .bars import FAULTS, BadBarError, Bars, raise_first_fault
from .calendar import Calendar, WindowSpan, Windows, extended_hours
from .kernels import (
    aggregate_on_grids,
    bound_grid,
    buckets_per_window,
    default_calendar,
    gaps_on_grid,
    make_grid,
    thread_count,
)
from .intervals import Interval, check_bars_interval, check_derivable, parse_interval
from .classify import ClassifyOptions, classify_run
from .anomalies import AnomalyParams, detect_symbol
from .results import (
    NO_BOUND_HI,
    NO_BOUND_LO,
    AnomalyTable,
    RunResult,
    SymbolResult,
    paused_gc,
)
from .results import KINDS as GAP_KINDS

_NONE_F64 = np.empty(0, np.float64)
_FAULT_OUTSIDE = 6


# -- inputs ---------------------------------------------------------------------------------


@dataclass
class Loaded:
    """A partition's bars, as its source read them."""

    bars: Mapping[str, Bars]
    # Turns (symbol, row, reason) into an error naming the file and line of that bar.
    error: Callable[[str, int, str], Exception] | None = None
    dropped: Counter = field(default_factory=Counter)
    # Per symbol, the session (datetime64[D] label) of each row outside the session's hours
    # aside (extended hours): counted per session, never scored.
    outside: Mapping[str, np.ndarray] = field(default_factory=dict)
    # The reader checked every bar against the run's calendar and base interval (prices,
    # order, session windows, slots) and kept only good ones: read once, validate once.
    checked: bool = False
    # Per symbol, the time and fault code of each row the reader dropped (``on_bad="drop"``,
    # also counted in ``dropped``): the run counts them in their sessions, as it counts the
    # bad bars of an input held in memory.
    rejected_rows: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # The calendar's windows laid out once over the partition's bars (by its reader's
    # check): each symbol's are cut from them, not laid out again.
    span: WindowSpan | None = None


@dataclass
class Source:
    """One partition of a run's input: ``load()`` reads it when a worker gets to it."""

    name: str
    load: Callable[[], Loaded]
    span: tuple[int, int] | None = None   # (first ts, last ts) when known without reading
    nbytes: int | None = None             # the size of its file on disk, when it is one

    @classmethod
    def of(cls, bars: Mapping[str, Any], name: str = "<bars>") -> "Source":
        """A partition of bars held in memory (``Bars``, or pandas/polars DataFrames: see
        :func:`as_bars`)."""
        held = {symbol: as_bars(symbol, b) for symbol, b in bars.items()}
        spans = [(int(b.ts[0]), int(b.ts[-1])) for b in held.values() if len(b)]
        span = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else None
        return cls(name, lambda: Loaded(held), span)


def as_bars(symbol: str, value: Any) -> Bars:
    """The ``Bars`` of one symbol of an in-memory input: ``Bars`` as they are; a pandas
    DataFrame (``Bars.from_pandas``: a ``ts`` column or a DatetimeIndex) or a polars one
    (``Bars.from_polars``: a ``ts`` column) read without judging its rows, which the run
    then checks like any other input (``on_bad`` decides: raise naming the row, or drop and
    count it in its session).  Anything else is a TypeError naming the symbol."""
    if isinstance(value, Bars):
        return value
    module = type(value).__module__.split(".", 1)[0]
    kind = type(value).__name__
    try:
        if module == "pandas" and kind == "DataFrame":
            return Bars.from_pandas(value, validate=False)
        if module == "polars" and kind == "DataFrame":
            return Bars.from_polars(value, validate=False)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{symbol}: {exc}") from exc
    raise TypeError(f"{symbol}: the bars must be sessiondata.Bars or a pandas/polars "
                    f"DataFrame, got {module}.{kind}" if module != "builtins" else
                    f"{symbol}: the bars must be sessiondata.Bars or a pandas/polars "
                    f"DataFrame, got {kind}")


def batches(bars: Mapping[str, Any], size: int = 64, name: str = "<bars>") -> list[Source]:
    """In-memory bars as partitions of ``size`` symbols."""
    items = list(bars.items())
    return [Source.of(dict(items[i:i + size]), name) for i in range(0, len(items), size)]


@dataclass(frozen=True)
class SymbolEvent:
    """A symbol added to or removed from a session at an instant (ns UTC)."""

    session: str      # YYYY-MM-DD
    at_ns: int
    symbol: str
    action: str       # "add" or "remove"
    note: str = ""    # how the summary says it




# -- executors ------------------------------------------------------------------------------


class Executor(Protocol):
    """Hands partitions to workers and yields what each made, in any order."""

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        ...


class ThreadExecutor:
    """Partitions on threads of this process (the kernels release the GIL).  At most
    ``threads`` partitions are in flight, so memory holds that many at once."""

    def __init__(self, threads: int | None = None):
        self.threads = max(1, threads or thread_count())

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        it = iter(items)
        if self.threads == 1:
            for item in it:
                yield fn(item)
            return
        with ThreadPoolExecutor(self.threads, thread_name_prefix="sessiondata-engine") as ex:
            pending: set[Future] = set()
            try:
                for item in it:
                    pending.add(ex.submit(fn, item))
                    if len(pending) >= self.threads:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in done:
                            yield f.result()
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        yield f.result()
            finally:
                for f in pending:
                    f.cancel()


# -- the sink of derived bars ---------------------------------------------------------------


class BarSink(Protocol):
    """Where the engine puts bars as it makes them (``export.BarDatasetWriter``)."""

    def part(self, name: str, *, separate: bool = False) -> "BarPart":
        """A part of the bars; ``separate``: in files of its own (bars written after
        later ones of the same symbols, which must not follow them in one file)."""
        ...

    def idle(self) -> None:
        """The calling thread takes no more partition (others still run theirs): the sink
        may write what it holds for this thread now."""
        ...

    def done(self) -> None:
        """No more bars come: the sink may finish its files now, beside the engine's last
        steps (assembling and classifying the run); it waits for that when it closes."""
        ...


class BarPart(Protocol):
    def add(self, symbol: str, interval: str, sessions: np.ndarray, bars: Bars) -> None:
        ...

    def close(self) -> None:
        ...


# -- the engine -----------------------------------------------------------------------------


@dataclass
class _Piece:
    """What a partition made for one symbol."""

    result: SymbolResult | None     # the sessions already finished
    held: Bars | None               # bars of the sessions held back (first and last), checked
    first_ts: int
    last_ts: int
    outside: np.ndarray | None = None
    held_rejected: dict[Any, dict[str, int]] = field(default_factory=dict)  # label -> reasons
    anomalies: dict[str, np.ndarray] | None = None   # the detectors' rows (see _detect)


class Engine:
    """Runs sessions of a calendar over many symbols (see the module's docstring).

    Parameters
    ----------
    calendar : Calendar, optional
        Defaults to ``Calendar.always()``.
    base, derived : str, iterable of str
        The base interval of the bars and the intervals derived from it.
    on_bad : {"raise", "drop"}
        A bad bar stops the run naming its file, line (or symbol, row) and fault, or is
        dropped and counted in its session's ``rejected``.
    start, end : str or datetime64[D], optional
        The first and last session to run (default: every session the data touches).
    events : iterable of SymbolEvent
        Symbols added or removed inside sessions.
    executor : Executor, optional
        Defaults to a ``ThreadExecutor`` over the cores.
    progress : callable, optional
        Called as ``progress(symbols_done, bars_done)`` after each partition.
    classify : ClassifyOptions, optional
        The thresholds and halts of the gap kinds (``classify.classify_run``, one pass over
        the assembled result; defaults documented there).
    anomalies : AnomalyParams, optional
        The anomaly detectors' kinds and thresholds (``anomalies.detect_symbol``, run on the
        worker over each symbol's whole range of base bars; default: every kind with the
        documented defaults; ``AnomalyParams(kinds=())`` turns them off).
    filled_as_missing : bool
        Score ``filled`` bars (synthetic fills: hidden gaps) as missing in the base
        interval's completeness (default False: they count as present, as bars).
    """

    def __init__(self, calendar: Calendar | None = None, *, base: str = "1m",
                 derived: Iterable[str] = ("5m", "15m", "1h"), on_bad: str = "raise",
                 start: Any = None, end: Any = None, events: Iterable[SymbolEvent] = (),
                 export_base: bool = False,
                 executor: Executor | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 classify: ClassifyOptions | None = None,
                 anomalies: AnomalyParams | None = None, filled_as_missing: bool = False):
        if on_bad not in ("raise", "drop"):
            raise ValueError(f"on_bad must be 'raise' or 'drop', got {on_bad!r}")
        self.calendar = default_calendar(calendar)
        self.base = parse_interval(base)
        if self.base.is_session:
            raise ValueError("the base interval cannot be '1d'; use an intraday interval")
        self.derived: list[Interval] = []
        for name in derived:
            iv = parse_interval(name)
            check_derivable(self.base, iv)
            if iv != self.base and iv not in self.derived:
                self.derived.append(iv)
        self.on_bad = on_bad
        self.start = None if start is None else np.datetime64(start, "D")
        self.end = None if end is None else np.datetime64(end, "D")
        self.events: dict[str, list[SymbolEvent]] = {}
        for ev in sorted(events, key=lambda e: e.at_ns):
            if ev.action not in ("add", "remove"):
                raise ValueError(f"event action must be 'add' or 'remove', got {ev.action!r}")
            self.events.setdefault(ev.symbol, []).append(ev)
        self.export_base = export_base
        self.executor = executor or ThreadExecutor()
        self.progress = progress
        self.classify = classify or ClassifyOptions()
        self.anomalies = anomalies if anomalies is not None else AnomalyParams()
        self.filled_as_missing = bool(filled_as_missing)
        self._range = self._chosen_range()
        self._lock = threading.Lock()
        self._dropped: Counter = Counter()   # bars dropped by the engine outside any session

    def __getstate__(self) -> dict[str, Any]:
        # What a worker process needs to run a partition (a Dask task carries the engine):
        # not this process's executor, progress callback nor lock.
        return {**self.__dict__, "executor": None, "progress": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def intervals(self) -> list[Interval]:
        return [self.base] + self.derived

    def _chosen_range(self) -> tuple[int, int]:
        """The instants of the sessions chosen by ``start``/``end`` (bars outside them are
        not part of the run)."""
        lo, hi = NO_BOUND_LO, NO_BOUND_HI
        week = np.timedelta64(14, "D")
        if self.start is not None:
            labels = self.calendar.sessions(self.start, self.start + week)
            if len(labels):
                lo = int(self.calendar.session_windows(labels[0]).open_ns[0])
        if self.end is not None:
            labels = self.calendar.sessions(self.end - week, self.end)
            if len(labels):
                hi = int(self.calendar.session_windows(labels[-1]).close_ns[-1])
        return lo, hi

    # -- the run ----------------------------------------------------------------------------

    def run(self, sources: Sequence[Source] | Mapping[str, Bars], *, dataset: str = "",
            span: tuple[int, int] | None = None, sink: BarSink | None = None) -> RunResult:
        """Run every session of the data (within ``start``..``end``) and return the result.

        ``sources`` are partitions, or a mapping of symbol to bars (one partition per batch
        of symbols).  ``span`` is the (first, last) bar time of the whole input, when known
        before reading: every session is then finished in one pass.  ``sink`` receives the
        derived bars (and the base bars with ``export_base``) as they are made, partition by
        partition (``export.run_export`` gives it a ``BarDatasetWriter``); the engine keeps
        none of them.
        """
        with paused_gc():
            return self._run(sources, dataset, span, sink)

    def _run(self, sources: Sequence[Source] | Mapping[str, Bars], dataset: str,
             span: tuple[int, int] | None, sink: BarSink | None) -> RunResult:
        t0 = time.perf_counter()
        if isinstance(sources, Mapping):
            sources = batches(sources)
        sources = list(sources)
        if span is None and sources and all(s.span is not None for s in sources):
            spans = [s.span for s in sources if s.span is not None]
            span = (min(s[0] for s in spans), max(s[1] for s in spans))
        if span is not None:
            span = self._clip_span(span)
        plan = None if span is None else self._plan(span)
        pieces: dict[str, _Piece] = {}
        dropped: Counter = Counter()
        self._dropped = Counter()
        done_symbols = done_bars = 0
        # Threads of this process tell the sink when one of them takes no more partition.
        turns = (_Turns(len(sources)) if sink is not None
                 and isinstance(self.executor, ThreadExecutor) and self.executor.threads > 1
                 else None)
        for part_pieces, part_dropped, nbars in self.executor.map_unordered(
                lambda src: self._partition(src, plan, sink, turns), sources):
            for symbol, piece in part_pieces.items():
                if symbol in pieces:
                    raise ValueError(f"symbol {symbol!r} appears in two partitions of the "
                                     "input (e.g. two files); merge them or give each file "
                                     "its own symbol")
                pieces[symbol] = piece
            dropped.update(part_dropped)
            done_symbols += len(part_pieces)
            done_bars += nbars
            if self.progress is not None:
                self.progress(done_symbols, done_bars)
        dropped.update(self._dropped)
        live = {s: p for s, p in pieces.items() if p.first_ts <= p.last_ts}
        for p in pieces.values():  # symbols with no bar in any session: counted run-wide
            if p.first_ts > p.last_ts and p.outside is not None and len(p.outside):
                dropped["outside the session's hours"] += len(p.outside)
        if not live:
            within = (f" within --start {self.start or '..'} .. --end {self.end or '..'}: no "
                      f"session of {self.calendar.name} there holds a bar of the data"
                      if self.start is not None or self.end is not None else "")
            raise ValueError("no bars in the run" + within + (
                f" ({sum(dropped.values())} rows dropped)" if dropped else ""))
        if plan is None:
            span = (min(p.first_ts for p in live.values()),
                    max(p.last_ts for p in live.values()))
            plan = self._plan(span)
            dropped.update(self._finish_held(live, plan, sink))
        if sink is not None:
            sink.done()   # its last rows are written while the run is assembled
        order = sorted(live)
        windows = _within_spans(plan.windows, [live[s].result for s in order])
        parts = [self._align(live[s].result, windows) for s in order]
        for part in parts:
            self._count_outside(part, live[part.symbol].outside, windows, dropped)
        result = RunResult.assemble(self.calendar, windows, self.base.name,
                                    [d.name for d in self.derived], parts,
                                    dataset=dataset, dropped=dict(dropped),
                                    span=(plan.lo, plan.hi))
        for symbol_events in self.events.values():
            for ev in symbol_events:
                k = _index_of(windows.sessions, ev.session)
                if k >= 0 and ev.note:
                    result.notes[k].append(ev.note)
        classify_run(result, self.classify)
        if self.anomalies.kinds:
            result.anomalies = self._anomaly_table(result, live)
            if self.filled_as_missing:
                _filled_as_missing(result)
        result.seconds = time.perf_counter() - t0
        return result

    def _clip_span(self, span: tuple[int, int]) -> tuple[int, int]:
        lo, hi = self._range
        return max(span[0], lo), min(span[1], hi)

    def _plan(self, span: tuple[int, int]) -> "_Plan":
        lo, hi = span[0], span[1] + self.base.ns
        windows = self.calendar.windows(lo, hi)
        windows = _select(windows, self.start, self.end)
        if windows.n_sessions == 0:
            raise ValueError(f"no session of {self.calendar.name} between "
                             f"{np.datetime64(lo, 'ns')}Z and {np.datetime64(hi, 'ns')}Z"
                             + (f" within --start {self.start} .. --end {self.end}"
                                if self.start is not None or self.end is not None else ""))
        return _Plan(windows, lo, hi)

    # -- one partition ----------------------------------------------------------------------

    def _partition(self, source: Source, plan: "_Plan | None", sink: BarSink | None,
                   turns: "_Turns | None" = None):
        if turns is not None:
            turns.begin()
        loaded = source.load()
        loaded.dropped = Counter(loaded.dropped)  # this run's count, whoever else holds it
        out: dict[str, _Piece] = {}
        nbars = 0
        part = sink.part(source.name) if sink is not None else None
        try:
            for symbol, bars in loaded.bars.items():
                nbars += len(bars)
                out[symbol] = self._symbol(symbol, bars, loaded, plan, part)
        finally:
            if part is not None:
                part.close()
        if turns is not None and turns.end() and sink is not None:
            sink.idle()   # its bars are written beside the others' last partitions
        return out, loaded.dropped, nbars

    def _symbol(self, symbol: str, bars: Bars, loaded: Loaded, plan: "_Plan | None",
                part: BarPart | None) -> _Piece:
        rows = None
        lo, hi = self._range
        if len(bars) and (bars.ts[0] < lo or bars.ts[-1] >= hi):
            a, b = np.searchsorted(bars.ts, [lo, hi])
            rows = np.arange(a, b)
            bars = bars[int(a):int(b)]
        check_bars_interval(symbol, bars.interval, self.base)
        outside = loaded.outside.get(symbol)
        windows = None
        if not loaded.checked and len(bars):
            bars, rows, outside, windows = self._set_aside_hours(bars, rows, outside)
        if not len(bars):
            return _Piece(None, None, NO_BOUND_HI, NO_BOUND_LO, outside)
        first, last = int(bars.ts[0]), int(bars.ts[-1])
        if windows is None:   # (else laid out over these very bars just now)
            windows = WindowSpan.of(self.calendar, loaded.span).windows(
                first, last + self.base.ns)
        rejected: dict[int, dict[str, int]] = {}
        if loaded.checked and symbol in loaded.rejected_rows:
            rejected = self._reader_rejects(symbol, loaded, windows)
        if windows.n_sessions == 0:  # every bar lies outside every session
            if self.on_bad == "raise":
                raise self._error(symbol, 0, rows, loaded,
                                  f"{symbol}: row 0: outside every session window "
                                  f"(ts={np.datetime64(first, 'ns')}Z) on calendar "
                                  f"{self.calendar.name}")
            # Counted with the partition's own drops: they come back with its result from
            # whichever thread or process ran it.
            loaded.dropped[FAULTS[_FAULT_OUTSIDE]] += len(bars)
            return _Piece(None, None, NO_BOUND_HI, NO_BOUND_LO, outside)
        if plan is not None:
            windows = _select(windows, self.start, self.end)
            result = self._process(symbol, bars, rows, windows, plan.lo, plan.hi, loaded,
                                   part, detect=True, rejected=rejected)
            return _Piece(result, None, first, last, outside,
                          anomalies=getattr(result, "_anomalies", None))
        # The data's span is not known yet: finish the middle sessions now, hold back the
        # first and the last (they may be cut by the span).  All the bars are checked now,
        # while the source can still say where a bad one came from.
        if not loaded.checked:
            bars, rows = self._validated(symbol, bars, rows, windows, rejected, loaded)
        n_k = windows.n_sessions
        # The detectors see the symbol's whole range at once (profiles, levels, splits).
        found = self._detect(bars, windows)
        # An edge session the span cannot cut is finished now too: the span starts at the
        # first bar of all the data (<= this symbol's ``first``) and ends after the last
        # (>= ``last`` + base), so it bounds the scoring of no session that opens at
        # ``first`` or closes at ``last`` + base (``_process``: ``since`` is set where the
        # span starts after the open, ``until`` where it ends before the close).  Sessions
        # chosen by label (``--start``/``--end``) are picked among the held ones: held; so
        # is an edge whose first (last) bar was rejected (the held sessions are those of
        # the held bars: ``_finish_held``).
        free = self.start is None and self.end is None and len(bars) > 0
        k_lo = 0 if (free and int(bars.ts[0]) == first
                     and first <= int(windows.session_open_ns[0])) else 1
        k_hi = n_k if (free and int(bars.ts[-1]) == last
                       and last + self.base.ns >= int(windows.session_close_ns[-1])) else n_k - 1
        if k_hi <= k_lo:
            held_rejected = {windows.sessions[k]: r for k, r in rejected.items()}
            return _Piece(None, bars.copy(), first, last, outside, held_rejected, found)
        a = int(np.searchsorted(bars.ts, windows.session_close_ns[0])) if k_lo else 0
        b = (int(np.searchsorted(bars.ts, windows.session_open_ns[-1])) if k_hi < n_k
             else len(bars))
        middle = windows if (k_lo, k_hi) == (0, n_k) else \
            _sub_windows(windows, np.arange(k_lo, k_hi))
        result = self._process(symbol, bars[a:b], None, middle, NO_BOUND_LO, NO_BOUND_HI,
                               loaded, part, checked=True)
        for k in range(k_lo, k_hi):
            if k in rejected:
                result.rejected[k - k_lo] = rejected[k]
        edges = [k for k in (0, n_k - 1) if not k_lo <= k < k_hi]
        held = Bars.concat([bars[:a], bars[b:]]) if edges else None
        held_rejected = {windows.sessions[k]: rejected[k] for k in edges if k in rejected}
        if held is not None and not len(held) and not held_rejected:
            held = None   # no bar and no rejection: no session to finish
        return _Piece(result, held, first, last, outside, held_rejected, found)

    def _finish_held(self, pieces: dict[str, _Piece], plan: "_Plan",
                     sink: BarSink | None) -> Counter:
        """Finish the held-back sessions now that the data's span is known; returns the
        rejected rows of held sessions outside the run's (counted run-wide)."""
        part = sink.part("edges", separate=True) if sink is not None else None
        held_dropped: Counter = Counter()
        # The windows of a span of held sessions: most symbols share theirs (a dump taken
        # mid-session cuts every symbol's last session), so each span is laid out once.
        spans: dict[tuple[int, int], Windows] = {}

        def finish(symbol: str) -> None:
            p = pieces[symbol]
            if p.held is None:
                return
            # The held sessions: those of the held bars and those whose every bar was
            # rejected (no bar left to show them, but their rejections must be counted).
            los, his = [], []
            if len(p.held):
                los.append(int(p.held.ts[0]))
                his.append(int(p.held.ts[-1]) + self.base.ns)
            for label in p.held_rejected:
                w = self.calendar.session_windows(label)
                los.append(int(w.session_open_ns[0]))
                his.append(int(w.session_close_ns[-1]))
            if not los:
                p.held = None
                return
            span = (min(los), max(his))
            windows = spans.get(span)
            if windows is None:
                windows = spans[span] = _select(self.calendar.windows(*span), self.start,
                                                self.end)
            if p.result is not None and p.result.sessions is not None:
                # only the first and last session are held (the done ones are sorted)
                done = p.result.sessions
                if len(done):
                    at = np.minimum(np.searchsorted(done, windows.sessions), len(done) - 1)
                    kept = done[at] != windows.sessions
                    if not kept.all():
                        windows = _sub_windows(windows, np.flatnonzero(kept))
            res = self._process(symbol, p.held, None, windows, plan.lo, plan.hi,
                                Loaded({}), part, checked=True)
            for label, reasons in p.held_rejected.items():
                k = _index_of(windows.sessions, str(label))
                if k >= 0:
                    res.rejected[k] = reasons
                else:   # outside start..end: counted with the run, never lost
                    for reason, n in reasons.items():
                        held_dropped[reason] += n
            p.result = res if p.result is None else _merge(p.result, res)
            p.held = None

        try:
            # One after the other, here: ``finish`` fills ``pieces``, and each symbol's held
            # bars are at most two sessions', so its work is the per-call Python and NumPy
            # around small kernels, under the GIL; on two threads it took longer than on
            # one (100 held symbols: 0.19 s against 0.12 s).
            for symbol in list(pieces):
                finish(symbol)
        finally:
            if part is not None:
                part.close()
        return held_dropped

    # -- one symbol over a run of sessions --------------------------------------------------

    def _process(self, symbol: str, bars: Bars, rows: np.ndarray | None, windows: Windows,
                 lo: int, hi: int, loaded: Loaded, part: BarPart | None,
                 checked: bool = False, detect: bool = False,
                 rejected: dict[int, dict[str, int]] | None = None) -> SymbolResult:
        """Every pass over one symbol's bars in ``windows``, scored inside ``[lo, hi)``;
        ``rejected``: bad bars already counted per session (by the reader)."""
        n_k = windows.n_sessions
        opens, closes = windows.session_open_ns, windows.session_close_ns
        member = np.ones(n_k, bool)
        since = np.where(lo > opens, lo, NO_BOUND_LO).astype(np.int64)
        until = np.where(hi < closes, hi, NO_BOUND_HI).astype(np.int64)
        unknown: dict[int, int] = {}
        rejected = {} if rejected is None else rejected
        keep = None
        for ev in self.events.get(symbol, ()):
            k = _index_of(windows.sessions, ev.session)
            if k < 0:
                continue
            a, b = int(opens[k]), int(closes[k])
            keep = np.ones(len(bars), bool) if keep is None else keep
            if ev.action == "add":
                since[k] = max(int(since[k]), ev.at_ns)
                i, j = np.searchsorted(bars.ts, [a, ev.at_ns])
            else:
                member[k] = False
                i, j = np.searchsorted(bars.ts, [ev.at_ns, b])
                keep[np.searchsorted(bars.ts, a):i] = False  # dropped with the symbol
            if j > i:
                unknown[k] = unknown.get(k, 0) + int(j - i)
            keep[i:j] = False
        if keep is not None and not keep.all():
            bars = bars.take(keep)
            rows = None if rows is None else rows[keep]
        if not (checked or loaded.checked):
            bars, rows = self._validated(symbol, bars, rows, windows, rejected, loaded)
        # Scored bounds of every window, and of every session (for the session interval).
        sid = windows.session_ids
        s_lo = np.where(member, np.maximum(since, opens), NO_BOUND_HI)
        s_hi = np.where(member, np.minimum(until, closes), NO_BOUND_LO)
        w_lo, w_hi = s_lo[sid], s_hi[sid]
        counts: dict[str, np.ndarray] = {}
        gaps: dict[str, tuple[np.ndarray, ...]] = {}
        grids = [bound_grid(make_grid(windows, iv, self.base), windows,
                            s_lo if iv.is_session else w_lo, s_hi if iv.is_session else w_hi)
                 for iv in self.intervals]
        derived: dict[str, tuple[list[np.ndarray], int]] = {}
        for iv, grid in zip(self.intervals, grids):
            if iv == self.base:
                ts, cov, out = bars.ts, _NONE_F64, bars
            else:
                if not derived:   # every derived interval in one pass over the bars
                    made = aggregate_on_grids(bars, grids[1:], self.calendar, self.derived)
                    derived = {d.name: r for d, r in zip(self.derived, made)}
                cols, m = derived[iv.name]
                ts, cov = cols[0][:m], cols[7][:m]
                out = Bars(*(c[:m] for c in cols[:6]), count=cols[6][:m], coverage=cov,
                           interval=iv, validate=False, has_volume=bars.has_volume)
            table = np.zeros((5, n_k), np.float64)
            present = np.empty(n_k, np.int64)
            covered = np.empty(n_k, np.float64)
            partial = np.empty(n_k, np.int64)
            _quality.score_groups(ts, cov, opens, present, covered, partial)
            expected = np.bincount(grid.session, weights=buckets_per_window(grid),
                                   minlength=n_k)
            table[SymbolResult.BARS] = present
            table[SymbolResult.EXPECTED] = expected
            table[SymbolResult.PRESENT] = present
            table[SymbolResult.PARTIAL] = partial
            table[SymbolResult.COVERED] = covered
            counts[iv.name] = table
            try:
                g = gaps_on_grid(ts, grid, parts=1)
            except BadBarError as exc:  # a bar the calendar check let through
                raise self._error(symbol, exc.row, rows, loaded, str(exc)) from None
            w = np.searchsorted(grid.open_ns, g.start_ns, side="right") - 1
            gaps[iv.name] = (grid.session[w], g.start_ns, g.end_ns, g.bar_count)
            if part is not None and len(ts) and (iv != self.base or self.export_base):
                part.add(symbol, iv.name, _session_labels(windows, ts, present), out)
        result = SymbolResult(symbol, member, since, until, counts, gaps, unknown, rejected,
                              sessions=windows.sessions)
        if detect:  # the checked bars of the symbol's whole range (issue 22)
            result._anomalies = self._detect(bars, windows)  # type: ignore[attr-defined]
        return result

    # -- anomalies (issue 22) ---------------------------------------------------------------

    def _detect(self, bars: Bars, windows: Windows) -> dict[str, np.ndarray] | None:
        """The anomaly detectors over one symbol's checked base bars, as rows per session
        (``session`` a datetime64[D] label; see ``results.AnomalyTable``); None when off or
        nothing is found."""
        if not self.anomalies.kinds or not len(bars):
            return None
        found = detect_symbol(bars, windows, self.base.ns, self.anomalies,
                              tz=self.calendar.tz)
        if not len(found):
            return None
        return _rows_per_session(found, bars.ts, windows, self.base.ns)

    def _anomaly_table(self, result: RunResult,
                       pieces: Mapping[str, _Piece]) -> AnomalyTable:
        """The run's anomaly columns from each symbol's rows (sessions as labels)."""
        parts: list[dict[str, np.ndarray]] = []
        for s, symbol in enumerate(result.symbols):
            rows = pieces[symbol].anomalies
            if rows is None:
                continue
            labels = rows["session"]
            k = np.searchsorted(result.sessions, labels)
            k_ok = np.minimum(k, len(result.sessions) - 1)
            ok = (k < len(result.sessions)) & (result.sessions[k_ok] == labels)
            if not ok.all():  # every session of a symbol is one of the run's
                raise AssertionError(f"{symbol}: anomaly in session {labels[~ok][0]} outside "
                                     "the run's sessions")
            parts.append({**rows, "session": k.astype(np.int64),
                          "symbol": np.full(len(k), s, np.int64)})
        cols = {c: np.concatenate([p[c] for p in parts]) if parts else
                np.empty(0, np.int8 if c in ("kind", "gap_kind") else
                         np.float64 if c in ("value", "baseline", "score") else np.int64)
                for c in AnomalyTable.COLUMNS}
        table = AnomalyTable(self.base.name, **cols,
                             params={f: getattr(self.anomalies, f)
                                     for f in self.anomalies.__dataclass_fields__})
        o = table.order()
        for c in AnomalyTable.COLUMNS:
            setattr(table, c, getattr(table, c)[o])
        return table

    def _set_aside_hours(self, bars: Bars, rows: np.ndarray | None,
                         outside: np.ndarray | None
                         ) -> tuple[Bars, np.ndarray | None, np.ndarray | None,
                                    Windows | None]:
        """Bars not yet checked by a reader (bars in memory): those on a session's day but
        outside its hours (pre- and after-market) are set aside and counted per session, as
        the file readers set them aside, rather than refused as bad bars.  The windows laid out over the bars come back when
        none was set aside (None otherwise: the bars' range changed)."""
        ts = bars.ts
        windows = self.calendar.windows(int(ts[0]), int(ts[-1]) + self.base.ns)
        k = np.searchsorted(windows.open_ns, ts, side="right") - 1
        inside = (k >= 0) & (ts < windows.close_ns[np.maximum(k, 0)]) if len(windows) \
            else np.zeros(len(ts), bool)
        if inside.all():
            return bars, rows, outside, windows
        ext, labels = extended_hours(ts, ~inside, self.calendar)
        if not ext.any():
            return bars, rows, outside, windows
        keep = ~ext
        rows = np.flatnonzero(keep) if rows is None else rows[keep]
        if outside is not None and len(outside):
            labels = np.sort(np.concatenate([np.asarray(outside, "datetime64[D]"), labels]))
        return bars.take(keep), rows, labels, None

    def _reader_rejects(self, symbol: str, loaded: Loaded,
                        windows: Windows) -> dict[int, dict[str, int]]:
        """The rows of ``symbol`` the reader dropped, counted per session of ``windows`` by
        reason as :meth:`_validated` counts the bad bars of an input in memory (the same
        session for the same bar), and taken out of the partition's run-wide count.  Rows
        outside the run's range (``start``/``end``) are not part of the run, as bars there
        are not; with no session to count them in they stay run-wide."""
        ts, codes = loaded.rejected_rows[symbol]
        lo, hi = self._range
        inside = (ts >= lo) & (ts < hi)
        out_of_run = Counter(FAULTS.get(c, "bad bar") for c in codes[~inside].tolist())
        loaded.dropped.subtract(out_of_run)
        ts, codes = ts[inside], codes[inside]
        rejected: dict[int, dict[str, int]] = {}
        if not len(ts) or windows.n_sessions == 0:
            return rejected
        opens = windows.session_open_ns
        # The windows span the symbol's good bars: a dropped row beyond them (a date far
        # ahead, say) has no session of this run to be counted in; it stays run-wide.
        within = (ts >= opens[0]) & (ts < windows.session_close_ns[-1])
        ts, codes = ts[within], codes[within]
        k_bad = np.clip(np.searchsorted(opens, ts, side="right") - 1, 0, None)
        for k, code in zip(k_bad.tolist(), codes.tolist()):
            reasons = rejected.setdefault(k, {})
            reason = FAULTS.get(code, "bad bar")
            reasons[reason] = reasons.get(reason, 0) + 1
            loaded.dropped[reason] -= 1
        loaded.dropped += Counter()   # (drops the reasons counted to zero)
        return rejected

    def _validated(self, symbol: str, bars: Bars, rows: np.ndarray | None, windows: Windows,
                   rejected: dict[int, dict[str, int]],
                   loaded: Loaded) -> tuple[Bars, np.ndarray | None]:
        """The bars checked against the windows: the first bad one raises (naming its file
        and line when the source knows them), or bad ones are dropped and counted per
        session by reason."""
        if not len(bars):
            return bars, rows
        raising = self.on_bad == "raise"
        faults = np.empty(0 if raising else len(bars), np.uint8)
        first, n_by_fault = _validation.validate_bars(
            bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume,
            windows.open_ns, windows.close_ns, self.base.ns, faults, raising,
            volume_optional=not bars.has_volume)
        if first < 0:
            return bars, rows
        if raising:
            fault = next(code for code, c in enumerate(n_by_fault) if c)
            try:
                raise_first_fault(bars.ts, bars.columns(), first, fault,
                                  f"{symbol} on calendar {self.calendar.name}")
            except BadBarError as exc:
                raise self._error(symbol, first, rows, loaded, str(exc)) from None
        bad = faults != 0
        opens = windows.session_open_ns
        k_bad = np.clip(np.searchsorted(opens, bars.ts[bad], side="right") - 1, 0, None)
        for k, code in zip(k_bad.tolist(), faults[bad].tolist()):
            reasons = rejected.setdefault(k, {})
            reason = FAULTS.get(code, "bad bar")
            reasons[reason] = reasons.get(reason, 0) + 1
        return bars.take(~bad), (None if rows is None else rows[~bad])

    def _error(self, symbol: str, row: int, rows: np.ndarray | None, loaded: Loaded,
               reason: str) -> Exception:
        """The error of a bad bar: naming its file and line when the source knows them,
        else its symbol and row."""
        original = int(rows[row]) if rows is not None and 0 <= row < len(rows) else row
        if loaded.error is not None and original >= 0:
            return loaded.error(symbol, original, reason)
        return BadBarError(reason if reason.startswith(f"{symbol}") else f"{symbol}: {reason}",
                           original, 0)

    @staticmethod
    def _count_outside(result: SymbolResult, labels: np.ndarray | None, windows: Windows,
                       dropped: Counter) -> None:
        """Rows the reader set aside as outside the session's hours (extended hours), counted
        in the ``rejected`` of the session they fall on (or run-wide, where the symbol is not
        in that session)."""
        if labels is None or not len(labels):
            return
        reason = "outside the session's hours"
        days, counts = np.unique(np.asarray(labels, "datetime64[D]"), return_counts=True)
        ks = np.searchsorted(windows.sessions, days)
        for day, k, n in zip(days, ks.tolist(), counts.tolist()):
            if k < len(windows.sessions) and windows.sessions[k] == day and result.member[k]:
                reasons = result.rejected.setdefault(k, {})
                reasons[reason] = reasons.get(reason, 0) + n
            else:
                dropped[reason] += n

    @staticmethod
    def _align(result: SymbolResult | None, windows: Windows) -> SymbolResult:
        """The symbol's result over the run's sessions (not a member where it had none)."""
        assert result is not None
        return result.over(windows.sessions)


class _Turns:
    """The partitions of a run on this process's threads: how many have not begun and how
    many are running.  A thread whose partition ends when every partition has begun, while
    another still runs, takes no more partition: it is idle until the run's end."""

    def __init__(self, partitions: int):
        self._lock = threading.Lock()
        self._unstarted = partitions
        self._running = 0

    def begin(self) -> None:
        with self._lock:
            self._unstarted -= 1
            self._running += 1

    def end(self) -> bool:
        """This thread's partition is over; whether the thread is now idle for good while
        others still run (the last one to end is not: the run's tail follows it)."""
        with self._lock:
            self._running -= 1
            return self._unstarted <= 0 and self._running > 0


@dataclass
class _Plan:
    windows: Windows   # every session of the run
    lo: int            # the data's first bar
    hi: int            # the end of its last bar


def _session_labels(windows: Windows, ts: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The session label of each bar: its session's label repeated as many times as the
    session holds bars (``present``, counted from each session's open by ``score_groups``),
    when that accounts for every bar; else the session whose open is the last at or
    before the bar."""
    if int(present.sum()) == len(ts):
        return np.repeat(windows.sessions, present)
    return windows.sessions[np.searchsorted(windows.session_open_ns, ts, side="right") - 1]


def _index_of(labels: np.ndarray, label: str) -> int:
    k = int(np.searchsorted(labels, np.datetime64(label, "D")))
    return k if k < len(labels) and labels[k] == np.datetime64(label, "D") else -1


def _within_spans(windows: Windows, results: Sequence[SymbolResult | None]) -> Windows:
    """The run's sessions that lie inside some symbol's span (from its first bar to its
    last): a session outside every symbol's span holds nothing and is no part of the run (a
    folder of SPY 2013 and GOOG 2015 has no 2014); inside a symbol's span an empty session
    is a gap."""
    own = [r.sessions for r in results if r is not None and r.sessions is not None]
    if not own:
        return windows
    kept = np.isin(windows.sessions, np.concatenate(own))
    return windows if kept.all() else _sub_windows(windows, np.flatnonzero(kept))


def _sub_windows(windows: Windows, sessions: np.ndarray) -> Windows:
    """The windows of some of the sessions (indices, increasing)."""
    chosen = np.zeros(windows.n_sessions, bool)
    chosen[sessions] = True
    pick = chosen[windows.session_ids]
    ids = windows.session_ids[pick]
    renumber = np.searchsorted(sessions, ids)
    return Windows(windows.open_ns[pick], windows.close_ns[pick], renumber,
                   windows.sessions[sessions])


def _select(windows: Windows, start: np.datetime64 | None, end: np.datetime64 | None) -> Windows:
    """The windows of the sessions labelled within ``start``..``end``."""
    if start is None and end is None:
        return windows
    labels = windows.sessions
    ok = np.ones(len(labels), bool)
    if start is not None:
        ok &= labels >= start
    if end is not None:
        ok &= labels <= end
    return _sub_windows(windows, np.flatnonzero(ok))


def _merge(a: SymbolResult, b: SymbolResult) -> SymbolResult:
    """Two results of one symbol over disjoint sessions, as one."""
    assert a.sessions is not None and b.sessions is not None
    labels = np.concatenate([a.sessions, b.sessions])
    order = np.argsort(labels, kind="stable")
    pos = np.empty_like(order)
    pos[order] = np.arange(len(order))
    na = len(a.sessions)

    def cat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.concatenate([x, y], axis=-1)[..., order]

    gaps = {}
    for name in a.gaps:
        ga, gb = a.gaps[name], b.gaps[name]
        sess = np.concatenate([pos[ga[0]], pos[gb[0] + na]])
        cols = [np.concatenate([x, y]) for x, y in zip(ga[1:], gb[1:])]
        o = np.lexsort((cols[0], sess))
        gaps[name] = (sess[o],) + tuple(c[o] for c in cols)
    unknown = {int(pos[k]): n for k, n in a.unknown.items()}
    unknown.update({int(pos[k + na]): n for k, n in b.unknown.items()})
    rejected = {int(pos[k]): r for k, r in a.rejected.items()}
    rejected.update({int(pos[k + na]): r for k, r in b.rejected.items()})
    return SymbolResult(a.symbol, cat(a.member, b.member), cat(a.since_ns, b.since_ns),
                        cat(a.until_ns, b.until_ns),
                        {n: cat(a.counts[n], b.counts[n]) for n in a.counts}, gaps, unknown,
                        rejected, sessions=labels[order])


#: A ``filled`` run is a hidden gap of kind ``no_trade`` when at least this share of the
#: symbol's bars at that time of day are zero-volume fills elsewhere (the detector's
#: ``baseline``: a quiet market, as Binance's bars for minutes without trades), else
#: ``outage`` (docs/anomalies.md, "In a run").
FILLED_QUIET_SHARE = 0.5


def _rows_per_session(found: Any, ts: np.ndarray, windows: Windows,
                      step_ns: int) -> dict[str, np.ndarray] | None:
    """Anomalies as rows per session: one spanning several sessions becomes a row per
    session holding bars of it (its range there from the first of them to the end of the
    last), numbered by ``part``; sessions without a bar of it get no row."""
    opens, closes = windows.session_open_ns, windows.session_close_ns
    n = len(found)
    k0 = np.searchsorted(opens, found.start_ns, side="right") - 1
    k1 = np.searchsorted(opens, found.end_ns - 1, side="right") - 1
    k0 = np.maximum(k0, 0)
    k1 = np.maximum(k1, k0)
    reps = k1 - k0 + 1
    idx = np.repeat(np.arange(n), reps)
    k = k0[idx] + (np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps))
    single = reps[idx] == 1
    lo = np.maximum(found.start_ns[idx], opens[k])
    hi = np.minimum(found.end_ns[idx], closes[k])
    i0 = np.searchsorted(ts, lo)
    i1 = np.searchsorted(ts, hi)
    count = np.where(single, found.bar_count[idx], i1 - i0)
    keep = single | (count > 0)
    idx, k, i0, i1, count, single = idx[keep], k[keep], i0[keep], i1[keep], count[keep],         single[keep]
    if not len(idx):
        return None
    start = np.where(single, found.start_ns[idx], ts[np.minimum(i0, len(ts) - 1)])
    end = np.where(single, found.end_ns[idx], ts[np.maximum(i1 - 1, 0)] + step_ns)
    new = np.r_[True, idx[1:] != idx[:-1]]
    first_row = np.flatnonzero(new)
    part = np.arange(len(idx)) - np.repeat(first_row, np.diff(np.r_[first_row, len(idx)]))
    parts = np.bincount(idx, minlength=n)[idx]
    kind = found.kind[idx].astype(np.int8)
    filled = kind == 0  # anomalies.FILLED: a hidden gap, with a gap kind
    gap_kind = np.where(filled, np.where(found.baseline[idx] >= FILLED_QUIET_SHARE,
                                         GAP_KINDS.index("no_trade"),
                                         GAP_KINDS.index("outage")), -1).astype(np.int8)
    return {"session": windows.sessions[k], "kind": kind, "start": start.astype(np.int64),
            "end": end.astype(np.int64), "bar_count": count.astype(np.int64),
            "value": found.value[idx], "baseline": found.baseline[idx],
            "score": found.score[idx], "ref": found.ref_ns[idx], "part": part.astype(np.int64),
            "parts": parts.astype(np.int64), "gap_kind": gap_kind}


def _filled_as_missing(result: RunResult) -> None:
    """``filled_as_missing``: the base interval's present bars and coverage less the
    ``filled`` bars of each symbol and session (completeness scores them as missing)."""
    a = result.anomalies
    t = result.intervals[result.base]
    if a is None or not len(a):
        return
    m = a.kind == 0
    n_s, n_k = t.bars.shape
    bars = np.bincount(a.symbol[m] * n_k + a.session[m], weights=a.bar_count[m],
                       minlength=n_s * n_k).astype(np.int64).reshape(n_s, n_k)
    t.present = np.maximum(t.present - bars, 0)
    t.covered = np.maximum(t.covered - bars, 0.0)
    if t.lost is not None:  # filled runs of kind outage are lost data, as outage gaps are
        m &= a.gap_kind == GAP_KINDS.index("outage")
        t.lost = t.lost + np.bincount(a.symbol[m] * n_k + a.session[m],
                                      weights=a.bar_count[m], minlength=n_s * n_k
                                      ).astype(np.int64).reshape(n_s, n_k)
