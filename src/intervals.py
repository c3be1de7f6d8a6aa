"""Bar intervals: ``"1s"``, ``"30s"``, ``"1m"``, ``"5m"``, ``"15m"``, ``"1h"``, ``"1d"`` ...

An intraday interval is a fixed number of nanoseconds.  ``"1d"`` is the session: one bar per
trading day of the calendar, whatever its length, breaks and early closes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNIT_NS = {"s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_PATTERN = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")


@dataclass(frozen=True)
class Interval:
    """A parsed interval.

    Attributes
    ----------
    name : str
        Canonical spelling, e.g. ``"5m"``.
    ns : int
        Length in nanoseconds; 0 for the session interval ``"1d"``.
    """

    name: str
    ns: int

    @property
    def is_session(self) -> bool:
        """True for ``"1d"``: the bucket is the whole session."""
        return self.ns == 0

    def __str__(self) -> str:
        return self.name


def parse_interval(value: str | Interval) -> Interval:
    """Parse an interval string.

    Parameters
    ----------
    value : str or Interval
        ``"<n>s"``, ``"<n>m"``, ``"<n>h"`` (n >= 1) or ``"1d"``.

    Returns
    -------
    Interval

    Raises
    ------
    ValueError
        When the string is not an interval; the message names what was received.
    """
    if isinstance(value, Interval):
        return value
    if not isinstance(value, str):
        raise TypeError(f"interval must be a string such as '5m', got {type(value).__name__}")
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(
            f"interval {value!r} is not understood; use <n>s, <n>m, <n>h or 1d (e.g. '5m')"
        )
    count, unit = int(match.group(1)), match.group(2)
    if count <= 0:
        raise ValueError(f"interval {value!r} must be positive")
    if unit == "d":
        if count != 1:
            raise ValueError(f"interval {value!r}: only '1d' (the session) is supported")
        return Interval("1d", 0)
    return Interval(f"{count}{unit}", count * _UNIT_NS[unit])


def check_bars_interval(symbol: str, labelled: str | Interval | None,
                        base: str | Interval) -> None:
    """Raise ValueError when bars labelled ``labelled`` are offered as ``base`` bars of
    ``symbol`` (unlabelled bars, None, pass): bars of another interval would be stored or
    scored as base bars, silently wrong."""
    if labelled is None:
        return
    got_iv, want_iv = parse_interval(labelled), parse_interval(base)
    if got_iv.ns != want_iv.ns:     # "60s" bars are "1m" bars
        got, want = got_iv.name, want_iv.name
        raise ValueError(
            f"{symbol}: the bars are {got} bars, but {symbol!r} has base interval {want}; "
            f"resample them to {want} first, or use base interval {got!r} for {symbol!r}")


def check_derivable(base: Interval, derived: Interval) -> None:
    """Raise ValueError unless ``derived`` can be made from bars of ``base``."""
    if base.is_session:
        raise ValueError("the base interval cannot be '1d'; use an intraday interval")
    if derived.is_session:
        return
    if derived.ns < base.ns or derived.ns % base.ns != 0:
        raise ValueError(
            f"interval {derived.name!r} is not a whole multiple of the base interval "
            f"{base.name!r}"
        )
