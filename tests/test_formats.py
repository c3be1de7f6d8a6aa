"""Vendor formats read directly: QuantConnect LEAN zips, Databento DBN, Binance klines.

LEAN files are written here in LEAN's own layout (``equity/usa/minute/<sym>/YYYYMMDD_trade.zip``
holding ``YYYYMMDD_<sym>_minute_trade.csv``), on dates on both sides of the US daylight-saving
changes and on the change days themselves.  The DBN and Binance tests read the real files of
../shared/data (skipped when absent) and small files made here.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sessiondata import Bars
from sessiondata.readers import ReadError, read_bars

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DBN_FILE = DATA / "futures_ohlcv-1m_2024-07-01T23-40_2024-07-02T00-10.dbn.zst"
ADA_27 = DATA / "ADABTC-1m-2021-11-27.csv"
ADA_28 = DATA / "ADABTC-1m-2021-11-28.csv"
needs_data = [pytest.mark.data,
              pytest.mark.skipif(not DATA.is_dir(), reason=f"no real data at {DATA}")]

NS = 1_000_000_000
MIN = 60 * NS
HOUR = 3600 * NS


def utc(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def ms(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return (h * 60 + m) * 60_000


def error_of(*args, **kwargs) -> ReadError:
    with pytest.raises(ReadError) as info:
        read_bars(*args, **kwargs)
    return info.value


# --------------------------------------------------------------------------------------------
# LEAN
# --------------------------------------------------------------------------------------------


def lean_zip(root: Path, symbol: str, date: str, lines: list[str], kind: str = "trade",
             resolution: str = "minute", security: str = "equity", market: str = "usa") -> Path:
    """A LEAN zip in LEAN's layout: <root>/<security>/<market>/<resolution>/<sym>/..."""
    folder = root / security / market / resolution / symbol.lower()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{date}_{kind}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{date}_{symbol.lower()}_{resolution}_{kind}.csv",
                    "".join(line + "\r\n" for line in lines))
    return path


def trade(hhmm: str, o: float, h: float, lo: float, c: float, v: int) -> str:
    dc = [round(x * 10_000) for x in (o, h, lo, c)]
    return ",".join(str(x) for x in [ms(hhmm), *dc, v])


@pytest.fixture
def lean_root(tmp_path):
    """SPY on both sides of both 2024 daylight-saving changes; pre- and after-market bars."""
    root = tmp_path / "Data"
    days = {
        "20240308": "EST", "20240311": "EDT",     # change on Sunday 2024-03-10
        "20241101": "EDT", "20241104": "EST",     # change on Sunday 2024-11-03
    }
    for date in days:
        lean_zip(root, "SPY", date, [
            trade("04:00", 500.0, 500.5, 499.9, 500.1, 300),     # pre-market
            trade("09:30", 501.25, 501.5, 501.0, 501.1, 12000),
            trade("09:31", 501.1, 501.2, 500.95, 501.0, 8000),
            # 09:32 had no trade: omitted
            trade("09:33", 501.0, 501.0, 501.0, 501.0, 100),
            trade("19:59", 502.0, 502.1, 501.9, 502.05, 50),     # after-market
        ])
    lean_zip(root, "aapl", "20240308", [trade("09:30", 170.1234, 170.2, 170.0, 170.1, 10)])
    return root


