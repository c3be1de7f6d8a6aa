"""Does the data fit the options it is read with?  One score, computed on the whole input.

A file read in the wrong time zone, with the wrong stamp (a bar's start or its end) or the
wrong base interval still gives numbers: bars fall outside the sessions (and are set aside as
"outside the session's hours" when they fall on a session's day) and slots go missing.  Every
run of ``sessiondata run`` (``sessiondata.run`` on files) scores how its data fits the
calendar under the options given, and under the readings it could have used instead:

- the time zone of naive times: the one given, UTC and the calendar's zone;
- the stamp: ``start`` and ``end``;
- the base interval: the one given and the one the spacing of the timestamps shows (the most
  common step between consecutive bars).

The **fit** of a reading is ``inside / (bars + missing)``: the bars that fall inside a
session window (at most one per expected slot of the window), over all bars read plus the
expected slots left without a bar (a symbol's expected slots run from its first bar to the end
of its last).  It is 1 when every bar lies in a session and no slot is missing, and it falls
both with bars outside the sessions and with missing slots, so neither can be traded for the
other.  The counts are sums over symbols and files, so a folder is scored as a whole.

A run is **implausible** when another reading's fit is at least ``SCORE_MARGIN`` (0.01, one
point) above the run's own *and* leaves at most ``MISFIT_SHARE`` (80 %) of its misfit
``1 - fit``, or when another reading puts every bar inside a session, the run's own does
not, and it leaves no more slots missing (an end-stamped file read as start-stamped loses one
bar a session and misses one slot, below the margin: 6E read so has fit 98.47 % against
98.61 %).  Then the summary, the manifest (``summary.plausibility``) and a
``PlausibilityWarning`` (Python) say so with the options to use; with ``strict`` (``--strict``)
the run fails instead (exit 2) and no export is written.  Both thresholds are deliberately
loose: the files of ``../shared/data`` read with their right options score at least as high
as every alternative, while the misreadings of issue 19 (6E read in New York or Berlin
time, a 5m file run as 1m, an end-stamped file read as start-stamped) lose 2 to 80 points.

The cost is a few binary searches per session window and reading: the windows are mapped
into the frame the file was read in, never the bars (see :func:`score_readings`).
"""

from __future__ import annotations

import itertools
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ._core import validation as _validation
from .calendar import Calendar, WindowSpan, local_days, zone_transitions
from .intervals import parse_interval

__all__ = ["Fit", "MISFIT_SHARE", "Plausibility", "PlausibilityError", "PlausibilityWarning",
           "Reading", "SCORE_MARGIN", "better_reading", "candidate_fits", "comparison",
           "infer_base_ns", "interval_name", "misread_hint", "score_readings"]

SCORE_MARGIN = 0.01
MISFIT_SHARE = 0.8

_VENDOR_FORMATS = ("lean", "databento", "binance")
_S = 1_000_000_000


class PlausibilityWarning(UserWarning):
    """The data fit other options clearly better than those the run was given."""


class PlausibilityError(ValueError):
    """Under ``strict``: the data fit other options clearly better (the message says which)."""


@dataclass(frozen=True)
class Reading:
    """How a file's times are read: the zone of naive times (None when the times carry
    their own), the stamp and the base interval (ns)."""

    tz: str | None
    stamp: str
    base_ns: int

    def flags(self, other: "Reading | None" = None) -> str:
        """The command-line options of this reading (those that differ from ``other``)."""
        out = []
        if self.tz is not None and (other is None or other.tz != self.tz):
            out.append(f"--tz {self.tz}")
        if other is None or other.stamp != self.stamp:
            out.append(f"--stamp {self.stamp}")
        if other is None or other.base_ns != self.base_ns:
            out.append(f"--base {interval_name(self.base_ns)}")
        return " ".join(out)


@dataclass
class Fit:
    """How the bars fit a calendar under one reading (sums over symbols)."""

    bars: int = 0
    inside: int = 0          # bars inside a window, at most one per expected slot
    outside: int = 0         # bars outside every window
    outside_on_session_day: int = 0   # of those, on a session's (local) day; with extended=
    expected: int = 0
    missing: int = 0
    empty_sessions: int = 0  # sessions inside a symbol's span with no bar at all

    def add(self, other: "Fit") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def score(self) -> float:
        """``inside / (bars + missing)``; 0 without bars."""
        total = self.bars + self.missing
        return self.inside / total if total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"bars": self.bars, "inside": self.inside, "outside": self.outside,
                "expected": self.expected, "missing": self.missing,
                "empty_sessions": self.empty_sessions, "fit": round(self.score, 6)}


