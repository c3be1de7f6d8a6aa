"""Bars that are there but not real: seven anomaly kinds found in one symbol's bars (issue 22).

:func:`detect_symbol` is the one entry point for a symbol's whole range and its session
windows (what the engine calls); :func:`find_anomalies` is the functional form beside
``find_gaps``.  Both return :class:`Anomalies`, a columnar sequence of :class:`AnomalyInfo`.
The per-bar work runs in ``sessiondata._core.anomalies`` (compiled, without the GIL); Python
decides over per-session arrays.  ``docs/anomalies.md`` describes each kind, its evidence and
its thresholds (:class:`AnomalyParams`), and the measured accuracy.

Evidence columns (their meaning per kind, ``EVIDENCE``): ``value``, ``baseline``, ``score``
(floats) and ``ref_ns`` (a time, 0 when the kind has none).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence, overload

import numpy as np

from ._core import anomalies as _k
from .bars import Bars
from .calendar import Calendar, Windows
from .results import local_time

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

#: The anomaly kinds, by code (the code is the index).
KINDS = ("filled", "stale", "spike", "jump", "volume_shift", "clock_shift",
         "duplicate_session")
FILLED, STALE, SPIKE, JUMP, VOLUME_SHIFT, CLOCK_SHIFT, DUPLICATE_SESSION = range(7)

#: What the evidence columns hold, per kind.
EVIDENCE = {
    "filled": ("the repeated close", "the share of the symbol's bars at that time of day "
               "that are zero-volume fills elsewhere (near 1: a quiet market, no_trade)",
               "bars in the run", "-"),
    "stale": ("the frozen price", "the chance of one such bar at that time of day (the "
              "symbol's own rate; 0 for bars repeated in every field)",
              "-log10 of the chance of the run", "-"),
    "spike": ("the extreme price", "the reference (median of the closes before)",
              "the deviation in local scales", "-"),
    "jump": ("the price step (close before over close after)", "the split ratio it fits",
             "the volume level after over before (NaN without volume)", "-"),
    "volume_shift": ("the volume level (median per bar) in the range", "the level before",
                     "the ratio (0 for a session without volume)", "-"),
    "clock_shift": ("the shift in hours (+: stamped late)", "the profile's correlation "
                    "with the usual one as stamped", "its correlation when shifted back",
                    "-"),
    "duplicate_session": ("the share of its bars equal to the other session's",
                          "bars compared", "bars equal", "the other session's first bar"),
}

# kernels' flag bits (sessiondata._core.anomalies)
FLAT, AT_PREV, ZERO_VOL, POS_VOL, REPEAT, NEXT = 1, 2, 4, 8, 16, 32
MINUTE_NS = 60_000_000_000
HOUR_NS = 60 * MINUTE_NS


@dataclass(frozen=True)
class AnomalyParams:
    """The detectors' thresholds, with their defaults (``docs/anomalies.md`` says why).

    Parameters
    ----------
    kinds : tuple of str
        The kinds to look for (all by default; ``()`` turns the detectors off).
    bucket_minutes : int
        The time-of-day bucket: rates and activity profiles are per bucket of the session.
    volume_real_share : float
        Volume is real when at least this share of the bars has positive volume; below it
        (no volume, or zero everywhere) ``filled`` and ``volume_shift`` look for nothing.
    filled_min_bars : int
        Bars in a run of fills (O = H = L = C = the previous close, zero volume, consecutive
        slots of one session).
    stale_min_bars : int
        Bars in a run whose price does not move (flat at the previous close; with volume when
        volume is real).
    stale_alpha : float
        A run is stale when its chance, by the symbol's own rate of such bars at that time
        of day, is at most this.
    repeat_min_bars : int
        Bars repeating the bar before them in every field (not flat), in a run; the run is
        stale when its chance by the symbol's rate of repeats (time of day, class) is at most
        ``stale_alpha`` too.
    spike_sigmas, spike_min_move : float
        A bar is off when its high, low or close is more than ``max(spike_sigmas * scale,
        spike_min_move)`` (log) from the median of the ``spike_ref_bars`` closes before it;
        the scale is robust (the 75th percentile of absolute returns in a block of
        ``spike_block`` bars).
    spike_ref_bars, spike_block, spike_max_bars : int
        See above; a spike lasts at most ``spike_max_bars`` bars and the closes after it come
        back within the threshold.
    spike_volume_ratio : float
        A move whose bars trade more than this many times the median volume of the bars
        before it is news, not a bad print (a bad print is one trade); 0 turns the check off
        (data without real volume has none).
    split_ratios : tuple of float
        Split ratios a jump may fit (and their inverses).
    jump_min_step : float
        Session-to-session price steps below this ratio are not looked at.
    jump_tolerance : float
        How near (log) the step must be to a split ratio.
    jump_volume_share : float
        The volume level must move the other way by at least this share of the step (log);
        without volume the tolerance is a third as wide.
    volume_factor : float
        A volume level shift is a change of the session's median volume per bar, against the
        median of the sessions before, of at least this factor, that stays (50: a unit
        change of 100x with room for the day-to-day variation of the level).
    volume_min_sessions : int
        Sessions a volume level shift must last (at the end of the data one suffices).
    volume_ref_sessions : int
        Sessions whose median level is the reference before a shift.
    zero_volume_min_bars : int
        Bars in a session with zero volume on every bar, where the symbol's volume is real.
    clock_max_hours : int
        Shifts looked for: 1 to this many hours, either way.
    clock_min_sessions, clock_margin, clock_min_z : int, float, float
        A session's activity profile (per bucket, the volume class of its bars summed, or
        their range without volume) is compared with the symbol's usual profile (the median
        over the sessions of the square roots of the shares per bucket; weekend sessions
        against weekend sessions where there are three) as stamped and shifted back by
        whole hours; the gain of a shift is measured in robust deviations (median, MAD) from
        the symbol's own gains for that shift, capped at 4 per session. A clock shift is a
        run of at least ``clock_min_sessions`` (and at most 30) sessions whose deviations
        for one shift, summed over the square root of the run's length, reach
        ``clock_margin``, with a mean of at least ``clock_min_z``.
    clock_min_corr, clock_fit_share : float
        Shifted back, the run's median correlation with the usual profile must be at least
        ``clock_min_corr`` and ``clock_fit_share`` of the symbol's median correlation.
    clock_min_gain : float
        Kept for compatibility; not used since the evidence is pooled over runs.
    clock_edge_margin : float
        Where the sessions run back to back (24/7, the FX week) a run stamped ``h`` hours
        late leaves its first session's first ``h`` hours empty (its last hour's bars fall
        into the next session, which has its own), one stamped early its last session's
        last ``h`` hours: in a symbol that otherwise has its bars at the opens (closes), a
        session missing exactly ``h`` hours there (to five minutes) is a candidate, and a run
        from it (to it) whose deviations for that shift, summed over the square root of its
        length, reach this (instead of ``clock_margin``) is reported (without the fit tests of
        ``clock_min_corr`` and ``clock_fit_share``: the edge is the evidence of a shift).
        Where the hole is next to the previous session's last bar (the next one's first),
        that bar and the first after the hole must join as consecutive bars do (the open
        within twice the 90th percentile of the symbol's moves from a close to the next
        bar's open: an outage leaves an hour's move there).
    clock_edge_break_margin : float
        The same at an edge next to a break (the FX week's Sunday open and Friday close),
        where there is no bar on the other side to join: a higher margin.
    clock_stamp_alpha : float
        The stamp-convention change (a run of sessions one base interval late: no bar at the
        open, one at the next slot, one stamped at the close; only sessions followed by a
        break can show it) is reported when the symbol's rate of such sessions elsewhere,
        to the power of the run's length, is at most this.
    duplicate_min_equal : float
        A session repeats another when at least this share of its bars equal the other's bar
        at the same time of day in every field.
    duplicate_min_bars : int
        Bars that tell sessions apart (not flat, or with volume) a session needs to be
        compared.
    """

    kinds: tuple[str, ...] = KINDS
    bucket_minutes: int = 15
    volume_real_share: float = 0.5
    filled_min_bars: int = 1
    stale_min_bars: int = 10
    stale_alpha: float = 1e-10
    repeat_min_bars: int = 3
    spike_sigmas: float = 12.0
    spike_min_move: float = 0.005
    spike_ref_bars: int = 16
    spike_block: int = 64
    spike_max_bars: int = 3
    spike_volume_ratio: float = 8.0
    split_ratios: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 15.0,
                                       20.0)
    jump_min_step: float = 1.35
    jump_tolerance: float = 0.03
    jump_volume_share: float = 0.25
    volume_factor: float = 50.0
    volume_min_sessions: int = 2
    volume_ref_sessions: int = 5
    zero_volume_min_bars: int = 10
    clock_max_hours: int = 2
    clock_min_gain: float = 0.02
    clock_min_corr: float = 0.3
    clock_min_z: float = 1.0
    clock_min_sessions: int = 2
    clock_margin: float = 5.0
    clock_stamp_alpha: float = 1e-3
    clock_fit_share: float = 0.75
    clock_edge_margin: float = 1.5
    clock_edge_break_margin: float = 3.0
    duplicate_min_equal: float = 0.8
    duplicate_min_bars: int = 10

    def __post_init__(self) -> None:
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ValueError(f"unknown anomaly kind(s) {bad}; the kinds are {list(KINDS)}")
        for name in ("bucket_minutes", "filled_min_bars", "stale_min_bars", "repeat_min_bars",
                     "spike_ref_bars", "spike_max_bars", "volume_min_sessions",
                     "volume_ref_sessions", "zero_volume_min_bars", "clock_max_hours",
                     "clock_min_sessions", "duplicate_min_bars"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"AnomalyParams.{name} must be >= 1, got {getattr(self, name)}")
        if self.spike_block < 4:
            raise ValueError(f"AnomalyParams.spike_block must be >= 4, got {self.spike_block}")
        if not 0 < self.clock_stamp_alpha < 1:
            raise ValueError("AnomalyParams.clock_stamp_alpha must be in (0, 1), got "
                             f"{self.clock_stamp_alpha}")
        if not 0 <= self.clock_fit_share <= 1:
            raise ValueError("AnomalyParams.clock_fit_share must be in [0, 1], got "
                             f"{self.clock_fit_share}")
        if not 0 < self.stale_alpha < 1:
            raise ValueError(f"AnomalyParams.stale_alpha must be in (0, 1), got {self.stale_alpha}")
        if not (self.clock_edge_margin > 0 and self.clock_edge_break_margin > 0):
            raise ValueError("AnomalyParams.clock_edge_margin and clock_edge_break_margin must "
                             f"be > 0, got {self.clock_edge_margin}, "
                             f"{self.clock_edge_break_margin}")
        if self.volume_factor <= 1 or self.jump_min_step <= 1:
            raise ValueError("AnomalyParams.volume_factor and jump_min_step must be > 1")

    def replace(self, **changes: Any) -> "AnomalyParams":
        """A copy with some thresholds changed; an unknown name is an error that lists the
        known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown anomaly threshold(s) {unknown}; known: {sorted(known)}")
        if "kinds" in changes and isinstance(changes["kinds"], str):
            changes["kinds"] = () if changes["kinds"] in ("", "none") else tuple(
                k.strip() for k in changes["kinds"].split(","))
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class AnomalyInfo:
    """One anomaly: a range of bars of one kind with its evidence (see ``EVIDENCE``).

    ``end_time`` is exclusive (the end of the last bar of the range).  Times are
    timezone-aware, in the calendar's zone.
    """

    kind: str
    start_time: _dt.datetime
    end_time: _dt.datetime
    bar_count: int
    value: float
    baseline: float
    score: float
    ref_time: _dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: exchange-local times of day, as the gaps' ranges."""
        out = {"kind": self.kind, "start_time": self.start_time.strftime("%H:%M:%S"),
               "end_time": self.end_time.strftime("%H:%M:%S"), "bar_count": self.bar_count,
               "value": self.value, "baseline": self.baseline, "score": self.score}
        if self.ref_time is not None:
            out["ref_time"] = self.ref_time.isoformat()
        return out


class Anomalies(Sequence[AnomalyInfo]):
    """Anomalies as columns: ``kind`` (int8 codes of ``KINDS``), ``start_ns``, ``end_ns``
    (exclusive), ``bar_count`` and the evidence ``value``, ``baseline``, ``score``, ``ref_ns``.

    A sequence of :class:`AnomalyInfo`, made on access; sorted by start.
    """

    __slots__ = ("kind", "start_ns", "end_ns", "bar_count", "value", "baseline", "score",
                 "ref_ns", "tz")
    _INT = ("start_ns", "end_ns", "bar_count", "ref_ns")
    _FLOAT = ("value", "baseline", "score")

    def __init__(self, kind: Any, start_ns: Any, end_ns: Any, bar_count: Any, value: Any,
                 baseline: Any, score: Any, ref_ns: Any = None, *, tz: Any = None):
        self.kind = np.asarray(kind, np.int8)
        self.start_ns = np.asarray(start_ns, np.int64)
        self.end_ns = np.asarray(end_ns, np.int64)
        self.bar_count = np.asarray(bar_count, np.int64)
        self.value = np.asarray(value, np.float64)
        self.baseline = np.asarray(baseline, np.float64)
        self.score = np.asarray(score, np.float64)
        self.ref_ns = (np.zeros(len(self.kind), np.int64) if ref_ns is None
                       else np.asarray(ref_ns, np.int64))
        n = self.kind.shape
        for name in self._INT + self._FLOAT:
            if getattr(self, name).shape != n:
                raise ValueError(f"Anomalies: column {name} has shape "
                                 f"{getattr(self, name).shape}, kind has {n}")
        self.tz = tz if tz is not None else _dt.timezone.utc

    @classmethod
    def empty(cls, tz: Any = None) -> "Anomalies":
        z = np.empty(0, np.int64)
        return cls(z, z, z, z, z, z, z, z, tz=tz)

    @classmethod
    def concat(cls, parts: Sequence["Anomalies"], tz: Any = None) -> "Anomalies":
        """One sequence of several, sorted by start (stable)."""
        if not parts:
            return cls.empty(tz)
        cols = {name: np.concatenate([getattr(p, name) for p in parts])
                for name in ("kind",) + cls._INT + cls._FLOAT}
        order = np.argsort(cols["start_ns"], kind="stable")
        return cls(**{k: v[order] for k, v in cols.items()},
                   tz=tz if tz is not None else parts[0].tz)

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @overload
    def __getitem__(self, index: int) -> AnomalyInfo: ...

    @overload
    def __getitem__(self, index: slice) -> "Anomalies": ...

    def __getitem__(self, index: int | slice) -> "AnomalyInfo | Anomalies":
        if isinstance(index, slice):
            return Anomalies(*(getattr(self, c)[index] for c in
                               ("kind",) + self._INT[:3] + self._FLOAT + ("ref_ns",)),
                             tz=self.tz)
        i = range(len(self))[index]
        ref = int(self.ref_ns[i])
        return AnomalyInfo(KINDS[int(self.kind[i])], local_time(int(self.start_ns[i]), self.tz),
                           local_time(int(self.end_ns[i]), self.tz), int(self.bar_count[i]),
                           float(self.value[i]), float(self.baseline[i]),
                           float(self.score[i]),
                           local_time(ref, self.tz) if ref else None)

    def __iter__(self) -> Iterator[AnomalyInfo]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"Anomalies({len(self)}: {self.counts()})"

    def of_kind(self, kind: str) -> "Anomalies":
        """Those of one kind."""
        m = self.kind == KINDS.index(kind)
        return Anomalies(*(getattr(self, c)[m] for c in
                           ("kind",) + self._INT[:3] + self._FLOAT + ("ref_ns",)), tz=self.tz)

    def counts(self) -> dict[str, int]:
        """How many of each kind (every kind, zeros included)."""
        c = np.bincount(self.kind.astype(np.int64), minlength=len(KINDS))
        return {k: int(c[i]) for i, k in enumerate(KINDS)}

    def to_dicts(self) -> list[dict[str, Any]]:
        """The JSON ``ranges``."""
        return [a.to_dict() for a in self]

    def to_arrow(self) -> "pa.Table":
        import pyarrow as pa

        unit = pa.timestamp("ns", tz="UTC")
        return pa.table({
            "kind": pa.array(np.asarray(KINDS, dtype=object)[self.kind.astype(np.int64)]
                             if len(self) else np.empty(0, object), pa.string()),
            "start": pa.array(self.start_ns, unit), "end": pa.array(self.end_ns, unit),
            "bar_count": pa.array(self.bar_count),
            "value": pa.array(self.value), "baseline": pa.array(self.baseline),
            "score": pa.array(self.score),
            "ref": pa.array(self.ref_ns, unit, mask=self.ref_ns == 0)})

    def to_pandas(self) -> "pd.DataFrame":
        try:
            import pandas as pd  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Anomalies.to_pandas needs pandas: pip install "
                              "'sessiondata[pandas]'") from None
        df = self.to_arrow().to_pandas()
        tz = getattr(self.tz, "key", "UTC")
        for c in ("start", "end", "ref"):
            df[c] = df[c].dt.tz_convert(tz)
        return df


