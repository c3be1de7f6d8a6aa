"""The embedded sample: a week of made-up 1m bars on the NYSE calendar, generated on demand.

``sessiondata run`` without a data folder runs on it.  It is deterministic (a fixed seed, no
network) and small, and it holds what real data holds:

- 2024-11-25 .. 2024-12-03 on XNYS: six sessions, the Thanksgiving holiday (2024-11-28) and
  the half day after it (2024-11-29, close 13:00);
- ``ACME``, ``BOLT``, ``DELT``: liquid, with a few random minutes missing; ``BOLT`` is halted
  for 37 minutes on 2024-11-27;
- ``CRUX``: thin, illiquid, trading in about a third of the minutes;
- ``NEWT``: added in the middle of a session, streaming from 11:00 on 2024-11-26;
- ``DELT``: removed in the middle of a session, at 13:00 on 2024-12-02 (its feed goes on to
  the close that day; those bars arrive for a symbol that is gone and are not stored).

The calendar is ``Calendar.exchange("XNYS")``; without ``exchange_calendars`` it falls back to
a weekly calendar with the same sessions over the sample's range.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np

from .bars import Bars
from .calendar import Calendar
from .engine import SymbolEvent
from .results import local_time

__all__ = ["SAMPLE_END", "SAMPLE_START", "SCHEDULE", "SEED", "Sample", "generate",
           "sample_calendar", "sample_events"]

SAMPLE_START = "2024-11-25"
SAMPLE_END = "2024-12-03"
SEED = 20241125
MINUTE_NS = 60_000_000_000

# Holidays and early closes of XNYS around the sample (for the fallback calendar).
_HOLIDAYS = ("2024-11-28", "2024-12-25")
_EARLY_CLOSES = {"2024-11-29": "13:00", "2024-12-24": "13:00"}


def _local_ns(calendar: Calendar, session: str, time: str) -> int:
    """The instant (int64 ns UTC) of an exchange-local ``HH:MM`` on a session's date."""
    day = _dt.date.fromisoformat(session)
    hh, mm = (int(x) for x in time.split(":"))
    local = _dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=calendar.tz)
    delta = local - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000


@dataclass(frozen=True)
class _Profile:
    """How a made-up symbol trades."""

    price: float
    sigma: float          # per-minute log-return volatility
    volume: float         # mean volume of a minute
    presence: float       # share of minutes with a trade
    random_gaps: int      # extra missing minutes per session


_PROFILES = {
    "ACME": _Profile(182.40, 0.0007, 5_200.0, 1.0, 3),
    "BOLT": _Profile(47.15, 0.0009, 8_400.0, 1.0, 2),
    "CRUX": _Profile(8.62, 0.0025, 310.0, 0.34, 0),
    "DELT": _Profile(121.05, 0.0006, 3_900.0, 1.0, 2),
    "NEWT": _Profile(23.80, 0.0012, 2_600.0, 1.0, 1),
}

# (session, first minute, minutes) of trading halts.
_HALTS = {"BOLT": [("2024-11-27", "13:42", 37)]}

# The symbols added and removed in the middle of a session: (session, exchange-local time,
# symbol, action).  A schedule in local time, resolved to SymbolEvents (instants) once the
# calendar is known.
SCHEDULE = (
    ("2024-11-26", "11:00", "NEWT", "add"),
    ("2024-12-02", "13:00", "DELT", "remove"),
)


@dataclass
class Sample:
    """The generated sample.

    Attributes
    ----------
    calendar : Calendar
    bars : dict[str, Bars]
        1m bars per symbol over the whole range (what its feed sends).
    events : list[engine.SymbolEvent]
        Symbols added and removed in the middle of a session (:func:`sample_events`).
    sessions : numpy.ndarray
        The session labels (datetime64[D]).
    """

    calendar: Calendar
    bars: dict[str, Bars]
    events: list[SymbolEvent] = field(default_factory=list)
    sessions: np.ndarray = field(default_factory=lambda: np.empty(0, "datetime64[D]"))

    @property
    def symbols(self) -> list[str]:
        return list(self.bars)


def sample_calendar() -> Calendar:
    """``Calendar.exchange("XNYS")``, or without exchange_calendars a weekly calendar with
    the same sessions over the sample's range."""
    try:
        return Calendar.exchange("XNYS")
    except ImportError:
        return fallback_calendar()


def fallback_calendar() -> Calendar:
    """NYSE hours with the holidays and early closes around the sample (no dependency)."""
    return Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri",
                           holidays=_HOLIDAYS, early_closes=dict(_EARLY_CLOSES),
                           name="XNYS (built-in sample hours)")


