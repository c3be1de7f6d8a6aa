"""The results model: what a run (or one live session) found, per session x symbol x interval.

Everything is columnar.  A :class:`RunResult` holds, per interval, an :class:`IntervalTable`
of arrays shaped ``(symbols, sessions)`` (bars, expected, present, partial, coverage sum) and
the gaps of every symbol and session as flat arrays; per symbol and session whether the
symbol was in the session and the span that was scored; per session the symbols that arrived
unknown and the events of the session.  The engine builds one from per-symbol pieces
(:class:`SymbolResult`); a live session builds one with a single session at ``stop()``.

Every output reads this model and the model imports none of them: the session JSON
(``documents``), the bar and gap datasets (``export``), the one summary (``summary``), the
report and ``sessiondata validate``.  The model owns the columns the analyses fill (the gap
kinds of ``classify``) and the two formulas every reader uses (:func:`quality_score`,
:func:`data_quality`).  Objects (``GapInfo``, ``QualityReport``) are handed out on access.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence, overload

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from .calendar import Calendar, Windows

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_UTC = _dt.timezone.utc
NO_BOUND_LO = int(np.iinfo(np.int64).min)
NO_BOUND_HI = int(np.iinfo(np.int64).max)


def local_time(ns: int, tz: Any) -> _dt.datetime:
    """A UTC nanosecond instant as a timezone-aware datetime in ``tz`` (microseconds)."""
    return (_EPOCH + _dt.timedelta(microseconds=ns // 1000)).astimezone(tz)


# -- gaps ---------------------------------------------------------------------------------------


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


class Gaps(Sequence[GapInfo]):
    """Gaps as columns: ``start_ns``, ``end_ns`` (exclusive) and ``bar_count`` arrays.

    A sequence of :class:`GapInfo`: indexing or iterating makes the objects on access, so
    finding gaps costs what the arrays cost.  ``expected``, ``present`` and ``missing`` are
    the slot counts the gaps came from.
    """

    __slots__ = ("start_ns", "end_ns", "bar_count", "tz", "expected", "present", "missing")

    def __init__(self, start_ns: np.ndarray, end_ns: np.ndarray, bar_count: np.ndarray, *,
                 tz: Any = None, expected: int = 0, present: int = 0, missing: int | None = None):
        self.start_ns = np.asarray(start_ns, np.int64)
        self.end_ns = np.asarray(end_ns, np.int64)
        self.bar_count = np.asarray(bar_count, np.int64)
        if not self.start_ns.shape == self.end_ns.shape == self.bar_count.shape:
            raise ValueError("start_ns, end_ns and bar_count differ in length")
        self.tz = tz if tz is not None else _UTC
        self.expected = int(expected)
        self.present = int(present)
        self.missing = int(self.bar_count.sum()) if missing is None else int(missing)

    @classmethod
    def empty(cls, tz: Any = None) -> "Gaps":
        z = np.empty(0, np.int64)
        return cls(z, z, z, tz=tz)

    def __len__(self) -> int:
        return int(self.start_ns.shape[0])

    @overload
    def __getitem__(self, index: int) -> GapInfo: ...

    @overload
    def __getitem__(self, index: slice) -> "Gaps": ...

    def __getitem__(self, index: int | slice) -> "GapInfo | Gaps":
        if isinstance(index, slice):
            return Gaps(self.start_ns[index], self.end_ns[index], self.bar_count[index],
                        tz=self.tz)
        i = range(len(self))[index]  # IndexError and negative indices as a list has them
        return GapInfo(local_time(int(self.start_ns[i]), self.tz),
                       local_time(int(self.end_ns[i]), self.tz), int(self.bar_count[i]))

    def __iter__(self) -> Iterator[GapInfo]:
        tz = self.tz
        for s, e, c in zip(self.start_ns.tolist(), self.end_ns.tolist(),
                           self.bar_count.tolist()):
            yield GapInfo(local_time(s, tz), local_time(e, tz), c)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Gaps):
            return (np.array_equal(self.start_ns, other.start_ns)
                    and np.array_equal(self.end_ns, other.end_ns)
                    and np.array_equal(self.bar_count, other.bar_count))
        if isinstance(other, (list, tuple)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @property
    def total_missing(self) -> int:
        """Bars missing in all the gaps."""
        return int(self.bar_count.sum())

    def to_dicts(self) -> list[dict[str, Any]]:
        """The JSON ``ranges``: exchange-local times of day and bar counts."""
        starts, ends = times_of_day(self.start_ns, self.end_ns, self.tz)
        return [{"start_time": a, "end_time": b, "bar_count": c}
                for a, b, c in zip(starts, ends, self.bar_count.tolist())]

    def to_arrow(self) -> "pa.Table":
        import pyarrow as pa

        unit = pa.timestamp("ns", tz="UTC")
        return pa.table({"start": pa.array(self.start_ns, unit),
                         "end": pa.array(self.end_ns, unit),
                         "bar_count": pa.array(self.bar_count)})

    def to_pandas(self) -> "pd.DataFrame":
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Gaps.to_pandas needs pandas: pip install "
                              "'sessiondata[pandas]'") from None
        tz = getattr(self.tz, "key", "UTC")
        return pd.DataFrame({
            "start_time": pd.DatetimeIndex(self.start_ns.view("datetime64[ns]"))
            .tz_localize("UTC").tz_convert(tz),
            "end_time": pd.DatetimeIndex(self.end_ns.view("datetime64[ns]"))
            .tz_localize("UTC").tz_convert(tz),
            "bar_count": self.bar_count,
        })

    def __repr__(self) -> str:
        if len(self) <= 6:
            return "[" + ", ".join(repr(g) for g in self) + "]"
        head = ", ".join(repr(self[i]) for i in range(3))
        return f"Gaps({len(self)} gaps, {self.total_missing} bars: [{head}, ...])"


_TIME_OF_DAY: list[str] | None = None


def _table_of_times() -> list[str]:
    global _TIME_OF_DAY
    if _TIME_OF_DAY is None:
        # "HH:MM:" + "SS": 86,400 joins, ~10x faster than as many formats (a run's start-up)
        minutes = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
        seconds = [f"{s:02d}" for s in range(60)]
        _TIME_OF_DAY = [hm + ss for hm in minutes for ss in seconds]
    return _TIME_OF_DAY


def times_of_day(start_ns: np.ndarray, end_ns: np.ndarray, tz: Any) -> tuple[list[str], list[str]]:
    """``HH:MM:SS`` exchange-local times of day of gap starts and (exclusive) ends, as
    ``GapInfo.to_dict`` writes them, computed by array for a zone's offsets."""
    if len(start_ns) == 0:
        return [], []
    table = _table_of_times()
    local = seconds_of_day(np.concatenate([start_ns, end_ns]), tz).tolist()
    n = len(start_ns)
    return [table[s] for s in local[:n]], [table[s] for s in local[n:]]


