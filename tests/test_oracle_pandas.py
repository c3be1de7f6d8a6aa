"""``sessiondata.resample`` against pandas, wherever their semantics agree.

The oracle is ``df.resample(rule, origin=<window open>, label="left", closed="left")`` with
``first / max / min / last / sum`` for open / high / low / close / volume, and ``count`` of the
close for our ``count`` column, after dropping the buckets pandas leaves empty.

Where the two differ, and what we do about it:

- pandas lays one grid over the whole index from one origin; its buckets span closes and
  breaks.  Ours restart at every window open and never cross a close or a break.  So the
  oracle runs per window (the XHKG lunch break, each XNYS session), or over the whole frame
  only where the two grids coincide: on the 24/7 calendar with a rule that divides the day
  (origin = the epoch = UTC midnight).  For a rule that does not divide the day (7m, 25m) the
  oracle runs per UTC day with origin = that day's 00:00.
- pandas keeps empty buckets (NaN prices, volume 0); we emit no bar for a bucket without data
  (``find_gaps`` reports it).  The oracle drops buckets whose count is 0.
- pandas has no coverage; ``count`` is compared, and ``coverage`` is checked against
  ``count`` over the base slots of the (possibly short) bucket.
- The short last bucket of a window (15:30-16:00 for 1h on XNYS, 12:30-13:00 on the half day)
  is the same in both when pandas runs with origin = the session open: pandas' bucket is
  15:30-16:30, but the close cuts the data, so it aggregates the same bars.
- ``"1d"`` is the session, not the UTC day.  For XNYS a session lies inside one UTC day, but
  for CME_GLOBEX (17:00 CT the evening before to 16:00 CT) the oracle is pandas' ``"24h"``
  with origin = the session open; UTC days (origin = the epoch) cut each session in two.
  (pandas' ``"1D"`` is a calendar day that ignores ``origin`` on a tz-aware index, hence 24h.)
- pandas sums volume with compensated (Kahan) summation, we add in order: volumes are compared
  to 1e-12 relative; prices exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
import sessiondata as sd

pd = pytest.importorskip("pandas")

NS = 1_000_000_000
MINUTE = 60 * NS
DAY = 86_400 * NS

RULES = {"1m": "1min", "5m": "5min", "7m": "7min", "15m": "15min", "25m": "25min",
         "30m": "30min", "1h": "1h", "2h": "2h", "1d": "24h"}


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def frame(bars: sd.Bars) -> "pd.DataFrame":
    return bars.to_pandas(tz="UTC")


def pandas_resample(df, rule: str, origin_ns: int) -> "pd.DataFrame":
    """The oracle on one stretch of data, empty buckets dropped."""
    origin = pd.Timestamp(origin_ns, unit="ns", tz="UTC")
    r = df.resample(rule, origin=origin, label="left", closed="left")
    out = r.agg({"open": "first", "high": "max", "low": "min", "close": "last",
                 "volume": "sum"})
    out["count"] = r["close"].count()
    return out[out["count"] > 0]


def pandas_per_window(df, rule: str, opens, closes) -> "pd.DataFrame":
    parts = []
    ts = df.index.asi8
    for o, c in zip(opens, closes):
        a, b = np.searchsorted(ts, [o, c])
        if b > a:
            parts.append(pandas_resample(df.iloc[a:b], rule, int(o)))
    return pd.concat(parts) if parts else pandas_resample(df.iloc[:0], rule, 0)


def assert_matches(ours: sd.Bars, want: "pd.DataFrame", base_ns: int, bucket_end=None):
    got = ours.to_pandas(tz="UTC")
    assert len(got) == len(want)
    np.testing.assert_array_equal(got.index.asi8, want.index.asi8)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(got["volume"].to_numpy(), want["volume"].to_numpy(),
                               rtol=1e-12, atol=0)
    np.testing.assert_array_equal(got["count"].to_numpy(), want["count"].to_numpy())
    if bucket_end is not None:
        slots = -((ours.ts - bucket_end(ours.ts)) // base_ns)
        np.testing.assert_array_equal(ours.coverage, ours.count / slots)


def random_bars(slots: np.ndarray, seed: int, density: float = 0.9) -> sd.Bars:
    rng = np.random.default_rng(seed)
    ts = slots[rng.random(len(slots)) < density]
    # A longer hole as well, so that whole buckets are missing.
    if len(ts) > 400:
        a = int(rng.integers(0, len(ts) - 200))
        ts = np.r_[ts[:a], ts[a + int(rng.integers(30, 200)):]]
    return sd.Bars.from_arrays(ts, *ref.random_prices(rng, len(ts)), interval=None)


# --------------------------------------------------------------------------- 24/7


@pytest.fixture(scope="module")
def always_bars():
    slots = np.arange(ns("2024-01-01"), ns("2024-01-04"), MINUTE, dtype=np.int64)
    return random_bars(slots, seed=1)


@pytest.mark.parametrize("interval", ["5m", "15m", "30m", "1h", "2h"])
def test_always_rules_dividing_the_day(always_bars, interval):
    ours = sd.resample(always_bars, interval, base="1m")
    want = pandas_resample(frame(always_bars), RULES[interval], 0)  # origin: the epoch
    step = sd.parse_interval(interval).ns
    assert_matches(ours, want, MINUTE, bucket_end=lambda t: t + step)


@pytest.mark.parametrize("interval", ["7m", "25m"])
def test_always_rules_not_dividing_the_day(always_bars, interval):
    df = frame(always_bars)
    days = np.arange(ns("2024-01-01"), ns("2024-01-04"), DAY)
    want = pandas_per_window(df, RULES[interval], days, days + DAY)
    ours = sd.resample(always_bars, interval, base="1m")
    step = sd.parse_interval(interval).ns
    assert_matches(ours, want, MINUTE,
                   bucket_end=lambda t: np.minimum(t + step, (t // DAY + 1) * DAY))


def test_always_daily_is_the_utc_day(always_bars):
    ours = sd.resample(always_bars, "1d", base="1m")
    want = pandas_resample(frame(always_bars), "24h", 0)
    assert_matches(ours, want, MINUTE, bucket_end=lambda t: t + DAY)


@given(density=st.floats(0.01, 1.0), seed=st.integers(0, 2**32 - 1),
       base=st.sampled_from(["1m", "5m"]),
       mult=st.sampled_from([1, 2, 3, 4, 6, 12, 24, 7, 25, 35, 100]),
       start=st.integers(0, 1000))
def test_always_property(density, seed, base, mult, start):
    """Random bars over 3-15 UTC days; the oracle runs per UTC day (origin = 00:00), which for
    a rule dividing the day is the same as one pass from the epoch."""
    base_ns = sd.parse_interval(base).ns
    first = ns("2023-12-30") + start * base_ns
    slots = np.arange(first, first + 900 * base_ns, base_ns, dtype=np.int64)
    rng = np.random.default_rng(seed)
    ts = slots[rng.random(len(slots)) < density]
    if len(ts) == 0:
        return
    bars = sd.Bars.from_arrays(ts, *ref.random_prices(rng, len(ts)), interval=base)
    step = mult * base_ns
    ours = sd.resample(bars, f"{step // MINUTE}m")
    days = np.arange(ts[0] // DAY * DAY, ts[-1] + DAY, DAY)
    want = pandas_per_window(frame(bars), f"{step // MINUTE}min", days, days + DAY)
    assert_matches(ours, want, base_ns)


# --------------------------------------------------------------------------- XNYS


@pytest.fixture(scope="module")
def xnys():
    pytest.importorskip("exchange_calendars")
    return sd.Calendar.exchange("XNYS")


@pytest.fixture(scope="module")
def xnys_bars(xnys):
    # Two weeks around the 2024 DST change, and Thanksgiving week (holiday, half day).
    w1 = xnys.windows(ns("2024-03-04"), ns("2024-03-16"))
    w2 = xnys.windows(ns("2024-11-25"), ns("2024-12-04"))
    opens = np.r_[w1.open_ns, w2.open_ns]
    closes = np.r_[w1.close_ns, w2.close_ns]
    slots = np.concatenate([np.arange(o, c, MINUTE) for o, c in zip(opens, closes)])
    return random_bars(slots.astype(np.int64), seed=2, density=0.85), opens, closes


@pytest.mark.parametrize("interval", ["5m", "15m", "30m", "1h", "2h", "1d"])
def test_xnys_per_session(xnys, xnys_bars, interval):
    bars, opens, closes = xnys_bars
    ours = sd.resample(bars, interval, xnys, base="1m")
    want = pandas_per_window(frame(bars), RULES[interval], opens, closes)
    if interval == "1d":
        end = dict(zip(opens.tolist(), closes.tolist()))
        bucket_end = lambda t: np.array([end[int(x)] for x in t])  # noqa: E731
    else:
        step = sd.parse_interval(interval).ns
        close_of = lambda t: closes[np.searchsorted(opens, t, side="right") - 1]  # noqa: E731
        bucket_end = lambda t: np.minimum(t + step, close_of(t))  # noqa: E731
    assert_matches(ours, want, MINUTE, bucket_end=bucket_end)


def test_xnys_short_last_bucket_equals_pandas(xnys, xnys_bars):
    bars, opens, closes = xnys_bars
    ours = sd.resample(bars, "1h", xnys, base="1m").to_pandas(tz="America/New_York")
    last = ours[ours.index.strftime("%H:%M") == "15:30"]
    assert len(last) and (last["count"] <= 30).all()
    half = ours[ours.index.strftime("%Y-%m-%d %H:%M") == "2024-11-29 12:30"]
    assert len(half) == 1 and half["count"].iloc[0] <= 30


# --------------------------------------------------------------------------- breaks, CME


def test_xhkg_per_window():
    pytest.importorskip("exchange_calendars")
    cal = sd.Calendar.exchange("XHKG")
    w = cal.windows(ns("2024-03-04"), ns("2024-03-09"))
    slots = np.concatenate([np.arange(o, c, MINUTE) for o, c in zip(w.open_ns, w.close_ns)])
    bars = random_bars(slots.astype(np.int64), seed=3)
    for interval in ("5m", "15m", "1h"):
        ours = sd.resample(bars, interval, cal, base="1m")
        want = pandas_per_window(frame(bars), RULES[interval], w.open_ns, w.close_ns)
        assert_matches(ours, want, MINUTE)
    # Per session (origin = the morning open), pandas' 12:30 bucket would take the first
    # half hour of the afternoon: our buckets restart at 13:00 instead.
    daily_origin = pandas_per_window(frame(bars), "1h", w.open_ns[::2], w.close_ns[1::2])
    ours = sd.resample(bars, "1h", cal, base="1m")
    assert len(daily_origin) != len(ours) or not np.array_equal(
        daily_origin.index.asi8, ours.ts)


def test_cme_daily_is_the_session():
    pytest.importorskip("exchange_calendars")
    cal = sd.Calendar.exchange("CME_GLOBEX")
    w = cal.windows(ns("2024-01-08"), ns("2024-01-13"))
    slots = np.concatenate([np.arange(o, c, MINUTE) for o, c in zip(w.open_ns, w.close_ns)])
    bars = random_bars(slots.astype(np.int64), seed=4)
    df = frame(bars)
    ours = sd.resample(bars, "1d", cal, base="1m")
    assert_matches(ours, pandas_per_window(df, "24h", w.open_ns, w.close_ns), MINUTE)
    # pandas' UTC days cut every session at midnight: one more bar per session.
    utc_days = pandas_resample(df, "24h", 0)
    assert len(utc_days) > len(ours)
    for interval in ("5m", "1h"):
        ours = sd.resample(bars, interval, cal, base="1m")
        assert_matches(ours, pandas_per_window(df, RULES[interval], w.open_ns, w.close_ns),
                       MINUTE)
