"""The public API: ``Bars``, ``Calendar``, ``resample``, ``find_gaps``, ``quality``, ``GapInfo``.

Sessions used (all in exchange_calendars' schedules):
- XNYS 2024-03-08 (Fri, EST, 14:30-21:00 UTC) and 2024-03-11 (Mon, EDT, 13:30-20:00 UTC):
  the same local hours across the DST change; 2024-11-29, the half day after Thanksgiving
  (09:30-13:00 ET); 2024-11-28 is a holiday.
- XHKG 2024-03-05: 09:30-12:00 and 13:00-16:00 HKT (lunch break).
- CME_GLOBEX 2024-01-10: 2024-01-09 17:00 CT to 2024-01-10 16:00 CT (23:00-22:00 UTC).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import reference as ref
import sessiondata as sd
from sessiondata import api, kernels

NS = 1_000_000_000
MINUTE = 60 * NS
HOUR = 60 * MINUTE
NY = zoneinfo.ZoneInfo("America/New_York")


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def local_hm(ts_ns, tz) -> list[str]:
    """Local HH:MM of UTC nanoseconds."""
    utc = dt.timezone.utc
    return [dt.datetime.fromtimestamp(int(t) // NS, utc).astimezone(tz).strftime("%H:%M")
            for t in np.asarray(ts_ns)]


@pytest.fixture(scope="module")
def xnys():
    pytest.importorskip("exchange_calendars")
    return sd.Calendar.exchange("XNYS")


@pytest.fixture(scope="module")
def xhkg():
    pytest.importorskip("exchange_calendars")
    return sd.Calendar.exchange("XHKG")


@pytest.fixture(scope="module")
def cme():
    pytest.importorskip("exchange_calendars")
    return sd.Calendar.exchange("CME_GLOBEX")


def minutes(cal, sessions, base=MINUTE) -> np.ndarray:
    """Every base slot start of the given sessions."""
    out = []
    for s in sessions:
        w = cal.session_windows(s)
        out += [np.arange(o, c, base) for o, c in zip(w.open_ns, w.close_ns)]
    return np.concatenate(out).astype(np.int64)


def make_bars(ts, seed=0, interval="1m") -> sd.Bars:
    rng = np.random.default_rng(seed)
    return sd.Bars.from_arrays(ts, *ref.random_prices(rng, len(ts)), interval=interval)


def drop(ts, *spans) -> np.ndarray:
    """ts without the bars in the given [start, end) UTC ISO spans."""
    keep = np.ones(len(ts), bool)
    for a, b in spans:
        keep &= ~((ts >= ns(a)) & (ts < ns(b)))
    return ts[keep]


# --------------------------------------------------------------------------- Bars


def columns(n=10, seed=0):
    ts = np.arange(n, dtype=np.int64) * MINUTE + ns("2024-01-02T00:00")
    return (ts,) + ref.random_prices(np.random.default_rng(seed), n)


def test_from_arrays_zero_copy():
    cols = columns()
    bars = sd.Bars.from_arrays(*cols)
    for name, arr in zip(("ts", "open", "high", "low", "close", "volume"), cols):
        col = getattr(bars, name)
        assert np.shares_memory(col, arr), name
        assert not col.flags.writeable, name
        assert arr.flags.writeable, name  # the caller's array is not frozen
    assert len(bars) == 10


def test_from_arrays_read_only_inputs_zero_copy():
    cols = columns()
    for a in cols:
        a.setflags(write=False)
    bars = sd.Bars.from_arrays(*cols)
    assert all(np.shares_memory(getattr(bars, n), a)
               for n, a in zip(("ts", "open", "high", "low", "close", "volume"), cols))
    assert sd.resample(bars, "5m").count.tolist() == [5, 5]


def test_from_arrays_datetime64_ns_zero_copy():
    cols = columns()
    ts = cols[0].view("datetime64[ns]")
    bars = sd.Bars.from_arrays(ts, *cols[1:])
    assert bars.ts.dtype == np.int64 and np.shares_memory(bars.ts, ts)


def test_from_arrays_copies_views_and_other_dtypes():
    ts, o, h, lo, c, v = columns(20)
    views = [a[::2] for a in (ts, o, h, lo, c, v)]
    bars = sd.Bars.from_arrays(*views)
    for name, arr in zip(("ts", "open", "high", "low", "close", "volume"), views):
        col = getattr(bars, name)
        assert col.flags.c_contiguous and not np.shares_memory(col, arr)
        np.testing.assert_array_equal(col, arr)
    copied = sd.Bars.from_arrays(*(a.copy() for a in views))
    assert sd.resample(bars, "10m").equals(sd.resample(copied, "10m"))

    # float32 prices, int volumes and seconds timestamps are converted.
    ts_s = (ts // NS).astype("datetime64[s]")
    o32 = np.round(o).astype(np.float32)
    bars = sd.Bars.from_arrays(ts_s, o32, np.ceil(h).astype(np.float32) + 1,
                               np.floor(lo).astype(np.float32) - 1, np.round(o).astype(int),
                               np.round(v).astype(np.int32))
    assert bars.ts.dtype == np.int64 and bars.open.dtype == np.float64
    np.testing.assert_array_equal(bars.ts, ts)
    np.testing.assert_array_equal(bars.open, o32.astype(np.float64))
    assert bars.volume.dtype == np.float64
    assert len(sd.resample(bars, "5m", base="1m")) == 4


def test_columns_read_only():
    bars = sd.Bars.from_arrays(*columns())
    with pytest.raises(ValueError):
        bars.close[0] = 1.0
    out = sd.resample(bars, "5m")
    for name, col in out.columns().items():
        assert not col.flags.writeable, name


def test_pandas_round_trip():
    pd = pytest.importorskip("pandas")
    bars = sd.Bars.from_arrays(*columns(), interval="1m")
    df = bars.to_pandas()
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    back = sd.Bars.from_pandas(df)
    assert back.equals(bars)
    # A local-time index is converted to UTC.
    df_ny = bars.to_pandas(tz="America/New_York")
    assert sd.Bars.from_pandas(df_ny).equals(bars)
    # A 'ts' column of int64 ns.
    flat = df.reset_index(drop=True).assign(ts=bars.ts)
    assert sd.Bars.from_pandas(flat).equals(bars)
    # Derived bars keep count and coverage.
    out = sd.resample(bars, "5m")
    df5 = out.to_pandas()
    assert df5["count"].tolist() == [5, 5]
    assert df5["coverage"].tolist() == [1.0, 1.0]


def test_to_arrow():
    pa = pytest.importorskip("pyarrow")
    bars = sd.Bars.from_arrays(*columns())
    table = bars.to_arrow()
    assert table.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert table.column_names == ["ts", "open", "high", "low", "close", "volume"]
    np.testing.assert_array_equal(table.column("ts").cast(pa.int64()).to_numpy(), bars.ts)
    np.testing.assert_array_equal(table.column("close").to_numpy(), bars.close)


def test_polars_round_trip():
    pl = pytest.importorskip("polars")
    bars = sd.Bars.from_arrays(*columns())
    df = bars.to_polars()
    assert df.schema["ts"] == pl.Datetime("ns", "UTC")
    assert sd.Bars.from_polars(df).equals(bars)
    as_ms = df.with_columns(pl.col("ts").dt.cast_time_unit("ms"))
    assert sd.Bars.from_polars(as_ms).equals(bars)
    as_int = df.with_columns(pl.col("ts").cast(pl.Int64))
    assert sd.Bars.from_polars(as_int).equals(bars)


# --------------------------------------------------------------------------- bad input


def test_wrong_dtype_names_it():
    ts, o, h, lo, c, v = columns()
    with pytest.raises(TypeError, match="float64"):
        sd.Bars.from_arrays(ts.astype(np.float64), o, h, lo, c, v)
    with pytest.raises(TypeError, match="<U"):
        sd.Bars.from_arrays(ts, o.astype(str), h, lo, c, v)
    with pytest.raises(TypeError, match="object"):
        sd.Bars.from_arrays(ts.astype(object), o, h, lo, c, v)
    with pytest.raises(ValueError, match="one-dimensional"):
        sd.Bars.from_arrays(ts.reshape(2, 5), o, h, lo, c, v)
    with pytest.raises(ValueError, match="rows"):
        sd.Bars.from_arrays(ts, o[:-1], h, lo, c, v)


@pytest.mark.parametrize(
    "column, row, value, fault",
    [
        ("close", 3, np.nan, "non-finite"),
        ("open", 7, np.inf, "non-finite"),
        ("high", 2, -np.inf, "non-finite"),
        ("low", 5, 1e9, "high/low"),
        ("high", 4, -1e9, "high/low"),
        ("volume", 6, -1.0, "volume"),
        ("volume", 1, np.nan, "volume"),
        ("ts", 8, "dup", "duplicate"),
        ("ts", 9, "back", "out of order"),
    ],
)
def test_bad_bar_names_the_row(column, row, value, fault):
    cols = dict(zip(("ts", "open", "high", "low", "close", "volume"), columns()))
    if value == "dup":
        cols["ts"][row] = cols["ts"][row - 1]
    elif value == "back":
        cols["ts"][row] = cols["ts"][row - 1] - MINUTE // 2
    else:
        cols[column][row] = value
    with pytest.raises(ValueError, match=f"row {row}") as info:
        sd.Bars.from_arrays(**cols)
    assert fault in str(info.value)
    assert isinstance(info.value, sd.BadBarError) and info.value.row == row
    # validate=False defers the check; resample still refuses bad order.
    if column == "ts":
        bars = sd.Bars.from_arrays(**cols, validate=False)
        with pytest.raises(ValueError, match=f"row {row}"):
            sd.resample(bars, "5m", base="1m")


def test_interval_errors():
    bars = make_bars(np.arange(12, dtype=np.int64) * 5 * MINUTE, interval="5m")
    with pytest.raises(ValueError, match="7m"):
        sd.resample(bars, "7m")
    with pytest.raises(ValueError, match="multiple"):
        sd.resample(bars, "1m")
    with pytest.raises(ValueError):
        sd.resample(bars, "5x")
    with pytest.raises(ValueError):
        sd.resample(bars, "2d")
    with pytest.raises(ValueError, match="7m"):
        sd.find_gaps(bars, "7m")
    with pytest.raises(ValueError, match="7m"):
        sd.quality(bars, "7m")
    assert sd.parse_interval("15m").ns == 15 * MINUTE
    assert sd.parse_interval("1d").is_session


def test_unknown_calendar():
    pytest.importorskip("exchange_calendars")
    with pytest.raises(ValueError, match="XXXX"):
        sd.Calendar.exchange("XXXX")


def test_bar_outside_or_off_the_grid(xnys):
    ts = minutes(xnys, ["2024-03-08"])
    bars = make_bars(np.r_[ts, ts[-1] + 10 * MINUTE])  # 16:09 ET, after the close
    for iv in ("1m", "5m", "1h", "1d"):
        with pytest.raises(ValueError, match=f"row {len(ts)}"):
            if iv == "1m":
                sd.find_gaps(bars, iv, xnys)
            else:
                sd.resample(bars, iv, xnys)
    off = make_bars(np.r_[ts[:5], ts[5] + 30 * NS, ts[6:10]], interval=None)
    with pytest.raises(ValueError, match="row 5"):
        sd.resample(off, "5m", xnys, base="1m")


def test_bar_after_the_close_within_the_last_bucket(xnys):
    """XNYS 1h: the last bucket 15:30-16:00 is short; a bar at 16:10 ET is outside the
    session and must be refused, not folded into it."""
    ts = np.array([ns("2024-03-05T19:45"), ns("2024-03-05T21:10")], np.int64)
    with pytest.raises(ValueError, match="row 1"):
        sd.resample(make_bars(ts), "1h", xnys)


# --------------------------------------------------------------------------- empty


def test_empty_inputs():
    empty = sd.Bars.empty("1m")
    assert len(empty) == 0
    out = sd.resample(empty, "5m")
    assert len(out) == 0 and out.interval.name == "5m"
    assert out.ts.dtype == np.int64 and out.close.dtype == np.float64
    assert out.count.dtype == np.int64 and out.coverage.dtype == np.float64
    zero = sd.Bars.from_arrays(np.empty(0, np.int64), *[np.empty(0)] * 5, interval="1m")
    assert len(sd.resample(zero, "1h")) == 0
    assert sd.find_gaps(empty, "1m") == []
    arrays = sd.find_gaps(empty, "1m")
    assert len(arrays.start_ns) == 0 and arrays.expected == 0
    report = sd.quality(empty, "1m")
    assert (report.expected, report.present, report.score) == (0, 0, 100.0)


def test_empty_bars_with_a_range_are_all_missing(xnys):
    empty = sd.Bars.empty("1m")
    gaps = sd.find_gaps(empty, "1m", xnys, start="2024-03-08", end="2024-03-09")
    assert [(g.start_time.strftime("%H:%M"), g.end_time.strftime("%H:%M"), g.bar_count)
            for g in gaps] == [("09:30", "16:00", 390)]
    report = sd.quality(empty, "5m", xnys, start="2024-03-08", end="2024-03-09")
    assert (report.expected, report.present, report.score) == (78, 0, 0.0)


# --------------------------------------------------------------------------- resample XNYS


def test_resample_xnys_dst_and_half_day(xnys):
    days = ["2024-03-08", "2024-03-11", "2024-11-27", "2024-11-29"]
    ts = minutes(xnys, days)
    assert len(ts) == 390 * 3 + 210
    bars = make_bars(ts)
    for iv, per_day, half_day, last in [("5m", 78, 42, 5), ("15m", 26, 14, 15),
                                        ("1h", 7, 4, 30)]:
        out = sd.resample(bars, iv, xnys)
        assert out.interval.name == iv
        hm = local_hm(out.ts, NY)
        assert len(out) == 3 * per_day + half_day
        # Same local labels on both sides of the DST change.
        assert hm[:per_day] == hm[per_day:2 * per_day]
        assert hm[0] == "09:30"
        assert out.count[per_day - 1] == last           # short last bucket of a full day
        assert out.coverage.min() == 1.0
        step = sd.parse_interval(iv).ns
        assert hm[-1] == local_hm([ns("2024-11-29T18:00") - (step if iv != "1h" else 30 * MINUTE)], NY)[0]
    daily = sd.resample(bars, "1d", xnys)
    assert local_hm(daily.ts, NY) == ["09:30"] * 4
    assert daily.count.tolist() == [390, 390, 390, 210]
    assert daily.coverage.tolist() == [1.0] * 4
    # The UTC open moves by an hour across DST.
    assert daily.ts[1] - daily.ts[0] == 3 * 86_400 * NS - HOUR


def test_resample_values(xnys):
    ts = drop(minutes(xnys, ["2024-03-08"]), ("2024-03-08T14:31", "2024-03-08T14:34"))
    bars = make_bars(ts, seed=3)
    out = sd.resample(bars, "5m", xnys)
    first = slice(0, 2)  # 09:30 and 09:34 ET are the bars of the first bucket
    assert out.count[0] == 2 and out.coverage[0] == 0.4
    assert out.open[0] == bars.open[0] and out.close[0] == bars.close[1]
    assert out.high[0] == bars.high[first].max() and out.low[0] == bars.low[first].min()
    assert out.volume[0] == bars.volume[0] + bars.volume[1]
    assert out.count.sum() == len(bars)


def test_resample_lunch_break(xhkg):
    ts = minutes(xhkg, ["2024-03-05"])
    bars = make_bars(ts)
    out = sd.resample(bars, "1h", xhkg)
    hk = zoneinfo.ZoneInfo("Asia/Hong_Kong")
    assert local_hm(out.ts, hk) == ["09:30", "10:30", "11:30", "13:00", "14:00", "15:00"]
    assert out.count.tolist() == [60, 60, 30, 60, 60, 60]
    assert out.coverage.tolist() == [1.0] * 6
    daily = sd.resample(bars, "1d", xhkg)
    assert daily.count.tolist() == [330] and daily.coverage.tolist() == [1.0]
    with pytest.raises(ValueError, match="row"):  # a bar in the break
        sd.resample(make_bars(np.r_[ts[:150], ns("2024-03-05T04:30")]), "1h", xhkg)


def test_resample_hourly_base_to_session_across_a_break(xhkg):
    """1h bars of XHKG are aligned to each window's open (09:30, 10:30, 11:30 | 13:00, 14:00,
    15:00): find_gaps accepts them, and so must the daily resample."""
    ts = minutes(xhkg, ["2024-03-05"], base=HOUR)
    bars = make_bars(ts, interval="1h")
    assert sd.find_gaps(bars, "1h", xhkg) == []
    daily = sd.resample(bars, "1d", xhkg)
    assert daily.count.tolist() == [6] and daily.coverage.tolist() == [1.0]


def test_resample_cme_evening_before(cme):
    ts = minutes(cme, ["2024-01-10"])
    assert ts[0] == ns("2024-01-09T23:00") and ts[-1] == ns("2024-01-10T21:59")
    bars = make_bars(ts)
    daily = sd.resample(bars, "1d", cme)
    assert daily.ts.tolist() == [ns("2024-01-09T23:00")] and daily.count.tolist() == [1380]
    hourly = sd.resample(bars, "1h", cme)
    assert len(hourly) == 23
    chicago = zoneinfo.ZoneInfo("America/Chicago")
    assert local_hm(hourly.ts, chicago)[:2] == ["17:00", "18:00"]
    assert local_hm(hourly.ts, chicago)[-1] == "15:00"
    # Sunday evening opens Monday's session.
    monday = minutes(cme, ["2024-01-08"])
    assert monday[0] == ns("2024-01-07T23:00")


def test_resample_24_7_short_last_bucket_of_the_day():
    """On the 24/7 calendar the UTC days touch: with 25m buckets the day ends with a short
    bucket 23:45-24:00, and a bar at 00:05 belongs to the next day's first bucket."""
    ts = np.array([ns("2024-01-02T23:30"), ns("2024-01-03T00:05")], np.int64)
    out = sd.resample(make_bars(ts), "25m")
    assert out.ts.tolist() == [ns("2024-01-02T23:20"), ns("2024-01-03T00:00")]
    assert out.coverage.tolist() == [1 / 25, 1 / 25]