def seconds_of_day(ns: np.ndarray, tz: Any) -> np.ndarray:
    """The exchange-local second of the day (int64, 0 .. 86,399) of UTC nanosecond instants,
    computed by array for a zone's offsets (what :func:`times_of_day` writes)."""
    ns = np.asarray(ns, np.int64)
    if len(ns) == 0:
        return np.zeros(0, np.int64)
    points, offsets = _offset_steps(int(ns.min()), int(ns.max()), tz)
    secs = ns // 1_000_000_000
    k = np.searchsorted(points, secs, side="right") - 1
    return (secs + offsets[k]) % 86_400


def _offset_steps(lo_ns: int, hi_ns: int, tz: Any) -> tuple[np.ndarray, np.ndarray]:
    """The instants (UTC seconds) from which a zone's UTC offset holds, between two times,
    and the offset (seconds) from each: the zone's transitions, found hour by hour."""
    lo_s, hi_s = lo_ns // 1_000_000_000, hi_ns // 1_000_000_000 + 1

    def offset(sec: int) -> int:
        delta = _EPOCH + _dt.timedelta(seconds=sec)
        off = delta.astimezone(tz).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    points = [lo_s]
    offsets = [offset(lo_s)]
    # Offsets change at most a few times a year; probe a day at a time and bisect a change.
    day = 86_400
    t = lo_s
    while t < hi_s:
        nxt = min(t + day, hi_s)
        if offset(nxt) != offsets[-1]:
            a, b = t, nxt
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == offsets[-1]:
                    a = mid
                else:
                    b = mid
            points.append(b)
            offsets.append(offset(b))
        t = nxt
    return np.array(points, np.int64), np.array(offsets, np.int64)