def test_lean_values_times_and_symbols(lean_root):
    result = read_bars(lean_root, format="lean")
    assert sorted(result.bars) == ["AAPL", "SPY"]          # folder names, upper-cased
    spy = result.bars["SPY"]
    assert isinstance(spy, Bars) and spy.interval.name == "1m" and len(spy) == 20
    assert spy.ts.dtype == np.int64 and spy.open.dtype == np.float64
    # Each day: 04:00, 09:30, 09:31, 09:33, 19:59 New York time, in UTC.
    expected = []
    for day, offset in (("2024-03-08", 5), ("2024-03-11", 4), ("2024-11-01", 4),
                        ("2024-11-04", 5)):
        for hhmm in ("04:00", "09:30", "09:31", "09:33", "19:59"):
            expected.append(utc(f"{day}T{hhmm}") + offset * HOUR)
    np.testing.assert_array_equal(spy.ts, expected)
    assert spy.ts[1] == utc("2024-03-08T14:30")       # EST: 09:30 = 14:30Z
    assert spy.ts[6] == utc("2024-03-11T13:30")       # EDT: 09:30 = 13:30Z
    np.testing.assert_array_equal(spy.open[:5], [500.0, 501.25, 501.1, 501.0, 502.0])
    np.testing.assert_array_equal(spy.high[:5], [500.5, 501.5, 501.2, 501.0, 502.1])
    np.testing.assert_array_equal(spy.low[:5], [499.9, 501.0, 500.95, 501.0, 501.9])
    np.testing.assert_array_equal(spy.close[:5], [500.1, 501.1, 501.0, 501.0, 502.05])
    np.testing.assert_array_equal(spy.volume[:5], [300, 12000, 8000, 100, 50])
    assert result.bars["AAPL"].open[0] == 170.1234       # deci-cents: 1701234 / 10,000
    assert result.rows == 21 and not result.dropped
    path, line, unit = result.where("SPY", 6)
    assert path.endswith("20240311_trade.zip/20240311_spy_minute_trade.csv")
    assert (line, unit) == (2, "line")


def test_lean_root_symbol_folder_and_single_zip_agree(lean_root):
    whole = read_bars(lean_root, format="lean").bars["SPY"]
    minute = lean_root / "equity" / "usa" / "minute"
    for path in (lean_root / "equity", minute, minute / "spy"):
        got = read_bars(path, format="lean").bars["SPY"]
        np.testing.assert_array_equal(got.ts, whole.ts)
        np.testing.assert_array_equal(got.close, whole.close)
    one = read_bars(minute / "spy" / "20240311_trade.zip", format="lean")
    assert list(one.bars) == ["SPY"] and len(one.bars["SPY"]) == 5
    assert one.bars["SPY"].ts[1] == utc("2024-03-11T13:30")
    renamed = read_bars(minute / "spy", format="lean", symbol="SPY.US")
    assert list(renamed.bars) == ["SPY.US"]


def test_lean_times_on_the_change_days(tmp_path):
    # Spring forward: 01:59 EST is followed by 03:00 EDT; fall back: 01:00-01:59 twice.
    lean_zip(tmp_path, "X", "20240310", [trade("01:30", 1, 1, 1, 1, 1),
                                         trade("03:30", 1, 1, 1, 1, 1)])
    lean_zip(tmp_path, "X", "20241103", [trade("00:30", 1, 1, 1, 1, 1),
                                         trade("02:30", 1, 1, 1, 1, 1)])
    bars = read_bars(tmp_path, format="lean").bars["X"]
    np.testing.assert_array_equal(bars.ts, [utc("2024-03-10T06:30"), utc("2024-03-10T07:30"),
                                            utc("2024-11-03T04:30"), utc("2024-11-03T07:30")])


def test_lean_nonexistent_and_ambiguous_wall_times(tmp_path):
    lean_zip(tmp_path, "X", "20240310", [trade("01:30", 1, 1, 1, 1, 1),
                                         trade("02:30", 1, 1, 1, 1, 1)])
    err = error_of(tmp_path, format="lean")
    assert "20240310_trade.zip/20240310_x_minute_trade.csv, line 2" in str(err)
    assert "does not exist or is ambiguous in America/New_York" in str(err)
    lean_zip(tmp_path, "X", "20241103", [trade("01:30", 1, 1, 1, 1, 1)])
    result = read_bars(tmp_path, format="lean", on_bad="drop")
    assert result.dropped == {"unparseable time": 2}
    assert len(result.bars["X"]) == 1


def quote_line(hhmm, bid, ask, bid_size=100, ask_size=200) -> str:
    def side(p):
        return ["", "", "", ""] if p is None else [str(round(x * 10_000)) for x in p]
    return ",".join([str(ms(hhmm)), *side(bid), str(bid_size), *side(ask), str(ask_size)])