# -- detection --------------------------------------------------------------------------------


def _sessions_of(windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    """Each session's first open and last close."""
    k = np.arange(windows.n_sessions)
    first = np.searchsorted(windows.session_ids, k)
    last = np.searchsorted(windows.session_ids, k, side="right") - 1
    return windows.open_ns[first], windows.close_ns[last]


class _Rows:
    """Anomaly rows collected by the detectors, made into columns once."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, kind: int, start: Any, end: Any, count: Any, value: Any, baseline: Any,
            score: Any, ref: Any = 0) -> None:
        start = np.atleast_1d(np.asarray(start, np.int64))
        n = start.shape[0]
        if n == 0:
            return
        def col(x: Any, dtype: Any) -> np.ndarray:
            return np.broadcast_to(np.asarray(x, dtype), (n,))
        self.parts.append((np.full(n, kind, np.int8), start, col(end, np.int64),
                           col(count, np.int64), col(value, np.float64),
                           col(baseline, np.float64), col(score, np.float64),
                           col(ref, np.int64)))

    def build(self, tz: Any) -> Anomalies:
        if not self.parts:
            return Anomalies.empty(tz)
        cols = [np.concatenate([p[i] for p in self.parts]) for i in range(8)]
        order = np.lexsort((cols[0], cols[1]))
        return Anomalies(*(c[order] for c in cols), tz=tz)


def detect_symbol(bars: Bars, windows: Windows, step_ns: int,
                  params: AnomalyParams | None = None, tz: Any = None) -> Anomalies:
    """Find the anomalies of one symbol's whole range (the engine's entry point).

    Parameters
    ----------
    bars : Bars
        The symbol's base bars, sorted, validated (as the engine holds them).
    windows : Windows
        The session windows of the range; bars outside every window are not looked at.
    step_ns : int
        The base interval in nanoseconds.
    params : AnomalyParams, optional
        The thresholds (defaults when None).
    tz : tzinfo, optional
        The zone the returned objects show times in.

    Returns
    -------
    Anomalies
    """
    return _detect(bars, windows, step_ns, params, tz, None)


def clock_profile_strength(bars: Bars, windows: Any, step_ns: int,
                           params: AnomalyParams | None = None) -> float:
    """How well a symbol's intraday profile can show a clock shift of whole hours.

    The expected deviation (in the robust units of ``clock_shift``'s test) that one session
    shifted by the hardest of the shifts looked for would add: twice the median loss of
    correlation under that shift over the spread of the sessions' gains. A run of ``m``
    shifted sessions scores about this times the square root of ``m`` (capped per session at
    4); it must reach ``clock_margin`` (5), so below about 1.8 even a run of eight sessions
    is likely missed, and at or above 3.5 a run of two is found. NaN when there are too few
    sessions to tell.

    Parameters
    ----------
    bars, windows, step_ns, params
        As for `detect_symbol`.

    Returns
    -------
    float
    """
    p = dataclasses.replace(params or AnomalyParams(), kinds=("clock_shift",))
    stats: dict[str, float] = {}
    _detect(bars, windows, step_ns, p, None, stats)
    return float(stats.get("clock_strength", np.nan))


def _detect(bars: Bars, windows: Any, step_ns: int, params: AnomalyParams | None,
            tz: Any, stats: dict[str, float] | None) -> Anomalies:
    p = params or AnomalyParams()
    n = len(bars)
    if n == 0 or len(windows) == 0 or not p.kinds:
        return Anomalies.empty(tz)
    if step_ns <= 0:
        raise ValueError(f"detect_symbol: step_ns must be > 0, got {step_ns}")
    wanted = set(p.kinds)
    ts = bars.ts
    o, h, lo, c = bars.open, bars.high, bars.low, bars.close
    v = bars.volume if bars.volume is not None else np.full(n, np.nan)
    first_open, last_close = _sessions_of(windows)
    n_k = len(first_open)
    bucket_ns = p.bucket_minutes * MINUTE_NS
    n_b = int((last_close - first_open).max() // bucket_ns) + 1
    sess = np.empty(n, np.int32)
    buck = np.empty(n, np.int32)
    _k.locate_bars(ts, windows.open_ns, windows.close_ns, windows.session_ids, first_open,
                   bucket_ns, sess, buck)
    flags = np.empty(n, np.uint8)
    vclass = np.empty(n, np.uint8)
    sample = v[:: max(1, n // 4096)]
    sample = sample[sample > 0]
    ref_volume = float(np.median(sample)) if len(sample) else 0.0
    # Per bucket and class, how many bars carry each combination of flags: every rate by
    # time of day comes from this one count (made in the same pass).
    combo = np.zeros((n_b, 8, 64), np.int64)
    hashes = np.empty(n, np.uint64)
    by_class = np.zeros((n_k, n_b), np.float64)
    by_range = np.zeros((n_k, n_b), np.float64)
    _k.bar_flags(ts, o, h, lo, c, v, sess, buck, step_ns, ref_volume, flags, vclass, combo,
                 hashes, by_class, by_range)
    in_session = int(combo.sum())
    pos_bars = int(combo[:, :, (np.arange(64) & POS_VOL) != 0].sum())
    real_volume = in_session > 0 and pos_bars >= p.volume_real_share * in_session
    if not real_volume:
        # No volume to tell a stuck feed from a quiet day: the class is the session's own
        # rate of flat bars at the previous close (class c: rate about 2**-c), so a quiet
        # day is measured against quiet days.
        flat = (flags & (FLAT | AT_PREV)) == (FLAT | AT_PREV)
        inside = sess >= 0
        n_flat = np.bincount(sess[flat & inside], minlength=n_k)[:n_k]
        n_all = np.bincount(sess[inside], minlength=n_k)[:n_k]
        # The long runs themselves (the candidates) do not count towards their day's rate.
        r0, rl, _ = _runs(flags, FLAT | AT_PREV, 0, 0, sess, buck, vclass,
                          np.zeros((1, 1)), p.stale_min_bars, 0.0)
        np.subtract.at(n_flat, sess[r0], rl)
        np.subtract.at(n_all, sess[r0], rl)
        rate = (n_flat + 1.0) / (n_all + 2.0)
        day_class = np.clip(np.floor(-np.log2(rate)), 0, 7).astype(np.uint8)
        vclass = np.where(inside, day_class[np.maximum(sess, 0)], 0).astype(np.uint8)
        combo = np.bincount(np.where(inside, buck, n_b) * 512 + vclass.astype(np.int64) * 64
                            + flags, minlength=(n_b + 1) * 512)
        combo = combo[: n_b * 512].reshape(n_b, 8, 64)
    first = np.empty(n_k, np.int64)
    count = np.empty(n_k, np.int64)
    med_vol = np.empty(n_k, np.float64)
    zero_vol = np.empty(n_k, np.int64)
    filled_like = np.empty(n_k, np.int64)
    _k.session_stats(sess, v, flags, first, count, med_vol, zero_vol, filled_like)
    rows = _Rows()
    zero_sessions = np.zeros(n_k, bool)
    if real_volume and "volume_shift" in wanted:
        zero_sessions = _volume_shifts(rows, p, ts, step_ns, first, count, med_vol, zero_vol,
                                       filled_like)
    none_w = np.zeros((1, 1), np.float64)
    codes = np.arange(64)
    by_flags = combo.sum(axis=(0, 1))      # bars per combination of flags

    def some(bits: int, least: int = 1) -> bool:
        """Whether at least ``least`` bars carry every bit of ``bits`` (else a run pass over
        the columns is skipped: on liquid data most are)."""
        return int(by_flags[(codes & bits) == bits].sum()) >= least

    if real_volume and "filled" in wanted and some(FLAT | AT_PREV | ZERO_VOL,
                                                    p.filled_min_bars):
        need = FLAT | AT_PREV | ZERO_VOL
        share = _rate(combo.sum(axis=1), need, 0)
        f0, fl, _ = _runs(flags, need, 0, NEXT, sess, buck, vclass, none_w,
                          p.filled_min_bars, 0.0)
        keep = ~zero_sessions[sess[f0]]
        f0, fl = f0[keep], fl[keep]
        last = f0 + fl - 1
        b = buck[f0]
        rows.add(FILLED, ts[f0], ts[last] + step_ns, fl, c[f0], share[b], fl)
    if "stale" in wanted and some(FLAT | AT_PREV | (POS_VOL if real_volume else 0),
                                  p.stale_min_bars):
        need = FLAT | AT_PREV | (POS_VOL if real_volume else 0)
        # The chance of a flat bar at the previous close by time of day and volume class:
        # a quiet market's flat bars are light, a stuck feed's carry the usual volume.
        rate = _rate(combo, need, POS_VOL if real_volume else 0)
        logp = np.log(rate)
        s0, sl, sw = _runs(flags, need, 0, 0, sess, buck, vclass, logp, p.stale_min_bars,
                           float(np.log(p.stale_alpha)))
        last = s0 + sl - 1
        rows.add(STALE, ts[s0], ts[last] + step_ns, sl, c[s0], rate[buck[s0], vclass[s0]],
                 -sw / np.log(10))
    if "stale" in wanted and some(REPEAT, p.repeat_min_bars):
        # Bars repeated in every field: with real volume next to impossible, without it a
        # quiet market's one-tick bars repeat, so the same rule of chance applies.
        rrate = _rate(combo, REPEAT, 0)
        r0, rl, rw = _runs(flags, REPEAT, FLAT, 0, sess, buck, vclass, np.log(rrate),
                           p.repeat_min_bars, float(np.log(p.stale_alpha)))
        # A repeat run [a, a + m) repeats bar a - 1: the range starts there.
        last = r0 + rl - 1
        rows.add(STALE, ts[r0 - 1], ts[last] + step_ns, rl + 1, c[r0],
                 rrate[buck[r0], vclass[r0]], -rw / np.log(10))
    if "spike" in wanted:
        cap = n // 2 + 1
        out_i = np.empty(cap, np.int64)
        out_l = np.empty(cap, np.int64)
        out_p = np.empty(cap, np.float64)
        out_r = np.empty(cap, np.float64)
        out_s = np.empty(cap, np.float64)
        m = _k.find_spikes(h, lo, c, v, sess, p.spike_block, p.spike_sigmas,
                           float(np.log1p(p.spike_min_move)), p.spike_ref_bars,
                           p.spike_max_bars, p.spike_volume_ratio if real_volume else 0.0,
                           out_i, out_l, out_p, out_r, out_s)
        i0, ln = out_i[:m], out_l[:m]
        rows.add(SPIKE, ts[i0], ts[i0 + ln - 1] + step_ns, ln, out_p[:m], out_r[:m],
                 out_s[:m])
    if "jump" in wanted:
        _jumps(rows, p, ts, c, step_ns, first, count, med_vol, real_volume)
    if "clock_shift" in wanted:
        if real_volume:
            _rebase_profiles(by_class, v, sess, buck, first, count, med_vol, ref_volume)
        _clock_shifts(rows, p, ts, by_class if real_volume else by_range, step_ns, first,
                      count, n_b, first_open, last_close, bucket_ns, windows.sessions, stats)
        _clock_edges(rows, p, ts, o, c, flags, by_class if real_volume else by_range, step_ns,
                     first, count, n_b, first_open, last_close, bucket_ns, windows.sessions)
        _stamp_shifts(rows, p, ts, step_ns, first, count, first_open, last_close)
    if "duplicate_session" in wanted:
        _duplicates(rows, p, ts, hashes, sess, flags, step_ns, first, count, first_open)
    return rows.build(tz)


_REBASE_MIN_OCTAVES = 3     # a session's volume level this many factors of 2 off the usual


def _rebase_profiles(by_class: np.ndarray, v: np.ndarray, sess: np.ndarray,
                     buck: np.ndarray, first: np.ndarray, count: np.ndarray,
                     med_vol: np.ndarray, ref_volume: float) -> None:
    """The activity profile of a session whose volume level is far from the symbol's usual
    one (a unit change, 8x or more), made again with the volume classes measured against
    the session's own level; in place.

    The classes are the binary exponent of the volume over the symbol's typical bar, clipped
    to 1..7: a session whose volume was multiplied by 100 has every bar in class 7 and its
    profile is flat, with no shape left to show a clock shift (a shift and a unit change in
    the same sessions was missed). Sessions at the usual level keep their profile exactly;
    the few rebased are recomputed from their own bars (no pass over the others).
    """
    have = med_vol > 0
    if ref_volume <= 0 or not have.any():
        return
    # against the typical bar of the whole range, which the classes were measured against
    # (a shift that lasts half the range moves that reference too: both sides are rebased)
    off = np.where(have, np.rint(np.log2(np.where(have, med_vol, 1.0) / ref_volume)), 0.0)
    odd = np.flatnonzero(np.abs(off) >= _REBASE_MIN_OCTAVES)
    if len(odd) == 0:
        return
    idx = np.concatenate([np.arange(first[k], first[k] + count[k]) for k in odd.tolist()])
    vv = v[idx]
    pos = vv > 0
    _, e = np.frexp(np.where(pos, vv, 1.0) / ref_volume)
    k_of = sess[idx]
    cls = np.where(pos, np.clip(e + 3 - off[k_of].astype(np.int64), 1, 7), 0)
    n_b = by_class.shape[1]
    ok = (buck[idx] >= 0) & (buck[idx] < n_b)
    by_class[odd] = 0.0
    np.add.at(by_class, (k_of[ok], buck[idx][ok]), cls[ok].astype(np.float64))


def _rate(combo: np.ndarray, need: int, given: int, prior: float = 20.0) -> np.ndarray:
    """Per bucket (and class), the share of the bars with every bit of ``given`` that also
    have every bit of ``need``.

    Sparse cells borrow from the level above (class -> bucket -> the whole range) with the
    weight of ``prior`` bars, so a cell of ten bars none flat does not claim a rate of 0,
    nor one of 1/12.
    """
    codes = np.arange(64)
    has_given = (codes & given) == given
    has_need = has_given & ((codes & need) == need)
    num = combo[..., has_need].sum(axis=-1).astype(np.float64)
    den = combo[..., has_given].sum(axis=-1).astype(np.float64)
    p_all = (num.sum() + 1.0) / (den.sum() + 2.0)
    if num.ndim == 1:
        return (num + prior * p_all) / (den + prior)
    nb, db = num.sum(axis=1), den.sum(axis=1)
    p_b = (nb + prior * p_all) / (db + prior)
    return (num + prior * p_b[:, None]) / (den + prior)


def _runs(flags: np.ndarray, need: int, forbid: int, link: int, sess: np.ndarray,
          buck: np.ndarray, klass: np.ndarray, weight: np.ndarray, min_len: int,
          max_weight: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cap = flags.shape[0] // min_len + 1
    a = np.empty(cap, np.int64)
    ln = np.empty(cap, np.int64)
    w = np.empty(cap, np.float64)
    m = _k.find_runs(flags, need, forbid, link, sess, buck, klass,
                     np.ascontiguousarray(weight, np.float64), min_len, max_weight, a, ln, w)
    return a[:m], ln[:m], w[:m]


def _session_bounds(first: np.ndarray, count: np.ndarray, ts: np.ndarray, step_ns: int,
                    k0: int, k1: int) -> tuple[int, int, int] | None:
    """The first bar's time, the end of the last bar and the bars of sessions [k0, k1)."""
    have = np.flatnonzero(count[k0:k1] > 0) + k0
    if len(have) == 0:
        return None
    a = int(first[have[0]])
    b = int(first[have[-1]] + count[have[-1]] - 1)
    return int(ts[a]), int(ts[b]) + step_ns, int(count[k0:k1].sum())


def _volume_shifts(rows: _Rows, p: AnomalyParams, ts: np.ndarray, step_ns: int,
                   first: np.ndarray, count: np.ndarray, med_vol: np.ndarray,
                   zero_vol: np.ndarray, filled_like: np.ndarray) -> np.ndarray:
    """Sessions without volume, and level shifts that stay; returns the sessions without
    volume (their fills are not ``filled``)."""
    n_k = len(first)
    with_bars = count > 0
    with_volume = med_vol > 0
    zero = (with_bars & (zero_vol == count) & (count >= p.zero_volume_min_bars)
            & (filled_like <= 0.9 * count))
    level = np.where(with_volume & (count >= 5), np.log10(np.where(with_volume, med_vol, 1)),
                     np.nan)
    ok = np.isfinite(level)
    if zero.any() and with_bars.sum() > 0 and (with_volume.sum() >= 0.9 * (with_bars.sum()
                                                                            - zero.sum())):
        # (the finite levels' median: nanmedian's value, made only where it is needed)
        typical = float(np.median(level[ok])) if ok.any() else np.nan
        for kz in np.flatnonzero(zero).tolist():
            b = _session_bounds(first, count, ts, step_ns, kz, kz + 1)
            if b is not None:
                rows.add(VOLUME_SHIFT, b[0], b[1], b[2], 0.0, 10 ** typical, 0.0)
    else:
        zero[:] = False
    if ok.sum() < 2 or level[ok].max() - level[ok].min() < np.log10(p.volume_factor):
        return zero
    step = np.log10(p.volume_factor)
    ref_levels: list[float] = []
    run: list[int] = []
    sign = 0

    def close_run(at_end: bool) -> None:
        if run and (len(run) >= p.volume_min_sessions or at_end):
            b = _session_bounds(first, count, ts, step_ns, run[0], run[-1] + 1)
            if b is not None:
                lv = float(np.median(level[run]))
                rv = float(np.median(ref_levels[-p.volume_ref_sessions:]))
                rows.add(VOLUME_SHIFT, b[0], b[1], b[2], 10 ** lv, 10 ** rv,
                         10 ** (lv - rv))

    for k in range(n_k):
        if not ok[k]:
            continue
        if not ref_levels:
            ref_levels.append(float(level[k]))
            continue
        ref = float(np.median(ref_levels[-p.volume_ref_sessions:]))
        d = float(level[k]) - ref
        if run:
            if d * sign >= 0.5 * step:           # still shifted (hysteresis: half the step)
                run.append(k)
                continue
            close_run(False)
            run = []
        if abs(d) >= step and len(ref_levels) >= 1:
            run = [k]
            sign = 1 if d > 0 else -1
            continue
        ref_levels.append(float(level[k]))
    close_run(True)
    return zero


def _jumps(rows: _Rows, p: AnomalyParams, ts: np.ndarray, c: np.ndarray, step_ns: int,
           first: np.ndarray, count: np.ndarray, med_vol: np.ndarray,
           real_volume: bool) -> None:
    have = np.flatnonzero(count > 0)
    if len(have) < 2:
        return
    f = first[have]
    last = f + count[have] - 1
    k5 = np.arange(5)
    # The closes at each side of a session boundary: the last five of the session before,
    # the first five of the session after (a boundary bar may hold both prices).
    before = _median5(c[np.maximum(last[:-1, None] - k5, f[:-1, None])])
    after = _median5(c[np.minimum(f[1:, None] + k5, last[1:, None])])
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.log(before / after)
    cand = np.flatnonzero(np.abs(step) >= np.log(p.jump_min_step))
    if len(cand) == 0:
        return
    ratios = np.log(np.asarray(p.split_ratios, np.float64))
    tol = p.jump_tolerance if real_volume else p.jump_tolerance / 3
    lvl = np.where(med_vol > 0, np.log(np.where(med_vol > 0, med_vol, 1)), np.nan)
    for j in cand.tolist():
        s = float(step[j])
        err = np.abs(np.abs(s) - ratios)
        r = int(np.argmin(err))
        if err[r] > tol:
            continue
        ka, kb = int(have[j]), int(have[j + 1])
        # The move stays: the session after sits at the new level.
        whole = float(np.median(c[f[j + 1]:last[j + 1] + 1]))
        if abs(np.log(before[j] / whole) - s) > max(tol * 3, abs(s) / 4):
            continue
        vratio = np.nan
        if real_volume:
            # Each side's sessions from the boundary out, up to a unit change of the volume
            # (a step of ``volume_factor`` between sessions, its own ``volume_shift``): a
            # level that moved 100x inside the window said nothing of the split.
            pre = _same_unit(lvl[max(0, ka - 4):ka + 1][::-1], np.log(p.volume_factor))
            post = _same_unit(lvl[kb:kb + 5], np.log(p.volume_factor))
            if not (len(pre) and len(post)):
                continue
            dv = float(np.nanmedian(post) - np.nanmedian(pre))
            vratio = float(np.exp(dv))
            # Volume moves the other way, by a share of the step, and not by a unit change.
            if dv * s < p.jump_volume_share * s * s or abs(dv) > abs(s) + np.log(30):
                continue
        i = int(f[j + 1])
        split = float(p.split_ratios[r])
        rows.add(JUMP, ts[i], ts[i] + step_ns, 1, float(np.exp(s)),
                 split if s > 0 else 1.0 / split, vratio)


def _median5(x: np.ndarray) -> np.ndarray:
    """Row by row, ``np.median(x, axis=1)`` of an (n, 5) array: the middle value (NaN where
    a row holds one), without np.median's overhead (two calls per symbol holding the GIL)."""
    out = np.sort(x, axis=1)[:, 2]          # (a sort of rows of 5: a third of partition's time)
    bad = np.isnan(x).any(axis=1)
    if bad.any():
        out[bad] = np.nan
    return out


def _same_unit(levels: np.ndarray, unit: float) -> np.ndarray:
    """The finite levels from the first on, up to (not including) the first that is
    ``unit`` or more (log) from the one kept before it."""
    keep: list[float] = []
    for x in levels.tolist():
        if not np.isfinite(x):
            continue
        if keep and abs(x - keep[-1]) >= unit:
            break
        keep.append(x)
    return np.asarray(keep, np.float64)


_CLOCK_Z_CAP = 4.0      # deviations one session can add to a run
_CLOCK_MAX_RUN = 30     # the longest run of shifted sessions looked for
# The compiled screen of the clock-shift search: its thresholds on the deviations eased by
# _EPS, its best score trusted when below clock_margin by _SLACK. The two computations part by
# rounding: about 1e-12 on a deviation, at most about 1e-3 on a session whose profile hardly
# varies over its cells (the kernel gives up below a variance of 1e-9).
_CLOCK_SCREEN_EPS = 0.01
_CLOCK_SCREEN_SLACK = 0.1


def _usual_profile(x: np.ndarray, ref_use: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    """Each session's usual profile: the median of the reference sessions' rows ``x`` of its
    own group (weekday or weekend) when that group has at least three of them and the other
    group has some, else of all the reference sessions.  Each median is taken once (on
    exchange hours there is no weekend and both groups share it)."""
    meds: dict[Any, np.ndarray] = {}
    for group in (False, True):
        sel = ref_use & (weekend == group)
        key = group if sel.sum() >= 3 and sel.sum() < ref_use.sum() else None
        if key not in meds:
            meds[key] = np.median(x[sel if key is not None else ref_use], axis=0)
        meds[group] = meds[key]
    return np.where(weekend[:, None], meds[True][None, :], meds[False][None, :])


def _clock_shifts(rows: _Rows, p: AnomalyParams, ts: np.ndarray, prof: np.ndarray,
                  step_ns: int, first: np.ndarray, count: np.ndarray, n_b: int,
                  first_open: np.ndarray, last_close: np.ndarray, bucket_ns: int,
                  sessions: np.ndarray, stats: dict[str, float] | None = None) -> None:
    n_k = len(first)
    if n_k < 3:
        return
    per_hour = int(HOUR_NS // bucket_ns)
    if per_hour < 1:
        return
    hours_list = [h for h in range(-p.clock_max_hours, p.clock_max_hours + 1)
                  if h != 0 and abs(h * per_hour) < n_b - 4]
    if not hours_list:
        return
    weekend = ((sessions.astype("datetime64[D]").astype(np.int64) + 3) % 7) >= 5
    if stats is None:
        # The runs the search below scores first, scored without the GIL: on most symbols
        # none reaches ``clock_margin`` and the search (numpy, holding the GIL) is not run.
        # The kernel's correlations are centred rather than numpy's, equal to rounding: its
        # thresholds are eased and only a score below the margin by a margin is trusted,
        # NaN (a session hardly varying, where the two may part) never.
        best = _k.clock_screen(np.ascontiguousarray(prof, np.float64),
                               np.ascontiguousarray(count, np.int64),
                               (last_close - first_open).astype(np.int64),
                               weekend.astype(np.uint8), bucket_ns, per_hour,
                               np.asarray(hours_list, np.int64), _CLOCK_Z_CAP,
                               min(n_k, _CLOCK_MAX_RUN), p.clock_min_z, p.clock_min_sessions,
                               _CLOCK_SCREEN_EPS)
        if best < p.clock_margin - _CLOCK_SCREEN_SLACK:
            return
    usual_count = np.median(count[count > 0]) if (count > 0).any() else 0
    use = (count >= max(10, 0.5 * usual_count))
    if use.sum() < 3:
        return
    tot = prof.sum(axis=1)
    use &= tot > 0
    shares = np.zeros_like(prof)
    shares[use] = prof[use] / tot[use, None]
    x = np.sqrt(shares)
    # The usual profile per kind of day (``weekend``): weekends trade differently where they
    # trade at all.
    inside = (np.arange(n_b)[None, :] * bucket_ns) < (last_close - first_open)[:, None]
    n_h = len(hours_list)
    # Sessions of the runs found so far: left out of the usual profile and of the symbol's
    # own spread of gains, which are then measured again (a week shifted in a month of data
    # pulls the median profile towards itself and makes the rest look shifted the other way).
    taken = np.zeros(n_k, bool)
    blocked = np.zeros((n_h, n_k), bool)    # (shift, session) of runs looked at and refused
    max_run = min(n_k, _CLOCK_MAX_RUN)
    n_taken = -1
    while True:
        ref_use = use & ~taken
        if ref_use.sum() < 3:
            return
        if int(taken.sum()) != n_taken:      # else only a refusal since: same scores
            n_taken = int(taken.sum())
            usual = _usual_profile(x, ref_use, weekend)
            zs, cors, base, strength = _clock_scores(p, x, usual, inside, use, ref_use, per_hour,
                                                     hours_list)
            if stats is not None and not taken.any():
                stats["clock_strength"] = strength
            # The evidence is pooled over the run of sessions (a shift is a run, and one session
            # of a weak profile says little): for every shift and every run of
            # ``clock_min_sessions`` to ``_CLOCK_MAX_RUN`` sessions, the deviations summed over
            # the square root of its length (about a standard normal's spread when nothing is
            # shifted). The best run over ``clock_margin`` whose mean deviation is at least
            # ``clock_min_z`` is reported, its sessions taken out, and the search repeated.
            z0 = np.nan_to_num(zs, nan=0.0)
            cnt = np.isfinite(zs).astype(np.float64)
            csum = np.concatenate((np.zeros((n_h, 1)), np.cumsum(z0, axis=1)), axis=1)
            ccnt = np.concatenate((np.zeros((n_h, 1)), np.cumsum(cnt, axis=1)), axis=1)
        if n_taken == 0 and not blocked.any():
            # No run can pass when no window of ``max_run`` sessions holds enough positive
            # evidence (sum z / sqrt(n) <= sqrt(sum z+^2) by Cauchy-Schwarz): on most
            # symbols the scan below is skipped.
            zp = np.concatenate((np.zeros((n_h, 1)),
                                 np.cumsum(np.maximum(z0, 0.0) ** 2, axis=1)), axis=1)
            w_len = min(max_run, n_k)
            if float((zp[:, w_len:] - zp[:, :-w_len]).max()) < p.clock_margin ** 2:
                return
        tk = np.concatenate(([0], np.cumsum(taken)))
        bk = np.concatenate((np.zeros((n_h, 1)), np.cumsum(blocked, axis=1)), axis=1)
        # Runs start and end at sessions that look shifted themselves (z >= clock_min_z for
        # that shift): every such (shift, start, end) at once, a few small arrays.
        q = z0 >= p.clock_min_z                                     # (shifts, sessions)
        cand = np.flatnonzero(q.any(axis=0))
        if len(cand) < 1:
            return
        ks, es = np.nonzero(((cand[None, :] - cand[:, None]) >= p.clock_min_sessions - 1)
                            & ((cand[None, :] - cand[:, None]) < max_run))
        if len(ks) == 0:
            return
        k_s, e_s = cand[ks], cand[es]                               # run [k_s, e_s]
        tot = csum[:, e_s + 1] - csum[:, k_s]                        # (shifts, runs)
        nn = ccnt[:, e_s + 1] - ccnt[:, k_s]
        m_s = e_s - k_s + 1
        ok = (q[:, k_s] & q[:, e_s]
              & (nn >= np.maximum(p.clock_min_sessions, 0.75 * m_s)[None, :])
              & (tot >= p.clock_min_z * nn)
              & ((tk[e_s + 1] - tk[k_s]) == 0)[None, :]
              & ((bk[:, e_s + 1] - bk[:, k_s]) == 0))
        score = np.where(ok, tot / np.sqrt(np.maximum(nn, 1)), -np.inf)
        flat_i = int(np.argmax(score))
        if not score.flat[flat_i] > p.clock_margin:
            return
        jm, ri = np.unravel_index(flat_i, score.shape)
        best_run = (int(jm), int(k_s[ri]), int(m_s[ri]))
        j, k, m_len = best_run
        e = k + m_len - 1
        # The deviations are capped, so a run shifted by an hour may score as high under two
        # hours: of the shifts whose score on this run passes, the one that fits best.
        tot = z0[:, k:e + 1].sum(axis=1)
        nn = np.maximum(cnt[:, k:e + 1].sum(axis=1), 1)
        passing = (tot / np.sqrt(nn) > p.clock_margin) & (tot >= p.clock_min_z * nn)
        fit = np.full(n_h, -np.inf)
        for jj in np.flatnonzero(passing):
            c_run = cors[jj, k:e + 1]
            c_run = c_run[np.isfinite(c_run)]
            if len(c_run):
                fit[jj] = float(np.median(c_run))
        if np.isfinite(fit).any():
            j = int(np.argmax(fit))
        # The run's ends are sessions that look shifted themselves: pooled evidence may carry
        # a neighbour or two of the usual kind along.
        while e > k and not z0[j, e] >= p.clock_min_z:
            e -= 1
        while k < e and not z0[j, k] >= p.clock_min_z:
            k += 1
        sel = np.arange(k, e + 1)
        sel = sel[np.isfinite(cors[j, sel])]
        # Shifted back, the run must fit the usual profile about as well as the symbol's
        # sessions do (``clock_fit_share`` of their median correlation): an odd run that
        # merely loses less than usual under a shift is not shifted.
        typical = float(np.nanmedian(base[ref_use & ~taken]))
        # ... and better than it does as stamped: a run that only loses less than the
        # symbol's sessions do under a shift (a flat profile loses little) is not shifted.
        if (not len(sel)
                or float(np.median(cors[j, sel])) < max(p.clock_min_corr,
                                                        p.clock_fit_share * typical)
                or not float(np.median(cors[j, sel])) > float(np.nanmedian(base[sel]))):
            # refused: this run under these shifts is not looked at again (its sessions stay
            # in play for other runs and shifts)
            blocked[passing, k:e + 1] = True
            blocked[j, k:e + 1] = True
            continue
        taken[k:e + 1] = True
        b = _session_bounds(first, count, ts, step_ns, k, e + 1)
        if b is not None:
            rows.add(CLOCK_SHIFT, b[0], b[1], b[2], float(hours_list[j]),
                     float(np.nanmedian(base[sel])), float(np.median(cors[j, sel])))


def _median1(a: np.ndarray) -> float:
    """The median of a 1-D array without NaN, as ``np.median`` (a partition, without its
    per-call overhead: a few hundred calls per symbol)."""
    n = a.shape[0]
    h = n // 2
    if n % 2:
        return float(np.partition(a, h)[h])
    q = np.partition(a, (h - 1, h))
    return 0.5 * (float(q[h - 1]) + float(q[h]))


def _corr(xs: np.ndarray, ref: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Row by row, the correlation of ``xs`` and ``ref`` over the cells of mask ``m``."""
    if m.all():
        # every cell counts (most symbols: sessions of one length): fewer passes
        dx = xs - xs.mean(axis=1)[:, None]
        dr = ref - ref.mean(axis=1)[:, None]
        num = np.einsum("ij,ij->i", dx, dr)
        den = np.sqrt(np.einsum("ij,ij->i", dx, dx) * np.einsum("ij,ij->i", dr, dr))
        with np.errstate(invalid="ignore", divide="ignore"):
            return num / den
    # by the sums over the cells (values are square roots of shares, in [0, 1]: no
    # cancellation to fear), a third of the passes of centring first
    w = m.astype(np.float64)
    xw = xs * w
    rw = ref * w
    nw = w.sum(axis=1)
    sx = xw.sum(axis=1)
    sr = rw.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.einsum("ij,ij->i", xw, ref) - sx * sr / nw
        vx = np.einsum("ij,ij->i", xw, xs) - sx * sx / nw
        vr = np.einsum("ij,ij->i", rw, ref) - sr * sr / nw
        den = np.sqrt(np.maximum(vx, 0.0) * np.maximum(vr, 0.0))
        # a row without spread has no correlation (the sums leave rounding where centring
        # left an exact 0 / 0)
        return np.where(den > 1e-12, num / den, np.nan)


def _clock_scores(p: AnomalyParams, x: np.ndarray, usual: np.ndarray, inside: np.ndarray,
                  use: np.ndarray, ref_use: np.ndarray, per_hour: int,
                  hours_list: list[int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per shift and session, the gain of the shift in robust deviations (capped), the
    correlation shifted back; and each session's correlation as stamped.

    A session's gain is its correlation with the usual profile shifted by that many hours
    less its correlation as stamped; the deviations are from the symbol's own gains for that
    shift (median, MAD over the sessions of ``ref_use``): a weak profile fits any shift
    almost as well, a marked one never does. The last value is the profile's strength (see
    `clock_profile_strength`).
    """
    n_k = x.shape[0]
    strength = np.inf
    base = _corr(x, usual, inside)
    zs = np.full((len(hours_list), n_k), np.nan)
    cors = np.full((len(hours_list), n_k), np.nan)
    for j, hours in enumerate(hours_list):
        s = hours * per_hour
        # stamped ``hours`` late: the session's bucket b holds the usual bucket b - s
        if s > 0:
            xs, ref, m = x[:, s:], usual[:, :-s], inside[:, s:] & inside[:, :-s]
        else:
            xs, ref, m = x[:, :s], usual[:, -s:], inside[:, :s] & inside[:, -s:]
        cs = _corr(xs, ref, m)
        gain = cs - base
        ok = use & np.isfinite(gain)
        g = gain[ok & ref_use]
        if len(g) < 3:
            continue
        med = _median1(g)
        mad = max(1.4826 * _median1(np.abs(g - med)), 0.005)
        # Capped: one odd session must not carry a run by itself.
        zs[j, ok] = np.clip((gain[ok] - med) / mad, -_CLOCK_Z_CAP, _CLOCK_Z_CAP)
        cors[j] = cs
        # A session shifted by this much gains about what the others lose: its deviation is
        # about twice the median loss over the spread.
        strength = min(strength, -2.0 * med / mad)
    return zs, cors, base, (strength if np.isfinite(strength) else float("nan"))


def _clock_edges(rows: _Rows, p: AnomalyParams, ts: np.ndarray, o: np.ndarray, c: np.ndarray,
                 flags: np.ndarray, prof: np.ndarray, step_ns: int, first: np.ndarray,
                 count: np.ndarray, n_b: int, first_open: np.ndarray, last_close: np.ndarray,
                 bucket_ns: int, sessions: np.ndarray) -> None:
    """Clock shifts that show at an edge of sessions that run back to back: a session
    missing exactly ``h`` whole hours at its open (a run stamped ``h`` late starts there;
    its last hours' bars fell into the next session, which has its own) or at its close (a
    run stamped early ends there), in a symbol that has its bars at the opens (closes)
    elsewhere, where the bars on the two sides of the hole join as consecutive bars do
    (the first one's open within twice the 90th percentile of the symbol's moves from a
    close to the next bar's open: an outage of an hour leaves an hour's move there). The
    profile's evidence for that shift over a run from (to) it then needs only
    ``clock_edge_margin`` (see `AnomalyParams`). Sessions of runs already reported are
    left alone."""
    n_k = len(first)
    if n_k < 4 or len(ts) == 0:
        return
    have = count > 0
    if have.sum() < 4:
        return
    last_i = np.where(have, first + count - 1, 0)
    lead = np.where(have, (ts[np.where(have, first, 0)] - first_open) // step_ns, -1)
    trail = np.where(have, (last_close - ts[last_i] - step_ns) // step_ns, -1)
    # The data may start (end) inside a session: the first session's open and the last
    # one's close tell nothing.
    with_bars = np.flatnonzero(have)
    lead[with_bars[0]] = -1
    trail[with_bars[-1]] = -1
    per_hour = int(HOUR_NS // bucket_ns)
    hour_slots = HOUR_NS // step_ns
    if per_hour < 1 or hour_slots < 1:
        return
    hours_list = [h for h in range(-p.clock_max_hours, p.clock_max_hours + 1)
                  if h != 0 and abs(h * per_hour) < n_b - 4]
    taken = np.zeros(n_k, bool)
    for part in rows.parts:                  # the runs the pooled search reported
        if part[0][0] == CLOCK_SHIFT:
            for a, b in zip(part[1].tolist(), part[2].tolist()):
                k0 = int(np.searchsorted(first_open, a, side="right")) - 1
                k1 = int(np.searchsorted(first_open, b - 1, side="right")) - 1
                taken[max(k0, 0):k1 + 1] = True
    # back to back: session k's open is k - 1's close, the bar before k's open is the last
    # slot of k - 1 and the one after k - 1's close the first of k
    joined = np.zeros(n_k, bool)             # k - 1 and k back to back, both with bars
    joined[1:] = (first_open[1:] == last_close[:-1]) & have[1:] & have[:-1]
    cands: list[tuple[int, int, bool]] = []  # (shift index, session, joined to the next)
    free_ = have & ~taken
    brk = first_open[1:] > last_close[:-1]
    for j, h in enumerate(hours_list):
        hs = abs(h) * hour_slots
        edge = lead if h > 0 else trail
        hit = free_ & (edge >= hs) & (edge < hs + max(2, hs // 12))
        if not hit.any():        # (most symbols: no session misses whole hours)
            continue
        if h > 0:      # the late run starts at k: k - 1 ends at its close
            join = joined & (np.concatenate(([-1], trail[:-1])) == 0)
            after_break = np.concatenate(([True], brk))
        else:          # the early run ends at k: k + 1 starts at its open
            join = (np.concatenate((joined[1:], [False]))
                    & (np.concatenate((lead[1:], [-1])) == 0))
            after_break = np.concatenate((brk, [True]))
        # an edge at a break (the FX week's Sunday open, Friday close) has no bar on the
        # other side to join: it counts, with a higher margin (``clock_edge_break_margin``)
        hit &= join | after_break
        # the symbol has its bars at that edge elsewhere: a late start is its habit if not
        if hit.any() and float(np.mean(edge[have & ~hit] >= hs // 2)) <= 0.1:
            cands.extend((j, int(k), bool(join[k])) for k in np.flatnonzero(hit))
    if not cands:
        return
    # the two sides of the hole join as consecutive bars do
    nxt = np.flatnonzero((flags[1:] & NEXT) != 0) + 1
    nxt = nxt[:: max(1, len(nxt) // 4096)]
    if len(nxt) < 20:
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        step_moves = np.abs(np.log(o[nxt] / c[nxt - 1]))
    limit = 2.0 * float(np.nanquantile(step_moves, 0.9)) + 1e-12
    kept: list[tuple[int, int, float]] = []
    for j, k, at_join in cands:
        if at_join:
            i = int(first[k]) if hours_list[j] > 0 else int(first[k + 1])
            with np.errstate(divide="ignore", invalid="ignore"):
                g = abs(float(np.log(o[i] / c[i - 1])))
            if not g <= limit:
                continue
        kept.append((j, k, p.clock_edge_margin if at_join else p.clock_edge_break_margin))
    if not kept:
        return
    usual_count = np.median(count[have])
    use = (count >= max(10, 0.5 * usual_count))
    tot = prof.sum(axis=1)
    use &= tot > 0
    if use.sum() < 4:
        return
    shares = np.zeros_like(prof)
    shares[use] = prof[use] / tot[use, None]
    x = np.sqrt(shares)
    ref_use = use & ~taken
    for j, k, _ in kept:
        ref_use[k] = False
    if ref_use.sum() < 3:
        return
    weekend = ((sessions.astype("datetime64[D]").astype(np.int64) + 3) % 7) >= 5
    usual = _usual_profile(x, ref_use, weekend)
    inside = (np.arange(n_b)[None, :] * bucket_ns) < (last_close - first_open)[:, None]
    # The hole itself is left out of its session's profile, as stamped and shifted: an
    # empty first hour fits a profile shifted an hour late by construction (an outage at
    # the open scored as a shift).
    n_in = inside.sum(axis=1)
    for j, k, _ in kept:
        w = abs(hours_list[j]) * per_hour
        if hours_list[j] > 0:
            inside[k, :w] = False
        else:
            inside[k, max(0, int(n_in[k]) - w):int(n_in[k])] = False
    zs, cors, base, _ = _clock_scores(p, x, usual, inside, use, ref_use, per_hour, hours_list)
    z0 = np.nan_to_num(zs, nan=0.0)
    cnt = np.isfinite(zs)
    max_run = min(n_k, _CLOCK_MAX_RUN)
    for j, k, margin in kept:
        if taken[k]:
            continue
        h = hours_list[j]
        # runs from k on (stamped late) or up to k (stamped early), of sessions not taken
        ends = (np.arange(k, min(n_k, k + max_run)) if h > 0
                else np.arange(k, max(-1, k - max_run), -1))
        free = np.cumsum(taken[ends]) == 0
        ends = ends[free]
        if len(ends) < p.clock_min_sessions:
            continue
        zz = np.cumsum(z0[j, ends])
        nn = np.cumsum(cnt[j, ends])
        size = np.arange(1, len(ends) + 1)
        # At a joined edge (the price join passed) the hole and the join are most of the
        # evidence: the sessions need only lean the shift's way (half the mean deviation,
        # the last one positive); at a break the pooled search's conditions hold.
        min_z = p.clock_min_z if margin > p.clock_edge_margin else 0.5 * p.clock_min_z
        end_z = p.clock_min_z if margin > p.clock_edge_margin else 0.0
        score = np.where((size >= p.clock_min_sessions) & (nn >= 0.75 * size)
                         & (zz >= min_z * nn) & (z0[j, ends] > end_z),
                         zz / np.sqrt(np.maximum(nn, 1)), -np.inf)
        best = int(np.argmax(score))
        if not score[best] >= margin:
            continue
        run = np.sort(ends[:best + 1])
        sel = run[np.isfinite(cors[j, run])]
        if not len(sel):
            continue
        # No test of the fit shifted back against the usual one (the pooled search's): on
        # the weak profiles where the edge is needed a one-hour shift changes the
        # correlation by less than a day's noise; the edge itself is the evidence of a
        # shift, the profile says which way and over which sessions.
        fit = float(np.median(cors[j, sel]))
        k0, e = int(run[0]), int(run[-1])
        taken[k0:e + 1] = True
        b = _session_bounds(first, count, ts, step_ns, k0, e + 1)
        if b is not None:
            rows.add(CLOCK_SHIFT, b[0], b[1], b[2], float(h), float(np.nanmedian(base[sel])),
                     fit)


def _stamp_shifts(rows: _Rows, p: AnomalyParams, ts: np.ndarray, step_ns: int,
                  first: np.ndarray, count: np.ndarray, first_open: np.ndarray,
                  last_close: np.ndarray) -> None:
    """The stamp-convention change: a run of sessions stamped one base interval late (bar
    ends for bar starts), each starting one slot late with its last bar at the close.

    Only sessions followed by a break can show it (on back-to-back sessions the bar stamped
    at one's close is the next one's first). A session is late when it has no bar at its
    open, one at the next slot and one stamped at its close; a run of at least
    ``clock_min_sessions`` late sessions is reported when the symbol's rate of late sessions
    elsewhere, to the power of the run's length, is at most ``clock_stamp_alpha``.
    """
    n_k = len(first)
    if n_k < 3 or len(ts) == 0:
        return

    def present(t: np.ndarray) -> np.ndarray:
        i = np.minimum(np.searchsorted(ts, t), len(ts) - 1)
        return ts[i] == t

    next_open = np.append(first_open[1:], np.iinfo(np.int64).max)
    can = (count > 0) & (next_open > last_close)
    late = (can & ~present(first_open) & present(first_open + step_ns)
            & present(last_close))
    n_late = int(late.sum())
    if n_late < p.clock_min_sessions:
        return
    n_can = int(can.sum())
    k = 0
    while k < n_k:
        if not late[k]:
            k += 1
            continue
        e = k
        while e + 1 < n_k and late[e + 1]:
            e += 1
        m = e - k + 1
        rate = (n_late - m + 0.5) / (n_can - m + 1.0)
        if m >= p.clock_min_sessions and m * np.log(rate) <= np.log(p.clock_stamp_alpha):
            b = _session_bounds(first, count, ts, step_ns, k, e + 1)
            if b is not None:
                # the range runs to the end of the bar stamped at the last session's close
                rows.add(CLOCK_SHIFT, b[0], int(last_close[e]) + step_ns, b[2] + m,
                         step_ns / HOUR_NS, rate, float(m))
        k = e + 1


def _duplicates(rows: _Rows, p: AnomalyParams, ts: np.ndarray, hashes: np.ndarray,
                sess: np.ndarray, flags: np.ndarray, step_ns: int, first: np.ndarray,
                count: np.ndarray, first_open: np.ndarray) -> None:
    n_k = len(first)
    if n_k < 2:
        return
    sketch = np.empty((n_k, 8), np.uint64)
    _k.session_sketches(hashes, flags, sess, sketch)
    full = sketch[:, -1] != np.iinfo(np.uint64).max
    flat = sketch[full].ravel()
    if len(flat) == 0:
        return
    owner = np.repeat(np.flatnonzero(full), 8)
    order = np.argsort(flat, kind="stable")
    fs, ow = flat[order], owner[order]
    same = fs[1:] == fs[:-1]
    if not same.any():
        return
    pairs: dict[tuple[int, int], int] = {}
    for i in np.flatnonzero(same & (ow[1:] != ow[:-1])).tolist():
        a, b = sorted((int(ow[i]), int(ow[i + 1])))
        pairs[(a, b)] = pairs.get((a, b), 0) + 1
    done: set[int] = set()
    for (a, b), shared in sorted(pairs.items(), key=lambda kv: kv[0][1]):
        if shared < 4 or b in done:
            continue
        sa = slice(int(first[a]), int(first[a] + count[a]))
        sb = slice(int(first[b]), int(first[b] + count[b]))
        off_a = ts[sa] - first_open[a]
        off_b = ts[sb] - first_open[b]
        _, ia, ib = np.intersect1d(off_a, off_b, assume_unique=True, return_indices=True)
        fb = flags[sb][ib]
        nonflat = ((fb & FLAT) == 0) | ((fb & POS_VOL) != 0)
        equal = int((hashes[sa][ia] == hashes[sb][ib]).sum())
        if nonflat.sum() < p.duplicate_min_bars or equal < p.duplicate_min_equal * count[b]:
            continue
        done.add(b)
        rows.add(DUPLICATE_SESSION, ts[sb.start], ts[sb.stop - 1] + step_ns, int(count[b]),
                 equal / int(count[b]), len(ia), equal, int(ts[sa.start]))


def find_anomalies(bars: Bars, calendar: Calendar | None = None, *, base: Any = None,
                   start: Any = None, end: Any = None, params: AnomalyParams | None = None,
                   **thresholds: Any) -> Anomalies:
    """Find the bars that are there but not real (see ``docs/anomalies.md``).

    Parameters
    ----------
    bars : Bars
        One symbol's base bars.
    calendar : Calendar, optional
        Defaults to ``Calendar.always()`` (24/7, sessions are UTC days).
    base : str, optional
        The base interval when ``bars.interval`` is not set (else inferred).
    start, end : optional
        Times whose sessions are looked at, when they reach beyond the bars.
    params : AnomalyParams, optional
        Thresholds; ``**thresholds`` change single ones (``spike_sigmas=15``).

    Returns
    -------
    Anomalies
        Sorted by start, with the kind, the range, its bars and the evidence.

    Raises
    ------
    ValueError
        A bar outside every session window of the calendar (naming the first), or bars
        whose interval is not intraday.
    TypeError
        ``bars`` not ``Bars``, or an unknown threshold.
    """
    from .api import _base_of
    from .kernels import default_calendar, session_windows

    calendar = default_calendar(calendar)
    if not isinstance(bars, Bars):
        raise TypeError(f"find_anomalies takes Bars, got {type(bars).__name__}")
    p = (params or AnomalyParams()).replace(**thresholds) if thresholds else params
    if len(bars) == 0:
        return Anomalies.empty(calendar.tz)
    step = _base_of(bars, base).ns
    if step <= 0:
        raise ValueError("find_anomalies needs bars of an intraday interval (base=...), "
                         f"got {bars.interval}")
    windows = session_windows(calendar, bars.ts, start, end)
    # As find_gaps: a bar outside every session window is an error, not something to skip.
    w = np.searchsorted(windows.open_ns, bars.ts, side="right") - 1
    inside = (w >= 0) & (bars.ts < windows.close_ns[np.maximum(w, 0)])
    if not inside.all():
        row = int(np.argmin(inside))
        raise ValueError(f"find_anomalies on calendar {calendar.name}: bar {row} at "
                         f"{local_time(int(bars.ts[row]), calendar.tz).isoformat()} is "
                         f"outside every session window ({int((~inside).sum())} bars are)")
    return detect_symbol(bars, windows, step, p, tz=calendar.tz)
