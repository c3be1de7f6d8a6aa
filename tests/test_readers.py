"""The readers: CSV options, malformed input naming file and line, Parquet, DataFrames."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from sessiondata import Bars, Calendar
from sessiondata.readers import (
    ReadError,
    ReadWarning,
    data_files,
    read_bars,
    read_csv,
    read_frame,
    read_parquet,
)

HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = [
    "2024-01-02 10:00:00,1.0,1.5,0.5,1.2,10\n",
    "2024-01-02 10:01:00,1.2,1.6,1.1,1.3,11\n",
    "2024-01-02 10:02:00,1.3,1.4,1.0,1.1,12\n",
]
T0 = int(np.datetime64("2024-01-02T10:00", "ns").astype(np.int64))
MIN = 60_000_000_000


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    data = text if isinstance(text, bytes) else text.encode(encoding)
    path.write_bytes(data)
    return path


def only(result):
    assert len(result.bars) == 1
    return next(iter(result.bars.values()))


def error_of(func, *args, **kwargs) -> ReadError:
    with pytest.raises(ReadError) as info:
        func(*args, **kwargs)
    return info.value


# -- the happy path and each option --------------------------------------------------------


def test_reads_iso_start_stamped_bars(tmp_path):
    path = write(tmp_path, "EURUSD.csv", HEADER + "".join(ROWS))
    result = read_csv(path, interval="1m")
    assert list(result.bars) == ["EURUSD"]          # the symbol is the file name's stem
    bars = result.bars["EURUSD"]
    assert isinstance(bars, Bars) and bars.interval.name == "1m"
    assert bars.ts.dtype == np.int64 and bars.open.dtype == np.float64
    np.testing.assert_array_equal(bars.ts, T0 + MIN * np.arange(3))
    np.testing.assert_array_equal(bars.close, [1.2, 1.3, 1.1])
    np.testing.assert_array_equal(bars.volume, [10, 11, 12])
    assert result.rows == 3 and not result.dropped
    assert result.where("EURUSD", 2) == (str(path), 4, "line")


def test_end_stamped_bars_shift_back_by_the_interval(tmp_path):
    path = write(tmp_path, "x.csv", HEADER + "".join(ROWS))
    bars = only(read_csv(path, interval="5m", stamp="end"))
    assert bars.ts[0] == T0 - 5 * MIN
    with pytest.raises(ValueError, match="interval"):
        read_csv(path, stamp="end")                   # never a guess: the interval is needed
    with pytest.raises(ValueError, match="stamp"):
        read_csv(path, stamp="middle")


def test_naive_times_take_the_given_zone_and_offsets_their_own(tmp_path):
    path = write(tmp_path, "x.csv", HEADER + "".join(ROWS))
    bars = only(read_csv(path, tz="Europe/Berlin"))
    assert bars.ts[0] == T0 - 3600 * 10**9           # 10:00 CET is 09:00 UTC
    aware = HEADER + "2024-01-02T10:00:00+01:00,1,1,1,1,1\n2024-01-02T09:01:00Z,1,1,1,1,1\n"
    bars = only(read_csv(write(tmp_path, "a.csv", aware), tz="America/New_York"))
    np.testing.assert_array_equal(bars.ts, [T0 - 3600 * 10**9, T0 - 3600 * 10**9 + MIN])


def test_read_result_says_whether_the_times_were_naive(tmp_path):
    # Naive text: read in the given zone; offsets and epoch numbers carry their own.
    naive = read_csv(write(tmp_path, "n.csv", HEADER + "".join(ROWS)), tz="Europe/Berlin",
                     interval="1m", stamp="end")
    assert naive.naive and naive.tz == "Europe/Berlin" and naive.stamp == "end"
    aware = HEADER + "2024-01-02T10:00:00+01:00,1,1,1,1,1\n2024-01-02T09:01:00Z,1,1,1,1,1\n"
    got = read_csv(write(tmp_path, "a.csv", aware), tz="Europe/Berlin")
    assert not got.naive and got.tz is None and got.stamp == "start"
    epoch = HEADER + f"{T0 // 10**6},1,1,1,1,1\n{(T0 + MIN) // 10**6},1,1,1,1,1\n"
    assert not read_csv(write(tmp_path, "e.csv", epoch)).naive
    # A folder: naive when any file's times were.
    folder = tmp_path / "mixed"
    folder.mkdir()
    write(folder, "A.csv", aware)
    write(folder, "B.csv", HEADER + "".join(ROWS))
    assert read_bars(folder).naive


def test_naive_time_in_a_daylight_saving_change_names_the_line(tmp_path):
    text = HEADER + "2024-03-31 01:59,1,1,1,1,1\n2024-03-31 02:30,1,1,1,1,1\n"
    err = error_of(read_csv, write(tmp_path, "dst.csv", text), tz="Europe/Berlin")
    assert err.line == 3 and "daylight-saving" in str(err) and "dst.csv" in str(err)


def test_naive_and_offset_times_do_not_mix(tmp_path):
    text = HEADER + "2024-01-02 10:00,1,1,1,1,1\n2024-01-02T10:01:00+01:00,1,1,1,1,1\n"
    err = error_of(read_csv, write(tmp_path, "mix.csv", text))
    assert err.line == 3 and "offset" in err.reason


def test_strptime_format(tmp_path):
    text = HEADER + "02.01.2024 10:00,1,1,1,1,1\n02.01.2024 10:01,1,1,1,1,1\n"
    path = write(tmp_path, "x.csv", text)
    bars = only(read_csv(path, ts_format="%d.%m.%Y %H:%M"))
    assert bars.ts[0] == T0
    err = error_of(read_csv, path)                    # not ISO: says what it expected
    assert err.line == 2 and "unparseable time" in err.reason and "ISO" in err.reason


@pytest.mark.parametrize("unit,scale", [("s", 10**9), ("ms", 10**6), ("us", 10**3),
                                        ("ns", 1)])
def test_epoch_units_explicit_and_by_digits(tmp_path, unit, scale):
    text = HEADER + "".join(f"{(T0 + k * MIN) // scale},1,1,1,1,1\n" for k in range(2))
    path = write(tmp_path, f"e{unit}.csv", text)
    np.testing.assert_array_equal(only(read_csv(path, ts_format=unit)).ts, [T0, T0 + MIN])
    np.testing.assert_array_equal(only(read_csv(path)).ts, [T0, T0 + MIN])


def test_epoch_of_unclear_unit_asks_for_the_format(tmp_path):
    err = error_of(read_csv, write(tmp_path, "e.csv", HEADER + "17042000000,1,1,1,1,1\n"))
    assert err.line == 2 and "ts-format" in str(err)


def test_fractional_epoch_seconds(tmp_path):
    path = write(tmp_path, "e.csv", HEADER + f"{T0 // 10**9}.5,1,1,1,1,1\n")
    assert only(read_csv(path, ts_format="s")).ts[0] == T0 + 500_000_000


def test_date_and_time_columns(tmp_path):
    text = "Date,Time,Open,High,Low,Close,Volume,OpenInterest\n" \
           "2024-01-02,10:05:00,1,1,1,1,0,0\n2024-01-02,10:10:00,1,1,1,1,0,0\n"
    path = write(tmp_path, "x.txt", text)
    bars = only(read_csv(path, interval="5m", stamp="end"))
    np.testing.assert_array_equal(bars.ts, [T0, T0 + 5 * MIN])
    named = only(read_csv(path, date_column="date", time_column="TIME"))
    assert named.ts[0] == T0 + 5 * MIN
    with pytest.raises(ValueError, match="together"):
        read_csv(path, date_column="Date")


def test_column_names_are_found_case_insensitively_or_given(tmp_path):
    text = "Time_Stamp,OPEN,High,low,Close,VOLUME\n2024-01-02 10:00,1,1,1,1,1\n"
    assert only(read_csv(write(tmp_path, "a.csv", text))).ts[0] == T0
    text = "when,o,h,l,c,v\n2024-01-02 10:00,1,2,0.5,1,1\n"
    bars = only(read_csv(write(tmp_path, "b.csv", text), ts_column="WHEN",
                         columns={"open": "o", "high": "h", "low": "l", "close": "c",
                                  "volume": "v"}))
    assert bars.high[0] == 2.0


def test_timestamp_utc_column_is_recognised(tmp_path):
    text = "timestamp_utc,open,high,low,close,volume\n2024-01-02 10:00:00,1,1,1,1,1\n"
    assert only(read_csv(write(tmp_path, "x.csv", text))).ts[0] == T0


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiter_is_detected(tmp_path, sep):
    text = (HEADER + "".join(ROWS)).replace(",", sep)
    bars = only(read_csv(write(tmp_path, "x.csv", text)))
    np.testing.assert_array_equal(bars.volume, [10, 11, 12])


def test_delimiter_option(tmp_path):
    text = (HEADER + "".join(ROWS)).replace(",", ";")
    path = write(tmp_path, "x.csv", text)
    assert len(only(read_csv(path, delimiter=";"))) == 3
    with pytest.raises(ReadError):
        read_csv(path, delimiter=",")                 # the header is then one column
    with pytest.raises(ValueError, match="delimiter"):
        read_csv(path, delimiter="#")


def test_utf8_bom_and_crlf_line_ends(tmp_path):
    text = (HEADER + "".join(ROWS)).replace("\n", "\r\n")
    path = write(tmp_path, "x.csv", b"\xef\xbb\xbf" + text.encode())
    bars = only(read_csv(path))
    np.testing.assert_array_equal(bars.volume, [10, 11, 12])
    # The careful reader (after a malformed row) keeps the same line numbers.
    bad = text.replace("1.3,11", "x,11")
    err = error_of(read_csv, write(tmp_path, "bad.csv", b"\xef\xbb\xbf" + bad.encode()))
    assert err.line == 3 and "bad number 'x'" in err.reason


def test_gzip_file(tmp_path):
    path = tmp_path / "SYM.csv.gz"
    path.write_bytes(gzip.compress((HEADER + "".join(ROWS)).encode()))
    result = read_csv(path)
    assert list(result.bars) == ["SYM"] and len(result.bars["SYM"]) == 3


def test_symbol_column_splits_a_file_by_symbol(tmp_path):
    text = "Ticker,timestamp,open,high,low,close,volume\n" \
           "AAA,2024-01-02 10:00,1,1,1,1,1\nBBB,2024-01-02 10:00,2,2,2,2,2\n" \
           "AAA,2024-01-02 10:01,1,1,1,1,1\n BBB ,2024-01-02 10:02,2,2,2,2,2\n"
    result = read_csv(write(tmp_path, "many.csv", text))
    assert sorted(result.bars) == ["AAA", "BBB"]
    np.testing.assert_array_equal(result.bars["BBB"].ts, [T0, T0 + 2 * MIN])
    assert result.where("BBB", 1)[1] == 5
    named = read_csv(write(tmp_path, "plain.csv", HEADER + ROWS[0]), symbol="XYZ")
    assert list(named.bars) == ["XYZ"]


def test_chunks_give_the_same_bars_and_true_line_numbers(tmp_path):
    rows = [f"2024-01-02 10:{k:02d}:00,1,2,0.5,1,{k}\n" for k in range(10)]
    path = write(tmp_path, "x.csv", HEADER + "".join(rows))
    assert only(read_csv(path, chunk_rows=3)).equals(only(read_csv(path)))
    rows[7] = "2024-01-02 10:07:00,1,2,0.5,oops,7\n"
    err = error_of(read_csv, write(tmp_path, "y.csv", HEADER + "".join(rows)), chunk_rows=3)
    assert err.line == 9
    rows[7] = "2024-01-02 10:05:00,1,2,0.5,1,7\n"      # out of order, found in chunk 3
    err = error_of(read_csv, write(tmp_path, "z.csv", HEADER + "".join(rows)), chunk_rows=3)
    assert err.line == 9 and "out of order" in err.reason and "line 8" in err.reason


# -- malformed input: each error names the file and the line -------------------------------


@pytest.mark.parametrize("row,line,words", [
    ("2024-01-02 10:03:00,1,2,0.5,abc,1\n", 5, "bad number 'abc' in column 'close'"),
    ("2024-01-02 10:03:00,1,2,,1,1\n", 5, "missing field 'low'"),
    (",1,2,0.5,1,1\n", 5, "missing field 'timestamp'"),
    ("2024-01-02 25:03:00,1,2,0.5,1,1\n", 5, "unparseable time '2024-01-02 25:03:00'"),
    ("2024-01-02 10:03:00,1,2,0.5,1,1,9\n", 5, "7 fields, the header has 6"),
    ("2024-01-02 10:03:00,1,2,0.5\n", 5, "4 fields, the header has 6"),
    ("2024-01-02 10:03:00,1,0.9,0.5,1,1\n", 5, "high/low inconsistent"),
    ("2024-01-02 10:03:00,nan,2,0.5,1,1\n", 5, "non-finite price"),
    ("2024-01-02 10:03:00,1,2,0.5,1,-4\n", 5, "negative or non-finite volume"),
    ("2024-01-02 10:02:00,1,2,0.5,1,1\n", 5, "duplicate timestamp"),
    ("2024-01-02 10:01:30,1,2,0.5,1,1\n", 5, "out of order"),
])
def test_malformed_row_names_file_line_and_reason(tmp_path, row, line, words):
    path = write(tmp_path, "bad.csv", HEADER + "".join(ROWS) + row)
    err = error_of(read_csv, path)
    assert err.path == str(path) and err.line == line
    assert words in err.reason
    assert str(err).startswith(f"{path}, line {line}: ")


def test_truncated_last_line(tmp_path):
    path = write(tmp_path, "cut.csv", HEADER + "".join(ROWS) + "2024-01-02 10:03:00,1.2,1.")
    err = error_of(read_csv, path)
    assert err.line == 5 and "truncated" in err.reason


def test_first_data_row_longer_than_the_header(tmp_path):
    err = error_of(read_csv, write(tmp_path, "w.csv", HEADER + ROWS[0].replace("\n", ",5\n")
                                   + ROWS[1]))
    assert err.line == 2 and "7 fields" in err.reason


def test_missing_columns_are_listed(tmp_path):
    text = "timestamp,open,high,close\n2024-01-02 10:00,1,1,1\n"
    err = error_of(read_csv, write(tmp_path, "m.csv", text))
    # Volume is optional since issue 10: only the missing price is named.
    assert err.line is None and "missing column 'low'" in err.reason and "m.csv" in str(err)
    assert "volume" not in err.reason.split("(")[0]
    err = error_of(read_csv, write(tmp_path, "n.csv", "open,high,low,close,volume\n1,1,1,1,1\n"))
    assert "no timestamp column" in err.reason


def test_empty_file_and_header_only(tmp_path):
    err = error_of(read_csv, write(tmp_path, "empty.csv", ""))
    assert "empty" in err.reason
    with pytest.warns(ReadWarning, match=r"head\.csv: no data rows"):
        result = read_csv(write(tmp_path, "head.csv", HEADER))
    assert len(only(result)) == 0


def test_blank_lines_are_skipped_and_counted_in_line_numbers(tmp_path):
    text = HEADER + ROWS[0] + "\n" + ROWS[1] + ROWS[2].replace("1.1,12", "1.1,zz")
    err = error_of(read_csv, write(tmp_path, "b.csv", text))
    assert err.line == 5
    ok = read_csv(write(tmp_path, "c.csv", HEADER + ROWS[0] + "\n" + ROWS[1]))
    assert len(only(ok)) == 2


def test_drop_policy_counts_by_reason(tmp_path):
    text = HEADER + ROWS[0] + "2024-01-02 10:00:30,1,2,0.5,x,1\n" + ROWS[1] + ROWS[1] + \
        "bad-time,1,1,1,1,1\n" + "2024-01-02 10:01:30,1,0.1,0.5,1,1\n" + ROWS[2] + \
        "2024-01-02 10:01:00,1,2,0.5,1,1\n" + "2024-01-02 10:03:00,1\n"
    result = read_csv(write(tmp_path, "d.csv", text), on_bad="drop")
    bars = only(result)
    np.testing.assert_array_equal(bars.ts, T0 + MIN * np.arange(3))
    assert dict(result.dropped) == {
        "bad number": 1, "unparseable time": 1, "wrong field count": 1,
        "duplicate timestamp": 1, "high/low inconsistent with open/close": 1,
        "timestamp out of order": 1}
    assert result.where("d", 2)[1] == 8               # lines still point into the file


def test_bad_symbol_names_the_line(tmp_path):
    text = "symbol,timestamp,open,high,low,close,volume\nA\x01B,2024-01-02 10:00,1,1,1,1,1\n"
    err = error_of(read_csv, write(tmp_path, "s.csv", text))
    assert err.line == 2 and "symbol" in err.reason


# -- folders and several files -------------------------------------------------------------


def test_a_folder_reads_every_data_file(tmp_path):
    write(tmp_path, "AAA.csv", HEADER + "".join(ROWS))
    write(tmp_path, "BBB.csv", (HEADER + "".join(ROWS)).replace(",", ";"))
    write(tmp_path, "notes.md", "not data")
    write(tmp_path, ".hidden.csv", "junk")
    assert [p.name for p in data_files(tmp_path)] == ["AAA.csv", "BBB.csv"]
    result = read_bars(tmp_path, interval="1m")
    assert sorted(result.bars) == ["AAA", "BBB"]
    assert len(result.sources) == 2


def test_one_symbol_over_several_files_is_joined_in_time_order(tmp_path):
    head = "symbol," + HEADER
    write(tmp_path, "day2.csv", head + "X,2024-01-03 10:00,1,1,1,1,1\n")
    write(tmp_path, "day1.csv", head + "X,2024-01-02 10:00,1,1,1,1,1\n")
    bars = read_bars(tmp_path).bars["X"]
    np.testing.assert_array_equal(np.diff(bars.ts), [86_400 * 10**9])
    write(tmp_path, "day3.csv", head + "X,2024-01-03 10:00,1,1,1,1,1\n")
    err = error_of(read_bars, tmp_path)
    assert "duplicate timestamp" in err.reason and "day2.csv" in str(err)


def test_missing_path_and_empty_folder(tmp_path):
    assert "no such file" in error_of(read_bars, tmp_path / "nope.csv").reason
    (tmp_path / "empty").mkdir()
    assert "no data files" in error_of(read_bars, tmp_path / "empty").reason


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_reads_back_an_export_of_the_library(tmp_path, fmt):
    """The bar dataset of an export (base bars exported) reads back with the library's own
    readers, file by file (a part file has a symbol column), and as one table through
    pyarrow: the bars read are the bars that went in."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    from sessiondata.export import read_dataset
    from sessiondata.job import run

    bars = only(read_csv(write(tmp_path, "x.csv", HEADER + "".join(ROWS)), interval="1m"))
    other = Bars(bars.ts + MIN * 60, bars.open * 3, bars.high * 3, bars.low * 3,
                 bars.close * 3, bars.volume + 0.25)
    out = tmp_path / "out"
    run({"X": bars, "Y/Z": other}, Calendar.always(), out=out, fmt=fmt, export_base=True,
        derived=["5m"])
    (part,) = (out / "bars" / "interval=1m").iterdir()
    assert part.name == f"part-00000.{fmt}"
    result = read_bars(part, interval="1m")
    assert sorted(result.bars) == ["X", "Y/Z"]
    assert result.bars["X"].equals(bars) and result.bars["Y/Z"].equals(other)
    again = (read_parquet if fmt == "parquet" else read_csv)(part, interval="1m")
    assert again.bars["X"].equals(bars)
    table = ds.dataset(out / "bars", format=fmt, partitioning="hive").to_table(
        filter=(ds.field("interval") == "1m"))
    assert table.num_rows == 6 and {"symbol", "session", "interval"} <= set(table.column_names)
    rows = read_dataset(out, "bars", "1m")
    x = rows.filter(pa.compute.equal(rows.column("symbol").cast(pa.string()), "X"))
    np.testing.assert_array_equal(x.column("ts").cast(pa.int64()).to_numpy(), bars.ts)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(x.column(name).to_numpy(), getattr(bars, name))