def test_lean_quotes_mid_bid_ask(tmp_path):
    lean_zip(tmp_path, "EURX", "20240102", [
        quote_line("09:30", (1.0, 1.2, 0.9, 1.1), (1.2, 1.4, 1.1, 1.3)),
        quote_line("09:31", None, (2.0, 2.0, 2.0, 2.0)),      # no bid on this line
    ], kind="quote")
    mid = read_bars(tmp_path, format="lean").bars["EURX"]       # no trade zips: mids
    np.testing.assert_allclose(mid.open, [1.1, 2.0])
    np.testing.assert_allclose(mid.high, [1.3, 2.0])
    np.testing.assert_allclose(mid.low, [1.0, 2.0])
    np.testing.assert_allclose(mid.close, [1.2, 2.0])
    assert not mid.has_volume and np.isnan(mid.volume).all()   # quote bars: no volume
    same = read_bars(tmp_path, format="lean:mid").bars["EURX"]
    np.testing.assert_array_equal(same.close, mid.close)
    ask = read_bars(tmp_path, format="lean:ask").bars["EURX"]
    np.testing.assert_allclose(ask.open, [1.2, 2.0])
    err = error_of(tmp_path, format="lean:bid")
    assert "line 2" in str(err) and "no bid prices" in str(err)
    bid = read_bars(tmp_path, format="lean:bid", on_bad="drop")
    np.testing.assert_allclose(bid.bars["EURX"].close, [1.1])
    assert bid.dropped == {"missing field": 1}
    err = error_of(tmp_path, format="lean:trade")
    assert "no trade zips" in str(err)


def test_lean_trade_zips_win_over_quotes(tmp_path):
    lean_zip(tmp_path, "SPY", "20240102", [trade("09:30", 5, 5, 5, 5, 1)])
    lean_zip(tmp_path, "SPY", "20240102", [quote_line("09:30", (1, 1, 1, 1), (3, 3, 3, 3))],
             kind="quote")
    assert read_bars(tmp_path, format="lean").bars["SPY"].close[0] == 5
    assert read_bars(tmp_path, format="lean:mid").bars["SPY"].close[0] == 2


def test_lean_bad_rows_name_zip_member_line_and_field(tmp_path):
    path = lean_zip(tmp_path, "SPY", "20240102", [
        trade("09:30", 1, 1, 1, 1, 1),
        f"{ms('09:31')},10000,x,10000,10000,5",
        f"{ms('09:32')},10000,10000,10000,10000",
        "",
        f"{ms('09:33')},10000,10000,10000,10000,",
        f"{86_400_000},10000,10000,10000,10000,1",
        trade("09:34", 1, 1, 1, 1, 1),
    ])
    err = error_of(tmp_path, format="lean")
    assert str(err).startswith(f"{path}/20240102_spy_minute_trade.csv, line 2: ")
    assert "bad number 'x' in field 'high'" in str(err)
    result = read_bars(tmp_path, format="lean", on_bad="drop")
    assert result.dropped == {"bad number": 1, "wrong field count": 1, "missing field": 1,
                              "time out of range": 1}
    bars = result.bars["SPY"]
    np.testing.assert_array_equal(bars.ts, [utc("2024-01-02T14:30"), utc("2024-01-02T14:34")])
    assert result.where("SPY", 1)[1] == 7                       # blank line 4 counted


def test_lean_impossible_and_duplicate_bars(tmp_path):
    lean_zip(tmp_path, "SPY", "20240102", [trade("09:30", 1, 1, 1, 1, 1),
                                           trade("09:30", 1, 1, 1, 1, 1),
                                           trade("09:31", 2, 1, 1, 1, 1)])
    err = error_of(tmp_path, format="lean")
    assert "line 2" in str(err) and "duplicate timestamp" in str(err) and "line 1" in str(err)
    result = read_bars(tmp_path, format="lean", on_bad="drop")
    assert result.dropped == {"duplicate timestamp": 1,
                              "high/low inconsistent with open/close": 1}


def test_lean_second_resolution_and_interval_check(tmp_path):
    lean_zip(tmp_path, "SPY", "20240102", [f"{34_200_000 + k * 1000},10000,10000,10000,10000,1"
                                           for k in range(3)], resolution="second")
    bars = read_bars(tmp_path, format="lean").bars["SPY"]
    assert bars.interval.name == "1s"
    np.testing.assert_array_equal(np.diff(bars.ts), [NS, NS])
    err = error_of(tmp_path / "equity" / "usa" / "second" / "spy", format="lean",
                   interval="1m")
    assert "holds 1s bars" in str(err) and "--base 1s" in str(err)
    err = error_of(tmp_path, format="lean", interval="1m")
    assert "no LEAN equity 1m bars" in str(err) and "--base 1s" in str(err)