def interval_name(ns: int) -> str:
    """``300_000_000_000`` -> ``"5m"`` (the largest whole unit)."""
    for unit, size in (("h", 3600 * _S), ("m", 60 * _S), ("s", _S), ("ms", 1_000_000),
                       ("us", 1_000), ("ns", 1)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def infer_base_ns(ts_arrays: Iterable[np.ndarray],
                  steps: Sequence[tuple[int, int, int, int] | None] | None = None
                  ) -> tuple[int | None, float]:
    """The most common step between consecutive bars (ns) over all symbols, and the share
    of steps that are it; (None, 0) with fewer than two bars.  The smallest step is tried
    first (one pass): it is the base in all but odd files.  ``steps``: per array, its
    ``validation.step_counts`` when known already (the reader's), else None."""
    ts_arrays = list(ts_arrays)
    known = list(steps) if steps is not None else [None] * len(ts_arrays)
    pairs = [(np.ascontiguousarray(ts, dtype=np.int64), k)
             for ts, k in zip(ts_arrays, known) if len(ts) > 1]
    arrays = [a for a, _k in pairs]
    if not arrays:
        return None, 0.0
    # The smallest step and its share in one compiled pass per symbol (no array of steps).
    spacing = [c for c in (k if k is not None else _validation.step_counts(a)
                           for a, k in pairs) if c[2]]
    if spacing:
        least = min(c[0] for c in spacing)
        share = float(sum(c[1] for c in spacing if c[0] == least)) / sum(c[2] for c in spacing)
        if share >= 0.5:
            return least, share
    diffs = [np.diff(ts) for ts in arrays]
    d = np.concatenate(diffs) if len(diffs) > 1 else diffs[0]
    d = d[d > 0]
    if not len(d):
        return None, 0.0
    smallest = int(d.min())
    share = float(np.count_nonzero(d == smallest)) / len(d)
    if share >= 0.5:
        return smallest, share
    values, counts = np.unique(d, return_counts=True)
    k = int(np.argmax(counts))
    return int(values[k]), float(counts[k]) / len(d)


# ------------------------------------------------------------------------------------------
# Zone offsets of many instants, with the transitions of a zone cached over whole years
# ------------------------------------------------------------------------------------------

_YEAR_S = 366 * 86_400
_zone_cache: dict[str, tuple[int, int, np.ndarray, np.ndarray]] = {}
_zone_lock = threading.Lock()


def _offsets_s(zone, utc_ns: np.ndarray) -> np.ndarray:
    """The UTC offset (s) of ``zone`` at each instant."""
    key = zone.key
    if key in ("UTC", "Etc/UTC", "GMT", "Etc/GMT", "Universal", "Zulu"):
        return np.zeros(len(utc_ns), np.int64)
    s = np.asarray(utc_ns, dtype=np.int64) // _S
    lo, hi = int(s.min()) - 86_400, int(s.max()) + 86_400
    cached = _zone_cache.get(key)
    if cached is None or lo < cached[0] or hi > cached[1]:
        with _zone_lock:
            if cached is not None:
                lo, hi = min(lo, cached[0]), max(hi, cached[1])
            lo, hi = lo - lo % _YEAR_S, hi + _YEAR_S - hi % _YEAR_S
            at, off = zone_transitions(zone, lo, hi)
            cached = (lo, hi, at, off)
            _zone_cache[key] = cached
    return cached[3][np.searchsorted(cached[2], s, side="right")]


def _to_wall(utc_ns: np.ndarray, zone) -> np.ndarray:
    """UTC instants -> wall-clock ns in ``zone``."""
    return utc_ns + _offsets_s(zone, utc_ns) * _S


def _from_wall(wall_ns: np.ndarray, zone) -> np.ndarray:
    """Wall-clock ns in ``zone`` -> UTC (the offset near the instant; exact away from the
    hour of a change, which is all a score needs)."""
    guess = wall_ns - _offsets_s(zone, wall_ns) * _S
    return wall_ns - _offsets_s(zone, guess) * _S


# ------------------------------------------------------------------------------------------
# The score
# ------------------------------------------------------------------------------------------


def _zone(name: str):
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


def score_readings(ts_by_symbol: Sequence[np.ndarray], calendar: Calendar,
                   readings: Iterable[Reading], *, read_tz: str | None, read_shift_ns: int,
                   extended: bool = False, span: WindowSpan | None = None
                   ) -> dict[Reading, Fit]:
    """The fit of the bars to ``calendar`` under each reading.

    Parameters
    ----------
    ts_by_symbol : sequence of int64 arrays
        Each symbol's bars as read (sorted, UTC ns), under the zone ``read_tz`` and shifted
        back by ``read_shift_ns`` (the base interval when read with ``stamp="end"``).
    calendar : Calendar
    readings : iterable of Reading
        The readings to score (a reading's ``tz`` is ignored when ``read_tz`` is None:
        the times carry their own zone).
    read_tz : str or None
    read_shift_ns : int
    extended : bool
        Also count the bars outside the windows that fall on a session's day
        (``Fit.outside_on_session_day``; costs a pass over those bars).
    span : calendar.WindowSpan, optional
        Windows of ``calendar`` laid out already over the bars: a reading whose range lies
        inside is cut from them (the same windows as the calendar's).

    Returns
    -------
    dict of Reading to Fit
        A reading the calendar cannot serve (dates beyond an exchange's range) is left out.

    Notes
    -----
    Rather than moving every bar, each session window ``[open, close)`` of a reading is
    mapped into the frame the bars were read in (back through the reading's shift and zone),
    and the bars inside it are counted by two binary searches.
    """
    raws = [np.asarray(ts, dtype=np.int64) for ts in ts_by_symbol if len(ts)]
    if read_shift_ns:       # (no copy of the times when there is nothing to add)
        raws = [raw + read_shift_ns for raw in raws]
    out: dict[Reading, Fit] = {}
    if not raws:
        return out
    first = np.array([int(r[0]) for r in raws], np.int64)
    last = np.array([int(r[-1]) for r in raws], np.int64)
    read_zone = _zone(read_tz) if read_tz is not None else None
    windows_of = WindowSpan.of(calendar, span)
    for reading in readings:
        zone = _zone(reading.tz) if (reading.tz is not None and read_zone is not None
                                     and reading.tz != read_tz) else None
        shift = reading.base_ns if reading.stamp == "end" else 0
        b = reading.base_ns

        def to_reading(raw: np.ndarray) -> np.ndarray:
            if zone is not None:
                raw = _from_wall(_to_wall(raw, read_zone), zone)
            return raw - shift

        def to_raw(utc: np.ndarray) -> np.ndarray:
            utc = utc + shift
            if zone is not None:
                utc = _from_wall(_to_wall(utc, zone), read_zone)
            return utc

        lo = to_reading(first)
        hi = to_reading(last) + b
        try:
            w = windows_of.windows(int(lo.min()), int(hi.max()))
        except ValueError:
            continue
        fit = Fit()
        if len(w) == 0:
            for raw in raws:
                fit.bars += len(raw)
                fit.outside += len(raw)
            out[reading] = fit
            continue
        o, c = np.asarray(w.open_ns, np.int64), np.asarray(w.close_ns, np.int64)
        o_raw = np.ascontiguousarray(to_raw(o), np.int64)
        c_raw = np.ascontiguousarray(to_raw(c), np.int64)
        sid = np.asarray(w.session_ids, np.int64)
        for k, raw in enumerate(raws):
            # Each window expects the base slots, counted from its open, inside the
            # symbol's span; it holds the bars between its bounds mapped back to the frame
            # the bars were read in (at most one a slot counts as inside).
            inside, held, expected, missing, empty = _validation.window_fit(
                np.ascontiguousarray(raw), o, c, o_raw, c_raw, sid, w.n_sessions,
                int(lo[k]), int(hi[k]), b)
            fit.bars += len(raw)
            fit.inside += inside
            fit.outside += len(raw) - held
            fit.expected += expected
            fit.missing += missing
            fit.empty_sessions += empty
            if extended and fit.outside:
                fit.outside_on_session_day += _on_session_days(raw, o_raw, c_raw,
                                                               to_reading, calendar)
        out[reading] = fit
    return out


def _on_session_days(raw, o_raw, c_raw, to_reading, calendar: Calendar) -> int:
    """How many bars outside the windows fall on a session's local day."""
    k = np.searchsorted(o_raw, raw, side="right") - 1
    inside = (k >= 0) & (raw < c_raw[np.maximum(k, 0)])
    outside = raw[~inside]
    if not len(outside):
        return 0
    days = local_days(to_reading(outside), calendar.tz)
    try:
        labels = calendar.sessions(np.datetime64(int(days.min()), "D"),
                                   np.datetime64(int(days.max()), "D")).astype(np.int64)
    except ValueError:
        return 0
    return int(np.isin(days, labels).sum())


def better_reading(fits: Mapping[Reading, Fit], current: Reading) -> Reading | None:
    """The reading that fits clearly better than ``current`` (see the module), or None."""
    now = fits.get(current)
    if now is None or now.bars == 0:
        return None
    best = max(fits, key=lambda r: (fits[r].score, r == current))
    if best == current:
        return None
    s_best, s_now = fits[best].score, now.score
    if s_best - s_now >= SCORE_MARGIN and (1 - s_best) <= MISFIT_SHARE * (1 - s_now):
        return best
    # Another reading puts every bar inside a session, the one used does not, and no more
    # slots are missing: a wrong stamp costs one bar a session (and a slot), below the margin.
    alts = [r for r, f in fits.items() if r != current and f.bars and f.inside == f.bars
            and f.missing <= now.missing]
    if alts and now.inside < now.bars:
        return max(alts, key=lambda r: (fits[r].score, -len(r.flags(current))))
    return None


# ------------------------------------------------------------------------------------------
# A run's check
# ------------------------------------------------------------------------------------------


def candidate_fits(ts_by_symbol: Sequence[np.ndarray], calendar: Calendar, current: Reading,
                   naive: bool, *, span: WindowSpan | None = None,
                   steps: Sequence[tuple[int, int, int, int] | None] | None = None
                   ) -> dict[Reading, Fit]:
    """The fit of the bars under the reading they were read with and each alternative.

    Parameters
    ----------
    ts_by_symbol : sequence of int64 arrays
        Each symbol's bars as read under ``current`` (sorted, UTC ns).
    calendar : Calendar
    current : Reading
        How the bars were read (``tz`` None for times that carry their zone).
    naive : bool
        Whether the times were naive; only then are other zones tried.
    span : calendar.WindowSpan, optional
        Windows laid out already over the bars (see :func:`score_readings`).
    steps : sequence, optional
        Per symbol, ``validation.step_counts`` of its times when known (see
        :func:`infer_base_ns`).

    Returns
    -------
    dict of Reading to Fit
        ``current`` and the alternatives: the zones ``current.tz``, UTC and the calendar's
        (naive times only), both stamps, and the base interval given and the one the
        spacing of the timestamps shows (whole seconds, at least half the steps).
    """
    zones = [current.tz if naive else None]
    if naive:
        for z in ("UTC", calendar.tz.key):
            if z not in zones:
                zones.append(z)
    bases = [current.base_ns]
    inferred, share = infer_base_ns(ts_by_symbol, steps)
    if inferred and inferred not in bases and inferred % _S == 0 and share >= 0.5:
        bases.append(inferred)
    readings = [Reading(z, s, b) for z, s, b in itertools.product(
        zones, ("start", "end"), bases)]
    shift = current.base_ns if current.stamp == "end" else 0
    return score_readings(ts_by_symbol, calendar, readings,
                          read_tz=current.tz if naive else None, read_shift_ns=shift,
                          span=span)


def comparison(current: Reading, now: Fit, better: Reading, alt: Fit, *,
               as_: str = "as read") -> str:
    """The one-line comparison of the reading used (``as_``) with the better one."""
    flags = better.flags(current)
    return (f"{as_}, {now.inside:,} of {now.bars:,} bars lie inside sessions and "
            f"{now.missing:,} slots are missing (fit {100 * now.score:.1f}%); with {flags}, "
            f"{alt.inside:,} inside and {alt.missing:,} missing (fit {100 * alt.score:.1f}%)")


def misread_hint(result: Any, calendar: Calendar, base_ns: int) -> str:
    """The readers' hint for bars outside every session: the options that fit clearly better.

    Parameters
    ----------
    result : readers.ReadResult
        A read, before any bar is set aside (all its bars are scored).
    calendar : Calendar
    base_ns : int
        The base interval the file was read with (ns, > 0).

    Returns
    -------
    str
        ``"; the whole file fits --tz UTC better: as read, ..."`` when another reading
        is clearly better by the module's score and thresholds (the same as a run's
        check), else ``""``.
    """
    ts = [b.ts for b in getattr(result, "bars", {}).values() if len(b)]
    if not ts or base_ns <= 0:
        return ""
    naive = bool(getattr(result, "naive", False))
    current = Reading(getattr(result, "tz", None) if naive else None,
                      str(getattr(result, "stamp", "start")), int(base_ns))
    fits = candidate_fits(ts, calendar, current, naive)
    better = better_reading(fits, current)
    if better is None:
        return ""
    return (f"; the whole file fits {better.flags(current)} better: "
            + comparison(current, fits[current], better, fits[better]))


@dataclass
class Plausibility:
    """The plausibility check of one run: fed each file's bars as read (``observe``, from
    the engine's workers, thread-safe), judged at the end (``finish``).

    Parameters
    ----------
    calendar : Calendar
    base : str
        The run's base interval.
    options : mapping
        The run's read options (``tz``, ``stamp``, ``format``, ...).
    strict : bool
        ``finish`` raises PlausibilityError instead of warning.
    """

    calendar: Calendar
    base: str
    options: Mapping[str, Any] = field(default_factory=dict)
    strict: bool = False
    fits: dict[Reading, Fit] = field(default_factory=dict)
    files: int = 0
    _keys: set | None = None
    _current: Reading | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def applies_tz(self) -> bool:
        return str(self.options.get("format") or "").split(":")[0].lower() \
            not in _VENDOR_FORMATS

    def current(self, naive: bool = True) -> Reading:
        tz = str(self.options.get("tz") or "UTC") if naive and self.applies_tz else None
        return Reading(tz, str(self.options.get("stamp") or "start"),
                       parse_interval(self.base).ns)

    def observe(self, result: Any, *, span: WindowSpan | None = None) -> None:
        """Score one read (a ``readers.ReadResult``) under every reading; cheap.  ``span``:
        the calendar's windows laid out already over the read's bars."""
        bars = getattr(result, "bars", {})
        held = [(symbol, b) for symbol, b in bars.items() if len(b)]
        if not held:
            return
        ts = [b.ts for _s, b in held]
        # The spacing of each symbol's times, as the reader measured it (one pass less).
        known = getattr(result, "step_counts", None)
        steps = [known(symbol) for symbol, _b in held] if known is not None else None
        naive = bool(getattr(result, "naive", False)) and self.applies_tz
        current = self.current(naive)
        fits = candidate_fits(ts, self.calendar, current, naive, span=span, steps=steps)
        # Readings are keyed with tz None for times that carry their zone, so files of
        # both kinds in one folder still add up under the current reading.
        with self._lock:
            self.files += 1
            keys = set(fits)
            # Only the readings scored on every file compare fairly.
            self._keys = keys if self._keys is None else self._keys & keys
            for r, f in fits.items():
                self.fits.setdefault(r, Fit()).add(f)
            self._current = current

    def verdict(self) -> tuple[Reading, Fit, Reading | None]:
        """(the run's reading, its fit, the clearly better reading or None)."""
        with self._lock:
            current = self._current or self.current()
            keys = self._keys or set()
            fits = {r: f for r, f in self.fits.items() if r in keys}
        better = better_reading(fits, current)
        return current, fits.get(current, Fit()), better

    def message(self) -> str | None:
        """The loud line when the run is implausible, else None."""
        current, now, better = self.verdict()
        if better is None:
            return None
        flags = better.flags(current)
        return (f"these options fit the data far worse than {flags}: "
                + comparison(current, now, better, self.fits[better], as_="as run")
                + f". Rerun with {flags} (--strict makes this an error)")

    def to_json(self) -> dict[str, Any] | None:
        """The manifest's ``plausibility`` field (None when nothing was read)."""
        if not self.files:
            return None
        current, now, better = self.verdict()
        out: dict[str, Any] = {"plausible": better is None, "fit": round(now.score, 6),
                               "score": "inside / (bars + missing)",
                               "threshold": {"margin": SCORE_MARGIN,
                                             "misfit_share": MISFIT_SHARE},
                               "as_run": now.to_json()}
        if better is not None:
            out["better"] = {"options": better.flags(current),
                             **self.fits[better].to_json()}
            out["message"] = self.message()
        return out

    def finish(self) -> str | None:
        """Warn (or, strict, raise PlausibilityError) when the run is implausible; returns
        the message."""
        message = self.message()
        if message is None:
            return None
        if self.strict:
            raise PlausibilityError(f"implausible options (--strict): {message}")
        warnings.warn(message, PlausibilityWarning, stacklevel=3)
        return message

    def amend(self, exc: Exception) -> Exception:
        """``exc`` (a read or session error) with the better reading added, when there is
        one; else ``exc`` itself."""
        message = self.message()
        if message is None:
            return exc
        _current, _now, better = self.verdict()
        if better is not None and f"fits {better.flags(_current)} better" in str(exc):
            return exc  # the readers' error names these options already (misread_hint)
        new = type(exc).__new__(type(exc))
        new.__dict__.update(getattr(exc, "__dict__", {}))
        new.args = (f"{exc}; on the whole file, {message}",)
        return new