# -- sessions ------------------------------------------------------------------------------


def test_bars_outside_every_session_name_their_line(tmp_path):
    cal = Calendar.weekly("UTC", "10:00", "10:02")
    # The third bar on a Saturday: outside every session, on no session's day.  (On the
    # Tuesday, 10:02 would be outside the session's hours: set aside, not an error.)
    saturday = ROWS[2].replace("2024-01-02", "2024-01-06")
    path = write(tmp_path, "x.csv", HEADER + "".join(ROWS[:2]) + saturday)
    result = read_csv(path, interval="1m")
    with pytest.raises(ReadError) as info:
        result.check_sessions(cal)
    assert info.value.line == 4 and "outside every session" in info.value.reason
    assert "better" not in info.value.reason   # no other reading fits better
    result.check_sessions(cal, on_bad="drop")
    assert len(only(result)) == 2 and result.dropped["outside every session window"] == 1


def test_bars_off_the_base_grid(tmp_path):
    text = HEADER + ROWS[0] + "2024-01-02 10:01:30,1,1,1,1,1\n"
    result = read_csv(write(tmp_path, "x.csv", text), interval="1m")
    err = error_of(result.check_sessions, Calendar.always())
    assert err.line == 3 and "grid" in err.reason


# -- Parquet -------------------------------------------------------------------------------


pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _table(ts, **overrides):
    cols = {"ts": ts, "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
            "close": [1.0, 1.5], "volume": [3, 4]}
    cols.update(overrides)
    return pa.table(cols)


def test_parquet_timestamps_of_each_kind(tmp_path):
    naive = pa.array(np.array([T0, T0 + MIN], "datetime64[ns]"), pa.timestamp("ns"))
    aware = pa.array(np.array([T0, T0 + MIN], "datetime64[ns]"), pa.timestamp("us", "UTC"))
    epoch = pa.array([T0 // 10**6, (T0 + MIN) // 10**6], pa.int64())
    for name, ts, tz, want in [("naive", naive, "Europe/Berlin", T0 - 3600 * 10**9),
                               ("aware", aware, "Europe/Berlin", T0),
                               ("epoch", epoch, "UTC", T0)]:
        pq.write_table(_table(ts), tmp_path / f"{name}.parquet")
        got = read_parquet(tmp_path / f"{name}.parquet", tz=tz, interval="1m")
        bars = only(got)
        assert bars.ts[0] == want and bars.volume.dtype == np.float64
        assert got.naive == (name == "naive")       # the column's type says it
    text = pa.array(["2024-01-02 10:00", "2024-01-02 10:01"])
    pq.write_table(_table(text), tmp_path / "text.parquet")
    assert only(read_bars(tmp_path / "text.parquet")).ts[1] == T0 + MIN


def test_parquet_wrong_schema(tmp_path):
    ts = pa.array(["2024-01-02 10:00", "2024-01-02 10:01"])
    pq.write_table(_table(ts, close=["a", "b"]), tmp_path / "bad.parquet")
    err = error_of(read_parquet, tmp_path / "bad.parquet")
    assert "wrong schema" in err.reason and "'close'" in err.reason
    pq.write_table(pa.table({"ts": ts, "open": [1.0, 1.0]}), tmp_path / "few.parquet")
    assert "missing columns" in error_of(read_parquet, tmp_path / "few.parquet").reason


def test_parquet_null_names_the_row(tmp_path):
    ts = pa.array(["2024-01-02 10:00", "2024-01-02 10:01"])
    pq.write_table(_table(ts, close=pa.array([1.0, None])), tmp_path / "null.parquet")
    err = error_of(read_parquet, tmp_path / "null.parquet")
    assert err.line == 2 and "row 2" in str(err) and "'close'" in err.reason
    dropped = read_parquet(tmp_path / "null.parquet", on_bad="drop")
    assert len(only(dropped)) == 1 and dropped.dropped["missing field"] == 1


def test_parquet_in_chunks_with_a_symbol_column(tmp_path):
    n = 10
    table = pa.table({
        "Symbol": ["A", "B"] * (n // 2),
        "timestamp": pa.array(np.repeat(T0 + MIN * np.arange(n // 2), 2).astype("datetime64[ns]"),
                              pa.timestamp("ns", "UTC")),
        "open": np.ones(n), "high": np.ones(n), "low": np.ones(n), "close": np.ones(n),
        "volume": np.arange(n, dtype=np.int32)})
    pq.write_table(table, tmp_path / "ab.parquet", row_group_size=3)
    result = read_parquet(tmp_path / "ab.parquet", chunk_rows=3)
    assert sorted(result.bars) == ["A", "B"] and len(result.bars["B"]) == n // 2
    np.testing.assert_array_equal(result.bars["B"].volume, [1, 3, 5, 7, 9])


# -- DataFrames ----------------------------------------------------------------------------


def test_pandas_frame_with_an_index_or_a_column():
    pd = pytest.importorskip("pandas")
    idx = pd.date_range("2024-01-02 11:00", periods=3, freq="min", tz="Europe/Berlin")
    df = pd.DataFrame({"Open": [1.0, 1, 1], "High": [2.0, 2, 2], "Low": [0.5, 0.5, 0.5],
                       "Close": [1.0, 1, 1], "Volume": [1, 2, 3]}, index=idx)
    bars = read_frame(df, symbol="X", interval="1m").bars["X"]
    np.testing.assert_array_equal(bars.ts, T0 + MIN * np.arange(3))
    df2 = df.reset_index(names="Timestamp")
    df2["Timestamp"] = df2["Timestamp"].dt.tz_localize(None)
    bars2 = read_frame(df2, symbol="X", tz="Europe/Berlin").bars["X"]
    assert bars2.equals(Bars(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume))
    df2 = df2.astype({"Close": object})
    df2.loc[1, "Close"] = "bad"
    with pytest.raises(ReadError, match=r"row 1: bad number 'bad'"):
        read_frame(df2, symbol="X")
    with pytest.raises(ReadError, match="symbol"):
        read_frame(df)


def test_polars_frame():
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({
        "ticker": ["A", "A", "B"],
        "ts": [T0, T0 + MIN, T0],
        "open": [1.0, 1.0, 1.0], "high": [1.0, 1.0, 1.0], "low": [1.0, 1.0, 1.0],
        "close": [1.0, 1.0, 1.0], "volume": [1, 2, 3],
    }).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    result = read_frame(df, interval="1m")
    assert sorted(result.bars) == ["A", "B"]
    np.testing.assert_array_equal(result.bars["A"].ts, [T0, T0 + MIN])