def test_lean_refuses_other_asset_classes_and_options(tmp_path):
    lean_zip(tmp_path, "EURUSD", "20240102", [quote_line("09:30", (1, 1, 1, 1), (1, 1, 1, 1))],
             kind="quote", security="forex", market="oanda")
    folder = tmp_path / "forex" / "oanda" / "minute" / "eurusd"
    err = error_of(folder, format="lean")
    assert str(err).startswith(f"{folder}: LEAN forex data: format 'lean' reads US equity")
    err = error_of(tmp_path, format="lean")
    assert "no LEAN equity bars" in str(err) and "eurusd: LEAN forex data" in str(err)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no LEAN minute files" in str(error_of(empty, format="lean"))
    with pytest.raises(ValueError, match="tz='Europe/Berlin' does not apply"):
        read_bars(tmp_path, format="lean", tz="Europe/Berlin")
    with pytest.raises(ValueError, match="unknown format"):
        read_bars(tmp_path, format="lean:last")
    bad = tmp_path / "equity" / "usa" / "minute" / "spy"
    bad.mkdir(parents=True)
    (bad / "20240102_trade.zip").write_bytes(b"not a zip")
    assert "not a readable zip file" in str(error_of(bad, format="lean"))


def test_lean_extended_hours_against_xnys(lean_root):
    pytest.importorskip("exchange_calendars")
    from sessiondata import Calendar

    result = read_bars(lean_root / "equity" / "usa" / "minute" / "spy", format="lean",
                       interval="1m")
    # Issue 10: pre- and after-market bars are outside the session's hours, not bad data
    # (no error, not dropped), and each keeps its session (04:00 and 19:59, 4 days).
    counts = result.check_sessions(Calendar.exchange("XNYS"), "1m", "raise")
    assert counts == {"outside the session's hours": 8}
    assert result.dropped == {} and len(result.bars["SPY"]) == 12
    assert len(result.outside["SPY"]) == 8
    assert len(set(result.outside_sessions["SPY"].tolist())) == 4


# --------------------------------------------------------------------------------------------
# Databento DBN
# --------------------------------------------------------------------------------------------


def dbn_file(tmp_path, records, *, schema="OHLCV_1M", name="x.dbn", compress=False,
             header: bytes | None = None) -> Path:
    dbn = pytest.importorskip("databento_dbn")
    if header is None:
        meta = dbn.Metadata(dataset="GLBX.MDP3", schema=getattr(dbn.Schema, schema), start=0,
                            stype_in=dbn.SType.INSTRUMENT_ID,
                            stype_out=dbn.SType.INSTRUMENT_ID, end=None, symbols=["7"],
                            partial=[], not_found=[], mappings=[])
        header = bytes(meta.encode())
    data = header + b"".join(bytes(r) for r in records)
    if compress:
        zstd = pytest.importorskip("zstandard")
        data = zstd.ZstdCompressor().compress(data)
    path = tmp_path / name
    path.write_bytes(data)
    return path


def ohlcv(iid, ts, o, h, lo, c, v, rtype=0x21):
    dbn = pytest.importorskip("databento_dbn")
    return dbn.OHLCVMsg(rtype, 1, iid, ts, o, h, lo, c, v)


P = 1_000_000_000  # DBN fixed-point scale


def test_databento_synthetic_file_plain_and_compressed(tmp_path):
    t0 = utc("2024-07-01T23:40")
    recs = [ohlcv(7, t0 + k * MIN, (100 + k) * P, (101 + k) * P, (99 + k) * P, (100 + k) * P + k,
                  10 + k) for k in range(3)]
    for compress, name in ((False, "x.dbn"), (True, "x.dbn.zst")):
        result = read_bars(dbn_file(tmp_path, recs, name=name, compress=compress),
                           format="databento")
        bars = result.bars["7"]       # no symbology mappings: the instrument id
        assert bars.interval.name == "1m"
        np.testing.assert_array_equal(bars.ts, t0 + MIN * np.arange(3))
        np.testing.assert_array_equal(bars.open, [100, 101, 102])
        np.testing.assert_array_equal(bars.close, [100, 101.000000001, 102.000000002])
        np.testing.assert_array_equal(bars.volume, [10, 11, 12])
        assert result.where("7", 2) == (str(tmp_path / name), 2, "record")