def generate(seed: int = SEED, calendar: Calendar | None = None) -> Sample:
    """Generate the sample (about 10,000 bars, in a few milliseconds).

    Parameters
    ----------
    seed : int
        The same seed gives the same bars.
    calendar : Calendar, optional
        Defaults to :func:`sample_calendar`.
    """
    calendar = calendar or sample_calendar()
    sessions = calendar.sessions(SAMPLE_START, SAMPLE_END)
    minutes = {str(s): _session_minutes(calendar, s) for s in sessions}
    events = sample_events(calendar)
    first_of = {e.symbol: (e.session, e.at_ns) for e in events if e.action == "add"}
    last_session = {e.symbol: e.session for e in events if e.action == "remove"}
    bars = {}
    for k, (symbol, profile) in enumerate(_PROFILES.items()):
        rng = np.random.default_rng([seed, k])
        parts = []
        for label, slots in minutes.items():
            if symbol in first_of and label < first_of[symbol][0]:
                continue
            if symbol in last_session and label > last_session[symbol]:
                continue
            present = _presence(rng, slots, profile)
            if symbol in first_of and label == first_of[symbol][0]:
                present &= slots >= first_of[symbol][1]
            for day, start, count in _HALTS.get(symbol, ()):
                if day == label:
                    t0 = _local_ns(calendar, day, start)
                    present &= ~((slots >= t0) & (slots < t0 + count * MINUTE_NS))
            parts.append((slots, present))
        bars[symbol] = _walk(rng, parts, profile)
    return Sample(calendar, bars, events, sessions)


def sample_events(calendar: Calendar) -> list[SymbolEvent]:
    """The sample's :data:`SCHEDULE` as the engine's events on ``calendar``: instants, with
    the note the summary prints (``+NEWT added at 11:00 EST``)."""
    events = []
    for session, time, symbol, action in SCHEDULE:
        at = _local_ns(calendar, session, time)
        t = local_time(at, calendar.tz)
        verb = "added" if action == "add" else "removed"
        note = (f"{'+' if action == 'add' else '-'}{symbol} {verb} at "
                f"{t.strftime('%H:%M')} {t.tzname()}")
        events.append(SymbolEvent(session, at, symbol, action, note))
    return events


def _session_minutes(calendar: Calendar, session) -> np.ndarray:
    """Every minute start of a session's windows."""
    w = calendar.session_windows(session)
    return np.concatenate([np.arange(o, c, MINUTE_NS, dtype=np.int64)
                           for o, c in zip(w.open_ns.tolist(), w.close_ns.tolist())])


def _presence(rng: np.random.Generator, slots: np.ndarray, profile: _Profile) -> np.ndarray:
    """Which minutes trade: thin symbols trade at random, liquid ones miss a few minutes."""
    n = len(slots)
    present = rng.random(n) < profile.presence if profile.presence < 1.0 else np.ones(n, bool)
    if profile.random_gaps:
        # Not the first or last minute: a session's edges are clean in real data.
        holes = rng.choice(np.arange(1, n - 1), size=profile.random_gaps, replace=False)
        present[holes] = False
    return present


def _walk(rng: np.random.Generator, parts, profile: _Profile) -> Bars:
    """A random walk through every minute; bars for the minutes that trade."""
    ts = np.concatenate([s for s, _ in parts])
    keep = np.concatenate([p for _, p in parts])
    n = len(ts)
    steps = rng.normal(0.0, profile.sigma, n)
    close = profile.price * np.exp(np.cumsum(steps))
    open_ = np.r_[profile.price, close[:-1]]
    wick = np.abs(rng.normal(0.0, profile.sigma * 0.6, (2, n)))
    tick = 0.01
    open_r = np.round(open_ / tick) * tick
    close_r = np.round(close / tick) * tick
    high = np.round(np.maximum(open_, close) * (1 + wick[0]) / tick) * tick
    low = np.round(np.minimum(open_, close) * (1 - wick[1]) / tick) * tick
    high = np.maximum(high, np.maximum(open_r, close_r))
    low = np.minimum(low, np.minimum(open_r, close_r))
    volume = np.round(rng.gamma(2.0, profile.volume / 2.0, n))
    cols = [np.round(c, 2) for c in (open_r, high, low, close_r)]
    o, h, lo, c = (col[keep] for col in cols)
    return Bars(ts[keep], o, h, lo, c, volume[keep], interval="1m")