def test_resample_before_1970():
    ts = np.array([ns("1969-12-31T10:00"), ns("1969-12-31T10:01"), ns("1969-12-31T10:07")],
                  np.int64)
    out = sd.resample(make_bars(ts), "5m")
    assert out.ts.tolist() == [ns("1969-12-31T10:00"), ns("1969-12-31T10:05")]
    assert out.count.tolist() == [2, 1]


# --------------------------------------------------------------------------- gaps


def test_gaps_xnys(xnys):
    ts = drop(minutes(xnys, ["2024-03-11"]),
              ("2024-03-11T14:05", "2024-03-11T14:08"), ("2024-03-11T18:31", "2024-03-11T18:33"))
    bars = make_bars(ts)
    gaps = sd.find_gaps(bars, "1m", xnys)
    assert [g.to_dict() for g in gaps] == [
        {"start_time": "10:05:00", "end_time": "10:08:00", "bar_count": 3},
        {"start_time": "14:31:00", "end_time": "14:33:00", "bar_count": 2},
    ]
    for g in gaps:
        assert g.start_time.tzinfo is not None and g.start_time.utcoffset() is not None
        assert g.start_time.tzinfo.key == "America/New_York"
        assert g.end_time - g.start_time == g.bar_count * dt.timedelta(minutes=1)
    arrays = sd.find_gaps(bars, "1m", xnys)
    assert arrays.start_ns.dtype == np.int64 and arrays.bar_count.tolist() == [3, 2]
    assert (arrays.expected, arrays.present, arrays.missing) == (390, 385, 5)
    np.testing.assert_array_equal(arrays.end_ns - arrays.start_ns, arrays.bar_count * MINUTE)