def test_databento_bad_records_name_the_record(tmp_path):
    t0 = utc("2024-07-01T23:40")
    undef = 2**63 - 1
    recs = [ohlcv(7, t0, P, P, P, P, 1), ohlcv(7, t0 + MIN, P, undef, P, P, 1),
            ohlcv(7, t0 + 2 * MIN, P, P, P, P, 1, rtype=0x20), ohlcv(7, t0 + 3 * MIN, P, P, P,
                                                                     P, 1)]
    path = dbn_file(tmp_path, recs)
    err = error_of(path, format="databento")
    assert str(err) == (f"{path}, record 1: undefined price (UNDEF_PRICE) in field 'high'")
    result = read_bars(path, format="databento", on_bad="drop")
    assert result.dropped == {"missing field": 1, "bad record": 1}
    np.testing.assert_array_equal(result.bars["7"].ts, [t0, t0 + 3 * MIN])
    truncated = tmp_path / "t.dbn"
    truncated.write_bytes(path.read_bytes()[:-10])
    assert "record 3: truncated record" in str(error_of(truncated, format="databento"))


def test_databento_other_schemas_are_refused(tmp_path):
    path = dbn_file(tmp_path, [], schema="TRADES")
    err = error_of(path, format="databento")
    assert "schema 'trades' is not read as bars" in str(err) and "ohlcv-1m" in str(err)
    hourly = dbn_file(tmp_path, [ohlcv(7, 0, P, P, P, P, 1, rtype=0x22)], schema="OHLCV_1H",
                      name="h.dbn")
    assert read_bars(hourly, format="databento").bars["7"].interval.name == "1h"
    assert "--base 1h" in str(error_of(hourly, format="databento", interval="1m"))
    not_dbn = tmp_path / "n.dbn"
    not_dbn.write_bytes(b"hello")
    assert "not a DBN file" in str(error_of(not_dbn, format="databento"))


def test_databento_without_the_extra_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "databento_dbn", None)
    with pytest.raises(ImportError, match=r'pip install "sessiondata\[databento\]"'):
        read_bars(tmp_path, format="databento")


@pytest.mark.data
@pytest.mark.skipif(not DBN_FILE.is_file(), reason=f"no {DBN_FILE}")
def test_databento_real_file():
    dbn = pytest.importorskip("databento_dbn")
    zstd = pytest.importorskip("zstandard")
    result = read_bars(DBN_FILE, format="databento", interval="1m")
    assert sorted(result.bars) == ["ESU4", "NQU4"] and result.rows == 60
    for sym in ("ESU4", "NQU4"):
        bars = result.bars[sym]
        assert len(bars) == 30 and bars.interval.name == "1m"
        np.testing.assert_array_equal(bars.ts, utc("2024-07-01T23:40") + MIN * np.arange(30))
    # Every bar against the package's own decoding of the records.
    raw = zstd.ZstdDecompressor().stream_reader(io.BytesIO(DBN_FILE.read_bytes()),
                                                read_across_frames=True).read()
    decoder = dbn.DBNDecoder()
    decoder.write(raw)
    records = [r for r in decoder.decode() if isinstance(r, dbn.OHLCVMsg)]
    assert len(records) == 60
    names = {118: "ESU4", 4358: "NQU4"}     # the file's symbology mappings
    seen = {"ESU4": 0, "NQU4": 0}
    for rec in records:
        sym = names[rec.instrument_id]
        bars, k = result.bars[sym], seen[sym]
        assert bars.ts[k] == rec.ts_event
        assert (bars.open[k], bars.high[k], bars.low[k], bars.close[k]) == (
            rec.open / 1e9, rec.high / 1e9, rec.low / 1e9, rec.close / 1e9)
        assert bars.volume[k] == rec.volume
        seen[sym] += 1
    first = result.bars["ESU4"]
    assert (first.open[0], first.high[0], first.low[0], first.close[0], first.volume[0]) == (
        5527.25, 5527.5, 5527.0, 5527.5, 180)