# -- quality --------------------------------------------------------------------------------


def quality_score(covered: Any, expected: Any) -> Any:
    """The quality of an interval, the one formula: ``100 * covered / expected``, 100 where
    nothing is expected.  Scalars give a float, arrays an array (element by element)."""
    if np.ndim(covered) == 0 and np.ndim(expected) == 0:
        den = float(expected)
        return 100.0 * float(covered) / den if den else 100.0
    e = np.asarray(expected, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(e > 0, 100.0 * np.asarray(covered, np.float64) / np.where(e > 0, e, 1),
                        100.0)


def data_quality(expected: Any, lost: Any) -> Any:
    """The data quality, the one formula: ``100 * (expected - lost) / expected`` (only slots
    lost to an outage or a late start / early end count against it), 100 where nothing is
    expected.  Scalars give a float, arrays an array."""
    if np.ndim(expected) == 0 and np.ndim(lost) == 0:
        den = float(expected)
        return 100.0 * (den - float(lost)) / den if den else 100.0
    e = np.asarray(expected, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(e > 0, 100.0 * (e - np.asarray(lost)) / np.where(e > 0, e, 1), 100.0)


# -- gap kinds (columns of the model; ``classify.classify_run`` fills them) ---------------------

KINDS = ("no_trade", "outage", "late_start", "early_end", "halt")
NO_TRADE, OUTAGE, LATE_START, EARLY_END, HALT = range(5)
#: Kinds whose slots count against the data quality score.
LOST_KINDS = (OUTAGE, LATE_START, EARLY_END)


def kind_names(codes: Sequence[int] | np.ndarray) -> list[str]:
    """The names of kind codes."""
    return [KINDS[c] for c in np.asarray(codes).tolist()]


def kind_counts(t: "IntervalTable", mask: np.ndarray | None = None) -> dict[str, dict[str, int]]:
    """Gaps and missing slots per kind (of the gaps where ``mask`` is true)."""
    if t.gap_kind is None:
        return {}
    kinds = t.gap_kind if mask is None else t.gap_kind[mask]
    counts = t.gap_count if mask is None else t.gap_count[mask]
    gaps = np.bincount(kinds, minlength=len(KINDS))
    missing = np.bincount(kinds, weights=counts, minlength=len(KINDS)).astype(np.int64)
    return {KINDS[i]: {"gaps": int(gaps[i]), "missing": int(missing[i])}
            for i in range(len(KINDS))}


def kind_cells(t: "IntervalTable") -> dict[str, np.ndarray]:
    """Per symbol and session (int64[S, K]): ``lost`` slots, and gaps and missing slots per
    kind (``gaps_<kind>``, ``missing_<kind>``); empty when the table is not classified."""
    if t.gap_kind is None:
        return {}
    n_s, n_k = t.bars.shape
    keys = t.gap_symbol * n_k + t.gap_session
    out = {"lost": t.lost if t.lost is not None else np.zeros((n_s, n_k), np.int64)}
    # One count over (kind, cell) for every kind at once.
    cells = np.asarray(t.gap_kind, np.int64) * (n_s * n_k) + keys
    size = len(KINDS) * n_s * n_k
    gaps = np.bincount(cells, minlength=size).reshape(len(KINDS), n_s, n_k)
    missing = np.bincount(cells, weights=t.gap_count, minlength=size
                          ).astype(np.int64).reshape(len(KINDS), n_s, n_k)
    for i, name in enumerate(KINDS):
        out[f"gaps_{name}"] = gaps[i]
        out[f"missing_{name}"] = missing[i]
    return out


def kind_totals(sums: dict[str, Any]) -> dict[str, Any]:
    """``data_quality``, ``lost`` and ``kinds`` (gaps, missing per kind) of summed
    :func:`kind_cells`, beside a summary row's ``expected``."""
    return kind_rows({k: [v] for k, v in sums.items()}, 1)[0]


def kind_rows(sums: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """:func:`kind_totals` of ``n`` rows at once (``sums``: a column per field, as Python
    numbers or arrays), the data quality computed over the columns in one call."""
    if "lost" not in sums:
        return [{} for _ in range(n)]
    expected = np.asarray(sums["expected"], np.int64)
    lost = np.asarray(sums["lost"], np.int64)
    dq = np.asarray(data_quality(expected, lost), np.float64).tolist()
    lost_l = lost.tolist()
    cols = {f"{field}_{k}": np.asarray(sums[f"{field}_{k}"], np.int64).tolist()
            for field in ("gaps", "missing") for k in KINDS}
    return [{
        "data_quality": dq[i],
        "lost": lost_l[i],
        "kinds": {k: {"gaps": cols[f"gaps_{k}"][i], "missing": cols[f"missing_{k}"][i]}
                  for k in KINDS},
    } for i in range(n)]



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

    @classmethod
    def of(cls, interval: str, expected: int, present: int, partial: int, covered: float,
           rejected: dict[str, int] | None = None) -> "QualityReport":
        """The report of slot counts (an interval with no expected slot scores 100)."""
        score = quality_score(covered, expected)
        return cls(interval, expected, present, expected - present, partial, covered, score,
                   dict(rejected or {}))

    def to_dict(self) -> dict[str, Any]:
        return quality_dict(self.score, self.expected, self.present, self.partial,
                            self.coverage_sum, self.rejected)


def quality_dict(score: float, expected: int, present: int, partial: int, covered: float,
                 rejected: dict[str, int]) -> dict[str, Any]:
    """The JSON form of a quality report."""
    return {
        "score": round(score, 4),
        "expected": expected,
        "present": present,
        "missing": expected - present,
        "partial": partial,
        "coverage": round(covered, 6),
        "rejected": dict(rejected),
    }


# -- a run ----------------------------------------------------------------------------------


@dataclass
class SymbolResult:
    """One symbol over a run's sessions, as the engine makes it: per interval the per-session
    counts and the gaps (with the session of each); per session whether the symbol was in it,
    the scored span, bars that arrived while it was not, and bars rejected by reason.
    Small: the bars themselves go to the exports as the engine makes them."""

    symbol: str
    member: np.ndarray                       # bool[sessions]
    since_ns: np.ndarray                     # int64[sessions], NO_BOUND_LO when unbounded
    until_ns: np.ndarray                     # int64[sessions], NO_BOUND_HI when unbounded
    counts: dict[str, np.ndarray]            # interval -> int64/float64 [5, sessions]
    gaps: dict[str, tuple[np.ndarray, ...]]  # interval -> (session, start, end, count)
    unknown: dict[int, int] = field(default_factory=dict)         # session -> bars
    rejected: dict[int, dict[str, int]] = field(default_factory=dict)  # session -> reasons
    loaded: np.ndarray | None = None         # bool[sessions]; members when None
    derived: list[str] | None = None         # this symbol's derived intervals, when its own
    sessions: np.ndarray | None = None       # datetime64[D] labels of the columns
    base: str | None = None                  # this symbol's base interval, when its own
    unscored: set[str] = field(default_factory=set)  # intervals not scored yet (live)

    # Rows of ``counts``: bars, expected, present, partial, covered.
    BARS, EXPECTED, PRESENT, PARTIAL, COVERED = range(5)

    # Pickled (a Dask worker's result, gathered by the client; a partition kept for a
    # resume) with the integer rows of ``counts`` and the gaps' sessions and bar counts in
    # the narrowest unsigned type that holds them, and back exactly as they were: a third of
    # the bytes a symbol-year sends.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["counts"] = {n: _narrow_counts(c) for n, c in self.counts.items()}
        state["gaps"] = {n: tuple(_narrow(a) if i in (0, 3) else a for i, a in enumerate(g))
                         for n, g in self.gaps.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["counts"] = {n: _widen_counts(c) for n, c in state["counts"].items()}
        state["gaps"] = {n: tuple(_widen(a) for a in g) for n, g in state["gaps"].items()}
        self.__dict__.update(state)

    def over(self, labels: np.ndarray) -> "SymbolResult":
        """The same result over the sessions ``labels`` (a superset of its own, sorted):
        the symbol is not a member of the others."""
        own = self.sessions if self.sessions is not None else labels
        if len(own) == len(labels) and (own == labels).all():
            return self
        pos = np.searchsorted(labels, own)
        if (pos >= len(labels)).any() or (labels[np.minimum(pos, len(labels) - 1)] != own).any():
            raise ValueError(f"{self.symbol}: sessions outside the run")
        n_k = len(labels)

        def spread(values: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(values.shape[:-1] + (n_k,), fill, values.dtype)
            out[..., pos] = values
            return out

        return SymbolResult(
            self.symbol, spread(self.member, False), spread(self.since_ns, NO_BOUND_LO),
            spread(self.until_ns, NO_BOUND_HI),
            {n: spread(c, 0) for n, c in self.counts.items()},
            {n: (pos[g[0]],) + tuple(g[1:]) for n, g in self.gaps.items()},
            {int(pos[k]): v for k, v in self.unknown.items()},
            {int(pos[k]): v for k, v in self.rejected.items()},
            None if self.loaded is None else spread(self.loaded, False), self.derived,
            labels, self.base, set(self.unscored))


def _narrow(values: np.ndarray) -> Any:
    """Integers in the narrowest unsigned type that holds them, with their own dtype to go
    back to (:func:`_widen`); anything else as it is."""
    if values.dtype.kind not in "iuf" or values.size == 0:
        return values
    lo, hi = values.min(), values.max()
    if not (lo >= 0 and hi < 2**32):    # NaN fails both
        return values
    if values.dtype.kind == "f" and np.signbit(values).any():   # -0.0 would come back +0.0
        return values
    small = values.astype(np.uint16 if hi < 2**16 else np.uint32)
    if not np.array_equal(small, values):   # fractions
        return values
    return ("narrow", values.dtype.str, small)


def _widen(values: Any) -> np.ndarray:
    if isinstance(values, tuple) and len(values) == 3 and values[0] == "narrow":
        return values[2].astype(np.dtype(values[1]))
    return values


def _narrow_counts(counts: np.ndarray) -> Any:
    """The rows of a symbol's counts (``SymbolResult.counts``): the four integer rows
    narrowed, the covered row as it is."""
    if counts.ndim != 2 or counts.shape[0] != 5:
        return counts
    return ("counts", _narrow(counts[:4]), counts[4].copy())


def _widen_counts(counts: Any) -> np.ndarray:
    if isinstance(counts, tuple) and len(counts) == 3 and counts[0] == "counts":
        return np.concatenate([_widen(counts[1]), counts[2][None, :]])   # one dtype: theirs
    return counts


@dataclass
class IntervalTable:
    """One interval over symbols x sessions."""

    name: str
    bars: np.ndarray       # int64[S, K]
    expected: np.ndarray   # int64[S, K]
    present: np.ndarray    # int64[S, K]
    partial: np.ndarray    # int64[S, K]
    covered: np.ndarray    # float64[S, K]
    gap_symbol: np.ndarray   # int64[G], sorted by symbol, session, start
    gap_session: np.ndarray  # int64[G]
    gap_start: np.ndarray    # int64[G]
    gap_end: np.ndarray      # int64[G]
    gap_count: np.ndarray    # int64[G]
    has: np.ndarray          # bool[S]: the symbol has this interval
    scored: np.ndarray       # bool[S]: its gaps and quality were computed
    _offsets: np.ndarray | None = None
    # Set by classify.classify_run: the kind of each gap (codes of classify.KINDS), the inputs
    # that explain it, and the slots lost to outage/late_start/early_end per symbol, session.
    gap_kind: np.ndarray | None = None       # int8[G]
    gap_activity: np.ndarray | None = None   # float64[G]
    gap_share: np.ndarray | None = None      # float64[G], NaN when no cross-section
    lost: np.ndarray | None = None           # int64[S, K]

    # Pickled (a range of sessions sent to a Dask worker for its documents) with its integer
    # columns narrowed as SymbolResult's are, and back exactly.
    _NARROW = ("bars", "expected", "present", "partial", "gap_symbol", "gap_session",
               "gap_count")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self._NARROW:
            state[name] = _narrow(state[name])
        state["_offsets"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name in self._NARROW:
            state[name] = _widen(state[name])
        self.__dict__.update(state)

    def gap_slice(self, s: int, k: int) -> slice:
        """Where the gaps of symbol ``s`` in session ``k`` are in the gap arrays."""
        if self._offsets is None:
            n_k = self.bars.shape[1]
            keys = self.gap_symbol * n_k + self.gap_session
            self._offsets = np.searchsorted(keys, np.arange(self.bars.size + 1))
        j = s * self.bars.shape[1] + k
        return slice(int(self._offsets[j]), int(self._offsets[j + 1]))


@dataclass
class RunResult:
    """What a run found (see the module's docstring)."""

    calendar: "Calendar"
    windows: "Windows"          # the windows of every session of the run
    base: str
    derived: list[str]
    symbols: list[str]
    intervals: dict[str, IntervalTable]
    member: np.ndarray          # bool[S, K]
    loaded: np.ndarray          # bool[S, K]
    since_ns: np.ndarray        # int64[S, K]
    until_ns: np.ndarray        # int64[S, K]
    unknown: list[dict[str, int]]               # per session: symbol -> bars
    rejected: dict[tuple[int, int], dict[str, int]]  # (symbol, session) -> reason -> bars
    notes: list[list[str]]                      # per session: events in words
    symbol_derived: dict[str, list[str]] = field(default_factory=dict)  # own derived lists
    symbol_base: dict[str, str] = field(default_factory=dict)           # own base intervals
    dataset: str = ""
    dropped: dict[str, int] = field(default_factory=dict)   # rows dropped on read, by reason
    seconds: float = 0.0
    span: tuple[int, int] | None = None   # the run's scored span: data start, end of data
    # The anomaly detectors' finds (issue 22; ``engine`` fills it), None when they were off.
    anomalies: "AnomalyTable | None" = None

    @property
    def sessions(self) -> np.ndarray:
        return self.windows.sessions

    @property
    def interval_names(self) -> list[str]:
        return [self.base] + list(self.derived)

    @classmethod
    def assemble(cls, calendar: "Calendar", windows: "Windows", base: str, derived: list[str],
                 parts: Sequence[SymbolResult], **extra: Any) -> "RunResult":
        """A run's result from its symbols' results (in the order given)."""
        n_s, n_k = len(parts), windows.n_sessions
        names = [base] + list(derived)
        for p in parts:  # intervals that only some symbols have (a live session)
            names += [n for n in p.counts if n not in names]
        tables = {}
        for name in names:
            has = np.array([name in p.counts for p in parts], bool)
            scored = np.array([name in p.counts and name not in p.unscored for p in parts],
                              bool)
            stack = np.zeros((5, n_s, n_k), np.float64)
            for i, p in enumerate(parts):
                if name in p.counts:
                    stack[:, i, :] = p.counts[name]
            g = [p.gaps.get(name) for p in parts]
            g_sym = np.concatenate([np.full(len(x[0]), i, np.int64) for i, x in enumerate(g)
                                    if x is not None] or [np.empty(0, np.int64)])
            cols = [np.concatenate([x[j] for x in g if x is not None] or
                                   [np.empty(0, np.int64)]).astype(np.int64) for j in range(4)]
            tables[name] = IntervalTable(
                name, stack[0].astype(np.int64), stack[1].astype(np.int64),
                stack[2].astype(np.int64), stack[3].astype(np.int64), stack[4].copy(),
                g_sym, cols[0], cols[1], cols[2], cols[3], has, scored)
        member = np.array([p.member for p in parts], bool).reshape(n_s, n_k)
        loaded = np.array([p.member if p.loaded is None else p.loaded for p in parts],
                          bool).reshape(n_s, n_k)
        since = np.array([p.since_ns for p in parts], np.int64).reshape(n_s, n_k)
        until = np.array([p.until_ns for p in parts], np.int64).reshape(n_s, n_k)
        unknown: list[dict[str, int]] = [{} for _ in range(n_k)]
        rejected: dict[tuple[int, int], dict[str, int]] = {}
        for i, p in enumerate(parts):
            for k, n in p.unknown.items():
                unknown[k][p.symbol] = unknown[k].get(p.symbol, 0) + n
            for k, reasons in p.rejected.items():
                rejected[(i, k)] = dict(reasons)
        own = {p.symbol: list(p.derived) for p in parts if p.derived is not None}
        own_base = {p.symbol: p.base for p in parts if p.base is not None and p.base != base}
        extra.setdefault("notes", [[] for _ in range(n_k)])
        return cls(calendar, windows, base, list(derived), [p.symbol for p in parts], tables,
                   member, loaded, since, until, unknown, rejected,
                   symbol_derived=own, symbol_base=own_base, **extra)

    # -- objects on access --------------------------------------------------------------

    def session_range(self, a: int, b: int) -> "RunResult":
        """The result of sessions ``a`` .. ``b - 1`` alone (renumbered from 0): what their
        session documents are made of, and nothing of the other sessions."""
        w = self.windows
        lo = int(np.searchsorted(w.session_ids, a))
        hi = int(np.searchsorted(w.session_ids, b))
        windows = type(w)(w.open_ns[lo:hi], w.close_ns[lo:hi], w.session_ids[lo:hi] - a,
                          w.sessions[a:b])
        tables = {}
        for name, t in self.intervals.items():
            g = (t.gap_session >= a) & (t.gap_session < b)

            def cut(col: np.ndarray | None) -> np.ndarray | None:
                return None if col is None else col[g]

            tables[name] = IntervalTable(
                name, t.bars[:, a:b], t.expected[:, a:b], t.present[:, a:b],
                t.partial[:, a:b], t.covered[:, a:b], t.gap_symbol[g], t.gap_session[g] - a,
                t.gap_start[g], t.gap_end[g], t.gap_count[g], t.has, t.scored,
                gap_kind=cut(t.gap_kind), gap_activity=cut(t.gap_activity),
                gap_share=cut(t.gap_share), lost=None if t.lost is None else t.lost[:, a:b])
        anomalies = self.anomalies
        if anomalies is not None:
            r = (anomalies.session >= a) & (anomalies.session < b)
            anomalies = AnomalyTable(anomalies.interval, **{
                c: (getattr(anomalies, c)[r] - a if c == "session" else getattr(anomalies, c)[r])
                for c in AnomalyTable.COLUMNS}, params=anomalies.params)
        return RunResult(
            self.calendar, windows, self.base, list(self.derived), list(self.symbols), tables,
            self.member[:, a:b], self.loaded[:, a:b], self.since_ns[:, a:b],
            self.until_ns[:, a:b], self.unknown[a:b],
            {(s, k - a): r for (s, k), r in self.rejected.items() if a <= k < b},
            self.notes[a:b], symbol_derived=self.symbol_derived, symbol_base=self.symbol_base,
            dataset=self.dataset, dropped=self.dropped, span=self.span, anomalies=anomalies)

    def derived_of(self, s: int) -> list[str]:
        return self.symbol_derived.get(self.symbols[s], self.derived)

    def base_of(self, s: int) -> str:
        return self.symbol_base.get(self.symbols[s], self.base)

    def intervals_of(self, s: int) -> list[str]:
        return [self.base_of(s)] + self.derived_of(s)

    def gaps(self, symbol: str, session: int, interval: str | None = None) -> Gaps:
        """The gaps of one symbol, session and interval."""
        t = self.intervals[interval or self.base]
        sl = t.gap_slice(self.symbols.index(symbol), session)
        return Gaps(t.gap_start[sl], t.gap_end[sl], t.gap_count[sl], tz=self.calendar.tz)

    def quality(self, symbol: str, session: int, interval: str | None = None) -> QualityReport:
        """The quality report of one symbol, session and interval."""
        name = interval or self.base
        t = self.intervals[name]
        s = self.symbols.index(symbol)
        return QualityReport.of(name, int(t.expected[s, session]), int(t.present[s, session]),
                                int(t.partial[s, session]), float(t.covered[s, session]),
                                self.rejected.get((s, session), {}))

    def session_bounds(self, k: int) -> tuple[int, int]:
        """The first open and the last close of session ``k``."""
        w = self.windows
        return int(w.session_open_ns[k]), int(w.session_close_ns[k])

    def session_minutes(self) -> np.ndarray:
        """Trading minutes of each session (breaks excluded)."""
        w = self.windows
        length = (w.close_ns - w.open_ns) // 60_000_000_000
        return np.bincount(w.session_ids, weights=length, minlength=w.n_sessions).astype(int)


# -- anomalies (columns of the model; the engine fills them with ``anomalies.detect_symbol``) ---

#: The anomaly kinds by code (the same tuple as ``anomalies.KINDS``; a test keeps them equal:
#: the model imports none of the analyses).
ANOMALY_KINDS = ("filled", "stale", "spike", "jump", "volume_shift", "clock_shift",
                 "duplicate_session")
#: The evidence columns of an anomaly (``anomalies.EVIDENCE`` says what each holds per kind).
ANOMALY_EVIDENCE = ("value", "baseline", "score", "ref")


@dataclass
class AnomalyTable:
    """Every anomaly of a run as columns, one row per symbol and session it touches.

    The detectors run once per symbol over its whole range of base bars; an anomaly that
    spans several sessions (a ``volume_shift``, a ``clock_shift``) is one row per session,
    holding that session's bars of it, with ``part`` 0, 1, ... (``part == 0`` counts the
    anomaly once) and ``parts`` the sessions it spans.  ``gap_kind`` is the gap kind of a
    ``filled`` run (codes of ``KINDS``: a hidden gap; -1 for the other kinds).
    """

    interval: str            # the interval the detectors looked at (the base)
    symbol: np.ndarray       # int64[A], index into the run's symbols
    session: np.ndarray      # int64[A], index into the run's sessions
    kind: np.ndarray         # int8[A], codes of ANOMALY_KINDS
    start: np.ndarray        # int64[A] ns UTC
    end: np.ndarray          # int64[A] ns UTC, exclusive
    bar_count: np.ndarray    # int64[A]
    value: np.ndarray        # float64[A]
    baseline: np.ndarray     # float64[A]
    score: np.ndarray        # float64[A]
    ref: np.ndarray          # int64[A] ns UTC, 0 when the kind has none
    part: np.ndarray         # int64[A]
    parts: np.ndarray        # int64[A]
    gap_kind: np.ndarray     # int8[A]
    params: dict[str, Any] = field(default_factory=dict)   # the thresholds used

    COLUMNS = ("symbol", "session", "kind", "start", "end", "bar_count", "value", "baseline",
               "score", "ref", "part", "parts", "gap_kind")

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def order(self) -> np.ndarray:
        """Rows by session, symbol, start (the documents' order)."""
        return np.lexsort((self.kind, self.start, self.symbol, self.session))

    def cells(self, shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """Per symbol and session (int64[S, K]): ``anomalies`` (all kinds) and
        ``anomalies_<kind>``, counting each row once, and ``anomaly_bars`` (their bars)."""
        keys = self.symbol * shape[1] + self.session
        size = shape[0] * shape[1]
        out = {"anomalies": np.bincount(keys, minlength=size).reshape(shape),
               "anomaly_bars": np.bincount(keys, weights=self.bar_count, minlength=size)
               .astype(np.int64).reshape(shape)}
        for i, name in enumerate(ANOMALY_KINDS):
            m = self.kind == i
            out[f"anomalies_{name}"] = np.bincount(keys[m], minlength=size).reshape(shape)
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Per kind: anomalies (each once, however many sessions it spans), the session rows
        and their bars."""
        first = self.part == 0
        return {name: {"count": int((first & (self.kind == i)).sum()),
                       "sessions": int((self.kind == i).sum()),
                       "bars": int(self.bar_count[self.kind == i].sum())}
                for i, name in enumerate(ANOMALY_KINDS)}


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside the block: building documents makes hundreds of
    thousands of small dicts and lists, none of them cyclic, and each collection would scan
    them all again (it tripled the time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