def test_gaps_derived_intervals(xnys):
    ts = drop(minutes(xnys, ["2024-03-11"]), ("2024-03-11T13:30", "2024-03-11T13:50"),
              ("2024-03-11T19:00", "2024-03-11T20:00"))
    bars = make_bars(ts)
    for iv, want in [("5m", [("09:30", "09:50", 4), ("15:00", "16:00", 12)]),
                     ("15m", [("09:30", "09:45", 1), ("15:00", "16:00", 4)]),
                     ("1h", [("15:30", "16:30", 1)])]:
        gaps = sd.find_gaps(bars, iv, xnys)
        step = dt.timedelta(minutes=sd.parse_interval(iv).ns // MINUTE)
        assert [(g.start_time.strftime("%H:%M"), g.end_time.strftime("%H:%M"), g.bar_count)
                for g in gaps] == want, iv
        for g in gaps:
            assert g.end_time - g.start_time == g.bar_count * step


def test_gaps_never_span_a_break_or_a_close(xhkg, xnys):
    ts = drop(minutes(xhkg, ["2024-03-05"]), ("2024-03-05T03:50", "2024-03-05T05:10"))
    gaps = sd.find_gaps(make_bars(ts), "1m", xhkg)
    assert [(g.to_dict()["start_time"], g.bar_count) for g in gaps] == \
        [("11:50:00", 10), ("13:00:00", 10)]
    ts = drop(minutes(xnys, ["2024-03-08", "2024-03-11"]),
              ("2024-03-08T20:55", "2024-03-11T13:35"))
    gaps = sd.find_gaps(make_bars(ts), "1m", xnys)
    assert [(g.to_dict()["start_time"], g.bar_count) for g in gaps] == \
        [("15:55:00", 5), ("09:30:00", 5)]
    assert gaps[0].start_time.date() == dt.date(2024, 3, 8)
    assert gaps[1].start_time.date() == dt.date(2024, 3, 11)


def test_gaps_with_start_end_and_until(xnys):
    ts = minutes(xnys, ["2024-03-11"])
    bars = make_bars(ts)
    gaps = sd.find_gaps(bars, "1m", xnys, start="2024-03-08", end="2024-03-12T23:00")
    assert [(g.start_time.date().isoformat(), g.bar_count) for g in gaps] == \
        [("2024-03-08", 390), ("2024-03-12", 390)]
    daily = sd.find_gaps(bars, "1d", xnys, start="2024-03-08", end="2024-03-12T23:00")
    assert [(g.start_time.strftime("%m-%d %H:%M"), g.end_time.strftime("%H:%M"), g.bar_count)
            for g in daily] == [("03-08 09:30", "16:00", 1), ("03-12 09:30", "16:00", 1)]
    # until in the middle of a minute: that minute has not closed yet.
    part = make_bars(ts[:60])  # 09:30 .. 10:29
    until = ns("2024-03-11T14:40:30")  # 10:40:30 ET
    gaps = sd.find_gaps(part, "1m", xnys, until=until)
    assert [(g.to_dict()["start_time"], g.bar_count) for g in gaps] == [("10:30:00", 10)]
    rep = sd.quality(part, "1m", xnys, until=until)
    assert (rep.expected, rep.present, rep.missing) == (70, 60, 10)
    # Naive datetimes are in the calendar's zone; aware ones are converted.
    same = sd.find_gaps(part, "1m", xnys, until=dt.datetime(2024, 3, 11, 10, 40, 30))
    assert same == gaps
    same = sd.find_gaps(part, "1m", xnys,
                        until=dt.datetime(2024, 3, 11, 14, 40, 30, tzinfo=dt.timezone.utc))
    assert same == gaps


# --------------------------------------------------------------------------- quality


def test_quality_base_and_derived(xnys):
    ts = drop(minutes(xnys, ["2024-03-11"]), ("2024-03-11T13:31", "2024-03-11T13:33"),
              ("2024-03-11T16:00", "2024-03-11T16:10"))
    bars = make_bars(ts)
    rep = sd.quality(bars, "1m", xnys)
    assert (rep.expected, rep.present, rep.missing, rep.partial) == (390, 378, 12, 0)
    assert rep.score == pytest.approx(100 * 378 / 390)
    # 5m: the 09:30 bucket holds 3 of its 5 minutes and counts 0.6; two buckets are missing.
    rep = sd.quality(bars, "5m", xnys)
    assert (rep.expected, rep.present, rep.missing, rep.partial) == (78, 76, 2, 1)
    assert rep.coverage_sum == pytest.approx(75.6)
    assert rep.score == pytest.approx(100 * 75.6 / 78)
    d = rep.to_dict()
    assert d["expected"] == 78 and d["partial"] == 1 and d["coverage"] == pytest.approx(75.6)
    # 1d: one session holding 378 of its 390 minutes.
    rep = sd.quality(bars, "1d", xnys)
    assert (rep.expected, rep.present, rep.partial) == (1, 1, 1)
    assert rep.score == pytest.approx(100 * 378 / 390)
    # Complete data scores 100 on every interval.
    full = make_bars(minutes(xnys, ["2024-11-29"]))
    for iv in ("1m", "5m", "15m", "1h", "1d"):
        assert sd.quality(full, iv, xnys).score == 100.0


# --------------------------------------------------------------------------- threads


def test_parallel_split_equals_one_pass(xnys, monkeypatch):
    """Large inputs run on several threads, split at window opens: same result as one pass."""
    ts = drop(minutes(xnys, ["2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08",
                             "2024-03-11"]),
              ("2024-03-06T15:00", "2024-03-06T16:13"), ("2024-03-07T14:30", "2024-03-08T15:00"))
    bars = make_bars(ts)

    def everything():
        out = [sd.resample(bars, iv, xnys) for iv in ("5m", "1h", "1d")]
        gaps = [sd.find_gaps(bars, iv, xnys) for iv in ("1m", "15m", "1d")]
        gaps.append(sd.find_gaps(bars, "1m", xnys,
                                 until=ns("2024-03-08T16:00:30")))
        return out, gaps

    one_out, one_gaps = everything()
    for threads in ("2", "3", "8"):
        monkeypatch.setattr(kernels, "PARALLEL_MIN_BARS", 1)
        monkeypatch.setenv("SESSIONDATA_THREADS", threads)
        out, gaps = everything()
        assert all(a.equals(b) for a, b in zip(out, one_out)), threads
        for a, b in zip(gaps, one_gaps):
            for name in ("start_ns", "end_ns", "bar_count"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            assert (a.expected, a.present, a.missing) == (b.expected, b.present, b.missing)


def test_calendar_basics(xnys):
    assert sd.Calendar.always().tz.key == "UTC"
    assert xnys.name == "XNYS" and xnys.tz.key == "America/New_York"
    assert not xnys.is_session("2024-11-28") and xnys.is_session("2024-11-29")
    assert sd.Calendar.exchange("CME_GLOBEX").tz.key == "America/Chicago"
    weekly = sd.Calendar.weekly("America/New_York", "09:30", "16:00")
    w = weekly.session_windows("2024-03-11")
    assert w.open_ns.tolist() == [ns("2024-03-11T13:30")]