@pytest.mark.data
@pytest.mark.skipif(not DBN_FILE.is_file(), reason=f"no {DBN_FILE}")
def test_databento_mappings_hold_over_their_dates(tmp_path):
    zstd = pytest.importorskip("zstandard")
    raw = zstd.ZstdDecompressor().stream_reader(io.BytesIO(DBN_FILE.read_bytes()),
                                                read_across_frames=True).read()
    header = raw[:8 + int.from_bytes(raw[4:8], "little")]
    # ESU4 is instrument 118 from 2024-07-01 to 2024-07-03 (end exclusive).
    inside = ohlcv(118, utc("2024-07-02T23:59"), P, P, P, P, 1)
    after = ohlcv(118, utc("2024-07-03T00:00"), P, P, P, P, 1)
    path = dbn_file(tmp_path, [inside, after], header=header)
    err = error_of(path, format="databento")
    assert "record 1: instrument_id 118 at 2024-07-03T00:00" in str(err)
    result = read_bars(path, format="databento", on_bad="drop")
    assert list(result.bars) == ["ESU4"] and result.dropped == {"no symbol": 1}


# --------------------------------------------------------------------------------------------
# Binance
# --------------------------------------------------------------------------------------------

KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore\n")


def kline(open_ms: int, o, h, lo, c, v, span_ms: int = 60_000, scale: int = 1) -> str:
    return (f"{open_ms * scale},{o},{h},{lo},{c},{v},{(open_ms + span_ms) * scale - 1},"
            "1.0,10,0.5,0.5,0\n")


@pytest.mark.data
@pytest.mark.skipif(not ADA_27.is_file(), reason=f"no {ADA_27}")
def test_binance_real_files():
    one = read_bars(ADA_27, format="binance", interval="1m")
    bars = one.bars["ADABTC"]
    assert len(bars) == 10 and bars.interval.name == "1m"
    np.testing.assert_array_equal(bars.ts, utc("2021-11-27T00:00") + MIN * np.arange(10))
    first = ADA_27.read_text().splitlines()[0].split(",")
    assert bars.ts[0] == int(first[0]) * 1_000_000
    assert (bars.open[0], bars.high[0], bars.low[0], bars.close[0], bars.volume[0]) == tuple(
        float(x) for x in first[1:6])
    both = read_bars(DATA, format="binance")            # the folder: kline files only
    assert list(both.bars) == ["ADABTC"] and len(both.bars["ADABTC"]) == 21
    assert both.sources == [str(ADA_27), str(ADA_28)]
    np.testing.assert_array_equal(both.bars["ADABTC"].ts[10:],
                                  utc("2021-11-28T00:00") + MIN * np.arange(11))
    assert both.where("ADABTC", 10) == (str(ADA_28), 1, "line")


def test_binance_header_microseconds_zip_and_hourly(tmp_path):
    t0 = 1_735_689_600_000           # 2025-01-01 00:00 UTC in ms
    plain = tmp_path / "BTCUSDT-1m-2025-01-01.csv"
    plain.write_text(KLINE_HEADER + kline(t0, 1, 2, 0.5, 1.5, 3)
                     + kline(t0 + 60_000, 1.5, 2, 1, 1.2, 4))
    micro = tmp_path / "ETHUSDT-1m-2025-01-01.csv"
    micro.write_text(kline(t0, 1, 2, 0.5, 1.5, 3, scale=1000))
    hourly = tmp_path / "sub" / "SOLUSDT-1h-2025-01-01.zip"
    hourly.parent.mkdir()
    with zipfile.ZipFile(hourly, "w") as zf:
        zf.writestr("SOLUSDT-1h-2025-01-01.csv", kline(t0, 1, 1, 1, 1, 1, span_ms=3_600_000)
                    + kline(t0 + 3_600_000, 1, 1, 1, 1, 1, span_ms=3_600_000))
    result = read_bars(tmp_path, format="binance")
    assert sorted(result.bars) == ["BTCUSDT", "ETHUSDT"]
    np.testing.assert_array_equal(result.bars["BTCUSDT"].ts, t0 * 1_000_000 + MIN * np.arange(2))
    assert result.where("BTCUSDT", 0)[1] == 2           # the header is line 1
    assert result.bars["ETHUSDT"].ts[0] == t0 * 1_000_000     # microseconds detected
    sol = read_bars(hourly, format="binance")
    assert sol.bars["SOLUSDT"].interval.name == "1h" and sol.sources == [
        f"{hourly}/SOLUSDT-1h-2025-01-01.csv"]
    assert "--base 1h" in str(error_of(hourly, format="binance", interval="1m"))


