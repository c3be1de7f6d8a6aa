"""Real market files from ../shared/data (skipped when the folder is absent).

- ``6EH4.XCME_1min_bars_20240101_20240131.csv.gz``: CME Euro FX futures, 1m bars stamped at
  the bar's END in UTC; we shift them by one minute to open times (the data contract labels a
  bar by its open).  Calendar: ``Calendar.exchange("CME_GLOBEX")``, session D from D-1 17:00 CT
  to D 16:00 CT.
- ``btc-perp-20211231-20220201_1m.csv``: a 24/7 BTC perpetual, 1m bars stamped at their start,
  naive UTC with microseconds.  Calendar: ``Calendar.always()`` (sessions are UTC days).

Partial first and last days.  A session is expected whole, so a file that starts or stops
inside a session has "missing" slots that are only outside the file's span, not data loss:

- at the end, ``until`` = the end of the last bar says that the rest of the session has not
  happened yet (for the CME file, the 2024-02-01 session is scored over its first hour only);
- at the start there is no such switch (``start`` selects whole sessions), so the BTC file's
  first UTC day (2021-12-31, from 23:01) reports one leading gap that ends exactly at the
  first bar; the tests check that no gap lies inside ``[first bar, until)`` and that the
  whole days the file covers (2022-01-01 .. 2022-01-31) have no gap and score 100.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sessiondata as sd

pd = pytest.importorskip("pandas")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CME_FILE = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
BTC_FILE = DATA / "btc-perp-20211231-20220201_1m.csv"

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"no real data at {DATA}"),
]

NS = 1_000_000_000
MINUTE = 60 * NS
DAY = 86_400 * NS
PRICES = ("open", "high", "low", "close", "volume")


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def read(path: Path, ts_column: str, shift_ns: int = 0) -> sd.Bars:
    if not path.exists():
        pytest.skip(f"{path.name} is absent")
    df = pd.read_csv(path)
    ts = pd.to_datetime(df[ts_column]).to_numpy().astype("datetime64[ns]").astype(np.int64)
    return sd.Bars.from_arrays(ts - shift_ns, *(df[c].to_numpy(np.float64) for c in PRICES),
                               interval="1m")


def subset(bars: sd.Bars, lo: int, hi: int) -> sd.Bars:
    a, b = np.searchsorted(bars.ts, [lo, hi])
    return bars[int(a):int(b)]


def pandas_per_window(bars: sd.Bars, rule: str, opens, closes):
    df = bars.to_pandas(tz="UTC")
    parts = []
    for o, c in zip(opens, closes):
        a, b = np.searchsorted(bars.ts, [o, c])
        if b > a:
            r = df.iloc[a:b].resample(rule, origin=pd.Timestamp(int(o), unit="ns", tz="UTC"),
                                      label="left", closed="left")
            out = r.agg({"open": "first", "high": "max", "low": "min", "close": "last",
                         "volume": "sum"})
            out["count"] = r["close"].count()
            parts.append(out[out["count"] > 0])
    return pd.concat(parts)


def assert_matches(ours: sd.Bars, want) -> None:
    np.testing.assert_array_equal(ours.ts, want.index.asi8)
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(ours, col), want[col].to_numpy(), err_msg=col)
    np.testing.assert_allclose(ours.volume, want["volume"].to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(ours.count, want["count"].to_numpy())


# --------------------------------------------------------------------------- CME


@pytest.fixture(scope="module")
def cme():
    pytest.importorskip("exchange_calendars")
    return sd.Calendar.exchange("CME_GLOBEX")


@pytest.fixture(scope="module")
def euro():
    return read(CME_FILE, "timestamp_utc", shift_ns=MINUTE)


def test_cme_every_bar_in_a_session(cme, euro):
    windows = cme.windows(int(euro.ts[0]), int(euro.ts[-1]) + 1)
    assert (windows.locate(euro.ts) >= 0).all()
    assert windows.sessions[0] == np.datetime64("2024-01-02")   # 2024-01-01 is a holiday
    assert windows.sessions[-1] == np.datetime64("2024-02-01")  # the file ends inside it
    # The validating paths accept every bar.
    assert sd.quality(euro, "1m", cme).present == len(euro)


def test_cme_thin_holiday_session(cme, euro):
    windows = cme.windows(int(euro.ts[0]), int(euro.ts[-1]) + 1)
    scores = {}
    for k, label in enumerate(windows.sessions[:-1]):  # whole sessions only
        sl = windows.session_slice(k)
        day = subset(euro, int(windows.open_ns[sl][0]), int(windows.close_ns[sl][-1]))
        rep = sd.quality(day, "1m", cme)
        assert rep.expected == 1380  # 23 hours of minutes
        scores[str(label)] = rep.score
    ranked = sorted(scores, key=scores.get)
    assert ranked[0] == "2024-01-15"
    assert scores["2024-01-15"] < scores[ranked[1]] - 5.0
    assert min(scores[d] for d in ranked[1:]) > 97.0


def test_cme_until_scores_the_last_session_over_its_elapsed_part(cme, euro):
    until = int(euro.ts[-1]) + MINUTE  # the last bar's end
    gaps = sd.find_gaps(euro, "1m", cme, until=until)
    assert gaps.bar_count.max() < 60  # no long trailing gap
    assert gaps.end_ns.max() <= until
    rep = sd.quality(euro, "1m", cme, until=until)
    assert rep.present == len(euro) and rep.score > 98.0
    last = subset(euro, ns("2024-01-31T23:00"), until)
    rep = sd.quality(last, "1m", cme, until=until)
    # 2024-01-31 23:00 .. 23:58 UTC: 59 minutes have closed by the end of the last bar.
    assert rep.expected == 59 and rep.score == pytest.approx(100 * len(last) / 59)
    # Without until, the rest of 2024-02-01 counts as missing.
    trailing = sd.find_gaps(euro, "1m", cme)
    assert trailing.end_ns[-1] == ns("2024-02-01T22:00")
    assert trailing.bar_count[-1] > 1000


@pytest.mark.parametrize("interval, rule", [("5m", "5min"), ("1h", "1h"), ("1d", "24h")])
def test_cme_resample_matches_pandas(cme, euro, interval, rule):
    windows = cme.windows(int(euro.ts[0]), int(euro.ts[-1]) + 1)
    ours = sd.resample(euro, interval, cme)
    assert_matches(ours, pandas_per_window(euro, rule, windows.open_ns, windows.close_ns))
    if interval == "1d":
        assert len(ours) == windows.n_sessions
        assert (ours.ts == windows.open_ns).all()


def test_cme_derived_quality(cme, euro):
    until = int(euro.ts[-1]) + MINUTE
    base = sd.quality(euro, "1m", cme, until=until)
    daily = sd.quality(euro, "1d", cme, until=until)
    # The 2024-02-01 session is cut at until: it counts, over its slots before until.
    assert daily.expected == 23 and daily.present == 23
    last_open = ns("2024-01-31T23:00")
    tail = sd.quality(subset(euro, last_open, until), "1m", cme, since=last_open, until=until)
    whole = sd.quality(subset(euro, 0, last_open), "1d", cme)
    assert daily.coverage_sum == pytest.approx(whole.coverage_sum + tail.score / 100.0)
    # 5m: every bucket is a full 5 minutes (23-hour sessions) but the last, cut at until
    # (the 23:55 bucket at 23:59): it is expected over its 4 closed slots.
    five = sd.quality(euro, "5m", cme, until=until)
    assert five.expected == -(-base.expected // 5)
    assert five.present == len(np.unique(euro.ts // (5 * MINUTE)))


# --------------------------------------------------------------------------- BTC


@pytest.fixture(scope="module")
def btc():
    return read(BTC_FILE, "timestamp")


def test_btc_no_gap_inside_the_file(btc):
    cal = sd.Calendar.always()
    first, until = int(btc.ts[0]), int(btc.ts[-1]) + MINUTE
    assert first == ns("2021-12-31T23:01") and until == ns("2022-02-01T05:32")
    gaps = sd.find_gaps(btc, "1m", cal, until=until)
    # Only the part of the first UTC day before the file starts is reported ...
    assert gaps.start_ns.tolist() == [ns("2021-12-31")] and gaps.end_ns.tolist() == [first]
    # ... so nothing is missing inside [first bar, until).
    inside = (gaps.end_ns > first) & (gaps.start_ns < until)
    assert not inside.any()
    assert gaps.present == len(btc) and gaps.expected == len(btc) + 1381
    # The trailing partial day counts only up to until.
    assert gaps.end_ns.max() <= until


def test_btc_whole_days_score_100(btc):
    cal = sd.Calendar.always()
    month = subset(btc, ns("2022-01-01"), ns("2022-02-01"))
    assert len(month) == 31 * 1440
    assert sd.find_gaps(month, "1m", cal) == []
    for interval in ("1m", "5m", "15m", "1h", "1d"):
        rep = sd.quality(month, interval, cal)
        assert rep.score == 100.0 and rep.missing == 0 and rep.partial == 0, interval
    rep = sd.quality(month, "1m", cal, until=ns("2022-01-31T12:00:30"))
    assert rep.score == 100.0 and rep.expected == 30 * 1440 + 720


@pytest.mark.parametrize("interval, rule", [("5m", "5min"), ("1h", "1h"), ("1d", "24h")])
def test_btc_resample_matches_pandas(btc, interval, rule):
    ours = sd.resample(btc, interval)
    days = np.arange(ns("2021-12-31"), ns("2022-02-02"), DAY)
    assert_matches(ours, pandas_per_window(btc, rule, days, days + DAY))