def test_binance_bad_rows(tmp_path):
    t0 = 1_637_971_200_000
    path = tmp_path / "ADABTC-1m-2021-11-27.csv"
    path.write_text(kline(t0, 1, 1, 1, 1, 1)
                    + kline(t0 + 60_000, 1, 1, 1, 1, 1, span_ms=120_000)    # a 2m close time
                    + kline(t0 + 120_000, 1, 1, 1, 1, 1).replace(",1,1,1,1,", ",1,one,1,1,", 1)
                    + "1,2,3\n"
                    + kline(t0 + 180_000, 1, 1, 1, 1, 1))
    err = error_of(path, format="binance")
    assert str(err).startswith(f"{path}, line 2: close_time")
    assert "is not the last ms of a 1m bar" in str(err)
    result = read_bars(path, format="binance", on_bad="drop")
    assert result.dropped == {"wrong close time": 1, "bad number": 1, "wrong field count": 1}
    np.testing.assert_array_equal(result.bars["ADABTC"].ts,
                                  [t0 * 1_000_000, (t0 + 180_000) * 1_000_000])
    stray = tmp_path / "x" / "ADABTC-1m-2021-11-27.csv"
    stray.parent.mkdir()
    stray.write_bytes(kline(t0, 1, 1, 1, 1, 1).encode()
                      + kline(t0 + 60_000, 1, 1, 1, 1, 1).replace(",1,", ",1\xe9,", 1)
                      .encode("latin-1"))
    assert str(error_of(stray, format="binance")).endswith(
        "line 2: bad number '1\xe9' in field 'open'")
    odd = tmp_path / "klines.csv"
    odd.write_text(kline(t0, 1, 1, 1, 1, 1))
    assert "cannot tell the symbol" in str(error_of(odd, format="binance"))
    assert list(read_bars(odd, format="binance", symbol="ADABTC").bars) == ["ADABTC"]
    daily = tmp_path / "ADABTC-1d-2021-11.csv"
    daily.write_text(kline(t0, 1, 1, 1, 1, 1, span_ms=86_400_000))
    assert "not intraday bars" in str(error_of(daily, format="binance"))


def test_format_csv_keeps_the_csv_reader(tmp_path):
    path = tmp_path / "X.csv"
    path.write_text("timestamp,open,high,low,close,volume\n2024-01-02 10:00,1,1,1,1,1\n")
    for fmt in (None, "csv"):
        assert list(read_bars(path, format=fmt, interval="1m").bars) == ["X"]


def test_blank_lines_and_crlf_read_as_clean_files(tmp_path):
    """The careful path (taken for a blank line) gives the fast path's bars, lines shifted."""
    t0 = 1_637_971_200_000
    rows = [kline(t0 + k * 60_000, 1 + k, 2 + k, 0.5, 1 + k, 10 * k) for k in range(4)]
    clean = tmp_path / "a" / "ADABTC-1m-2021-11-27.csv"
    gappy = tmp_path / "b" / "ADABTC-1m-2021-11-27.csv"
    clean.parent.mkdir()
    gappy.parent.mkdir()
    clean.write_text("".join(rows))
    gappy.write_bytes((KLINE_HEADER + rows[0] + rows[1] + "\n" + rows[2] + rows[3])
                      .replace("\n", "\r\n").encode())
    a = read_bars(clean, format="binance")
    b = read_bars(gappy, format="binance")
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(a.bars["ADABTC"], name),
                                      getattr(b.bars["ADABTC"], name))
    assert [a.where("ADABTC", k)[1] for k in range(4)] == [1, 2, 3, 4]
    assert [b.where("ADABTC", k)[1] for k in range(4)] == [2, 3, 5, 6]
    assert a.rows == b.rows == 4


def test_databento_records_with_ts_out(tmp_path):
    dbn = pytest.importorskip("databento_dbn")
    meta = dbn.Metadata(dataset="GLBX.MDP3", schema=dbn.Schema.OHLCV_1M, start=0,
                        stype_in=dbn.SType.INSTRUMENT_ID, stype_out=dbn.SType.INSTRUMENT_ID,
                        end=None, symbols=["7"], partial=[], not_found=[], mappings=[],
                        ts_out=True)
    body = b""
    for k in range(2):
        rec = bytearray(bytes(ohlcv(7, (k + 1) * MIN, P, 2 * P, P, P, k)))
        rec[0] = 16                       # 64 bytes: the record and the gateway's ts_out
        body += bytes(rec) + (123 + k).to_bytes(8, "little")
    path = tmp_path / "o.dbn"
    path.write_bytes(bytes(meta.encode()) + body)
    bars = read_bars(path, format="databento").bars["7"]
    np.testing.assert_array_equal(bars.ts, [MIN, 2 * MIN])
    np.testing.assert_array_equal(bars.high, [2, 2])
    np.testing.assert_array_equal(bars.volume, [0, 1])


def test_lean_data_root_reads_its_equity_bars_of_the_interval(tmp_path):
    lean_zip(tmp_path, "SPY", "20240102", [trade("09:30", 1, 1, 1, 1, 1)])
    lean_zip(tmp_path, "SPY", "20240102", [f"{ms('09:30')},10000,10000,10000,10000,1"],
             resolution="second")
    lean_zip(tmp_path, "SPY", "20240102", [f"{ms('09:30')},10000,10000,10000,10000,1"],
             resolution="tick")
    lean_zip(tmp_path, "EURUSD", "20240102", [quote_line("09:30", (1, 1, 1, 1), (1, 1, 1, 1))],
             kind="quote", security="forex", market="oanda")
    minute = read_bars(tmp_path, format="lean", interval="1m")
    assert list(minute.bars) == ["SPY"] and minute.bars["SPY"].interval.name == "1m"
    assert len(minute.sources) == 1 and "/minute/spy/" in minute.sources[0]
    second = read_bars(tmp_path, format="lean", interval="1s")
    assert "/second/spy/" in second.sources[0]
    err = error_of(tmp_path, format="lean")          # both resolutions of SPY: say so
    assert "holds 1s bars of SPY" in str(err) and "1m bars" in str(err)
    tick = tmp_path / "equity" / "usa" / "tick" / "spy"
    assert "LEAN tick data" in str(error_of(tick, format="lean"))


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def run_cli(*argv) -> tuple[int, str, str]:
    from sessiondata import cli

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main([str(a) for a in argv])
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


@pytest.mark.data
@pytest.mark.skipif(not DBN_FILE.is_file(), reason=f"no {DBN_FILE}")
def test_cli_runs_the_real_dbn_and_kline_files(tmp_path):
    pytest.importorskip("databento_dbn")
    pytest.importorskip("exchange_calendars")
    code, out, err = run_cli("run", DBN_FILE, "--format", "databento", "--calendar",
                             "CME_GLOBEX", "--out", tmp_path / "dbn")
    assert code == 0, err
    assert "ESU4" in out and "NQU4" in out
    summary = tmp_path / "ada.json"
    code, out, err = run_cli("run", ADA_27, "--format", "binance", "--calendar", "24/7",
                             "--out", tmp_path / "ada", "--json-summary", summary)
    assert code == 0, err
    assert json.loads(summary.read_text())["symbols"] == ["ADABTC"]


def test_cli_lean_extended_hours_raise_or_drop(lean_root, tmp_path):
    pytest.importorskip("exchange_calendars")
    # Issue 10: extended hours run without --on-bad drop (outside the session's hours).
    code, out, err = run_cli("run", lean_root, "--format", "lean", "--calendar", "XNYS",
                             "--out", tmp_path / "raise")
    assert code == 0, err
    assert "SPY" in out and "AAPL" in out
    code, out, err = run_cli("run", lean_root, "--format", "lean", "--calendar", "XNYS",
                             "--out", tmp_path / "drop", "--on-bad", "drop")
    assert code == 0, err
    assert "SPY" in out and "AAPL" in out
