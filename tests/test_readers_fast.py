"""Readers without pandas (issue 9 item 6), optional volume, header-less files, rows outside
the session (issue 10), and the reader items of issue 11 (5-8)."""

import os
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sessiondata import Bars, Calendar, find_gaps, resample
from sessiondata._core import validation as _validation
from sessiondata._core.stream import SymbolStream
from sessiondata.bars import BadBarError
from sessiondata.readers import ReadError, ReadWarning, read_bars, read_csv, read_parquet

MINUTE = 60_000_000_000


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, newline="")
    return path


def minutes(start: str, n: int) -> list[str]:
    t0 = np.datetime64(start, "m")
    return [str(t0 + k) for k in range(n)]


def csv_text(times, header="timestamp,open,high,low,close,volume", volume=True, eol="\n"):
    rows = [header]
    for k, t in enumerate(times):
        fields = [t, f"{1 + k / 100:.2f}", f"{2 + k / 100:.2f}", "0.5", "1.5"]
        if volume:
            fields.append(str(10 + k))
        rows.append(",".join(fields))
    return eol.join(rows) + eol


def only(result):
    assert len(result.bars) == 1
    return next(iter(result.bars.values()))


# -- the fast path and the careful path agree -----------------------------------------------


@pytest.mark.parametrize("times,options", [
    (minutes("2024-01-02T10:00", 50), {}),
    ([t + ":00Z" for t in minutes("2024-01-02T10:00", 50)], {}),
    ([t + ":00.250+01:00" for t in minutes("2024-01-02T10:00", 50)], {}),
    ([t.replace("T", " ") for t in minutes("2024-03-31T00:30", 50)], {"tz": "Europe/Berlin"}),
    ([str(ns(t) // 1_000_000) for t in minutes("2024-01-02T10:00", 50)], {}),
    ([t.replace("-", ".") for t in minutes("2024-01-02T10:00", 50)],
     {"ts_format": "%Y.%m.%dT%H:%M"}),
], ids=["naive", "zulu", "offset-fraction", "berlin-dst", "epoch-ms", "strptime"])
def test_fast_equals_careful(tmp_path, times, options):
    if options.get("tz") == "Europe/Berlin":
        # 02:00-02:59 does not exist on 2024-03-31 in Berlin: keep the times that do.
        times = [t for t in times if not t[11:13] == "02"]
    clean = write(tmp_path, "A.csv", csv_text(times))
    fast = only(read_csv(clean, **options))
    # One malformed row sends the file down the careful path; dropped, the rest must match.
    text = csv_text(times)
    lines = text.splitlines(keepends=True)
    lines.insert(3, "garbage,row\n")
    irregular = write(tmp_path, "B.csv", "".join(lines))
    careful = read_csv(irregular, on_bad="drop", symbol="A", **options)
    assert careful.dropped == {"wrong field count": 1}
    assert only(careful).equals(fast)
    assert fast.has_volume and len(fast) == len(times)


def test_fast_path_keeps_line_numbers(tmp_path):
    path = write(tmp_path, "X.csv", csv_text(minutes("2024-01-02T10:00", 5)))
    result = read_csv(path, interval="1m")
    assert result.where("X", 4) == (str(path), 6, "line")


def test_symbol_column_through_the_fast_path(tmp_path):
    rows = ["symbol,timestamp,open,high,low,close,volume"]
    for k, t in enumerate(minutes("2024-01-02T10:00", 6)):
        rows.append(f"{'AB'[k % 2]},{t},1,2,0.5,1.5,{k}")
    result = read_csv(write(tmp_path, "m.csv", "\n".join(rows) + "\n"))
    assert sorted(result.bars) == ["A", "B"]
    assert result.bars["B"].volume.tolist() == [1.0, 3.0, 5.0]
    assert result.where("B", 2) == (str(tmp_path / "m.csv"), 7, "line")


# -- volume is optional -----------------------------------------------------------------------


def test_csv_without_volume(tmp_path):
    path = write(tmp_path, "EURUSD.csv",
                 csv_text(minutes("2024-01-02T10:00", 12), "timestamp,open,high,low,close",
                          volume=False))
    bars = only(read_csv(path, interval="1m"))
    assert not bars.has_volume and np.isnan(bars.volume).all() and len(bars) == 12
    out = resample(bars, "5m")
    assert out.count.tolist() == [5, 5, 2] and np.isnan(out.volume).all()
    assert not out.has_volume
    holed = Bars.from_arrays(np.delete(bars.ts, [3, 4]), *(np.delete(getattr(bars, c), [3, 4])
                             for c in ("open", "high", "low", "close")), interval="1m")
    gaps = find_gaps(holed, "1m")
    inside = [(str(g.start_time), g.bar_count) for g in gaps
              if ns("2024-01-02T10:00") <= g.start_time.timestamp() * 1e9 < ns("2024-01-02T10:12")]
    assert inside == [("2024-01-02 10:03:00+00:00", 2)]


def test_parquet_without_volume(tmp_path):
    ts = np.array([ns(t) for t in minutes("2024-01-02T10:00", 4)]).view("datetime64[ns]")
    table = pa.table({"timestamp": pa.array(ts, pa.timestamp("ns", "UTC")),
                      "open": [1.0] * 4, "high": [2.0] * 4, "low": [0.5] * 4,
                      "close": [1.5] * 4})
    pq.write_table(table, tmp_path / "SPX.parquet")
    bars = only(read_parquet(tmp_path / "SPX.parquet"))
    assert not bars.has_volume and np.isnan(bars.volume).all()


def test_a_file_with_volume_still_faults_nan_volume(tmp_path):
    text = csv_text(minutes("2024-01-02T10:00", 4)).replace(",11\n", ",nan\n")
    with pytest.raises(ReadError, match=r"X\.csv, line 3: negative or non-finite volume"):
        read_csv(write(tmp_path, "X.csv", text))


def test_files_of_one_symbol_disagree_on_volume(tmp_path):
    write(tmp_path, "a.csv", "symbol," + csv_text(minutes("2024-01-02T10:00", 2)).replace(
        "\n2", "\nX,2"))
    write(tmp_path, "b.csv", "symbol," + csv_text(minutes("2024-01-02T11:00", 2),
                                                   "timestamp,open,high,low,close",
                                                   volume=False).replace("\n2", "\nX,2"))
    with pytest.raises(ReadError, match=r"b\.csv: X has no volume column here, while .*a\.csv"):
        read_bars(tmp_path)


def test_volume_rule_of_bars_and_kernels():
    ts = np.arange(3) * MINUTE
    one = np.ones(3)
    bars = Bars.from_arrays(ts, one, one * 2, one / 2, one, None)
    assert not bars.has_volume and np.isnan(bars.volume).all()
    assert not Bars.from_arrays(ts, one, one * 2, one / 2, one, np.full(3, np.nan)).has_volume
    with pytest.raises(BadBarError, match="row 1: negative or non-finite volume"):
        Bars.from_arrays(ts, one, one * 2, one / 2, one, np.array([1.0, np.nan, 2.0]))
    with pytest.raises(BadBarError, match="row 0: negative or non-finite volume"):
        Bars.from_arrays(ts, one, one * 2, one / 2, one, np.full(3, np.nan), has_volume=True)
    with pytest.raises(BadBarError, match="negative or non-finite volume"):
        Bars.from_arrays(ts, one, one * 2, one / 2, one, np.array([1.0, -1.0, np.nan]),
                         has_volume=False)
    # Streaming and batch validation agree, with and without volume.
    w_open, w_close = np.array([0]), np.array([10 * MINUTE])
    vols = [np.nan, -1.0, np.inf, 3.0]
    for optional in (False, True):
        stream = SymbolStream(w_open, w_close, MINUTE)
        stream.volume_optional = optional
        streamed = [stream.push(k * MINUTE, 1.0, 2.0, 0.5, 1.5, v) for k, v in enumerate(vols)]
        faults = np.zeros(4, np.uint8)
        empty = np.empty(0, np.int64)
        _validation.validate_bars(np.arange(4) * MINUTE, *(np.array([x] * 4) for x in
                                  (1.0, 2.0, 0.5, 1.5)), np.array(vols), w_open, w_close,
                                  MINUTE, faults, False, volume_optional=optional)
        assert streamed == faults.tolist(), (optional, streamed, faults)
        assert (streamed[0] == 0) == optional and streamed[1] == streamed[2] == 3


# -- header-less and mis-headed files ----------------------------------------------------------


def test_backtrader_file_seven_names_over_eight_fields_crlf(tmp_path):
    lines = ["Date,Time,Open,High,Low,Close,Volume"]
    for k, t in enumerate(minutes("2006-01-02T09:05", 5)):
        d, tm = t.split("T")
        lines.append(f"{d},{tm}:00,1.{k},2,0.5,1.5,0,0")
    path = write(tmp_path, "2006-01-02-volume-min-001.txt", "\r\n".join(lines) + "\r\n")
    with pytest.raises(ReadError, match=r"line 2: 8 fields, the header has 7"):
        read_csv(path)
    names = ["date", "time", "open", "high", "low", "close", "volume", "openinterest"]
    bars = only(read_csv(path, columns=names, tz="Europe/Berlin"))
    assert len(bars) == 5 and bars.open.tolist() == [1.0, 1.1, 1.2, 1.3, 1.4]
    assert str(bars.ts[0].astype("datetime64[ns]")) == "2006-01-02T08:05:00.000000000"
    careful = read_csv(path, columns=names, tz="Europe/Berlin", on_bad="drop")
    assert only(careful).equals(bars)


def test_no_header(tmp_path):
    body = "".join(f"{t},1,2,0.5,1.5,7\n" for t in minutes("2024-01-02T10:00", 3))
    path = write(tmp_path, "X.csv", body)
    names = ["timestamp", "open", "high", "low", "close", "volume"]
    bars = only(read_csv(path, columns=names, header=False))
    assert len(bars) == 3
    result = read_csv(path, columns=",".join(names), header=False)
    assert result.where("X", 0)[1] == 1          # no header: the first row is line 1
    with pytest.raises(ValueError, match=r"header=False \(--no-header\) needs the names"):
        read_csv(path, header=False)
    with pytest.raises(ValueError, match=r"names 'open' more than once"):
        read_csv(path, columns=["timestamp", "open", "open", "low", "close", "volume"])
    bad = write(tmp_path, "Y.csv", body + "2024-01-02T10:09,1,2\n")
    with pytest.raises(ReadError, match=r"Y\.csv, line 4: 3 fields, columns= names 6"):
        read_csv(bad, columns=names, header=False)


def test_cli_parses_columns_and_no_header():
    from sessiondata.cli import build_parser

    args = build_parser().parse_args(["run", "x.csv", "--calendar", "24/7", "--no-header",
                                      "--columns", "timestamp, open,high,low,close"])
    assert args.header is False
    assert args.columns == ["timestamp", "open", "high", "low", "close"]
    args = build_parser().parse_args(["run", "x.csv", "--calendar", "24/7"])
    assert args.header is None and args.columns is None


# -- rows outside the session ------------------------------------------------------------------


def test_extended_hours_are_outside_the_sessions_hours(tmp_path):
    # Wednesday 2024-01-03 in New York: 08:00-17:00 of bars in a 09:30-16:00 session.
    times = minutes("2024-01-03T13:00", 9 * 60)                 # 08:00 .. 16:59 EST
    path = write(tmp_path, "GOOG.csv", csv_text(times))
    cal = Calendar.weekly("America/New_York", "09:30", "16:00")
    result = read_csv(path, interval="1m")
    counts = result.check_sessions(cal, "1m")                  # raise policy: no error
    assert counts == {"outside the session's hours": 90 + 60}
    assert len(result.bars["GOOG"]) == 390 and result.dropped == {}
    out = result.outside["GOOG"]
    assert len(out) == 150 and out[0] == ns("2024-01-03T13:00") and out[-1] == ns(
        "2024-01-03T21:59")
    assert set(result.outside_sessions["GOOG"].astype(str)) == {"2024-01-03"}


def test_bars_on_days_without_a_session_stay_bad(tmp_path):
    times = minutes("2024-01-06T15:00", 3)                      # a Saturday
    path = write(tmp_path, "X.csv", csv_text(times))
    cal = Calendar.weekly("America/New_York", "09:30", "16:00")
    with pytest.raises(ReadError, match=r"X\.csv, line 2: the bar at '2024-01-06T15:00' "
                                        r"\(2024-01-06 10:00:00 EST\) lies outside every"):
        read_csv(path, interval="1m").check_sessions(cal, "1m")
    result = read_csv(path, interval="1m")
    assert result.check_sessions(cal, "1m", "drop") == {"outside every session window": 3}
    assert result.outside == {}


def test_end_stamped_file_gets_the_hint(tmp_path):
    # 09:31 .. 16:00 EST, stamped at the bar's end: the 16:00 bar is outside.
    times = minutes("2024-01-03T14:31", 390)
    path = write(tmp_path, "X.csv", csv_text(times))
    cal = Calendar.weekly("America/New_York", "09:30", "16:00")
    with pytest.raises(ReadError) as info:
        read_csv(path, interval="1m").check_sessions(cal, "1m")
    err = info.value
    assert err.line == 391
    assert "'2024-01-03T21:00'" in err.reason          # the field as written
    assert "the whole file fits --stamp end better: as read, 389 of 390 bars" in err.reason
    ok = read_csv(path, interval="1m", stamp="end")
    assert ok.check_sessions(cal, "1m") == {}


def test_local_times_read_as_utc_get_the_tz_hint(tmp_path):
    times = [t.replace("T", " ") for t in minutes("2024-01-03T09:30", 5)]    # a Wednesday
    path = write(tmp_path, "X.csv", csv_text(times))
    cal = Calendar.weekly("Asia/Tokyo", "09:00", "15:00")
    # Tokyo times read as UTC: 18:30 in Tokyo, outside the session's hours, but every bar
    # would fit if read in Tokyo time: a misread file, not extended hours, and said so.
    with pytest.raises(ReadError, match=r"line 2: the bar at '2024-01-03 09:30' \(2024-01-03 "
                                        r"18:30:00 JST\) .* the whole file fits --tz Asia/Tokyo "
                                        r"better: as read, 0 of 5 bars lie inside"):
        read_csv(path, interval="1m").check_sessions(cal, "1m")
    assert read_csv(path, interval="1m", tz="Asia/Tokyo").check_sessions(cal, "1m") == {}


# -- issue 11 item 5: a byte that is not text, on its own line ---------------------------------


@pytest.mark.parametrize("line", [2, 2501, 40_000])
def test_non_utf8_byte_is_reported_on_its_line(tmp_path, line):
    text = csv_text([str(np.datetime64("2024-01-02T00:00") + np.timedelta64(k, "m"))
                     for k in range(45_000)]).encode()
    lines = text.split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b",1.5,", b",1\xff5,")
    path = write(tmp_path, "X.csv", b"\n".join(lines), mode="wb")
    with pytest.raises(ReadError) as info:
        read_csv(path)
    assert info.value.line == line and "not utf-8 text" in info.value.reason
    result = read_csv(path, on_bad="drop")
    assert result.dropped == {"not text": 1} and len(only(result)) == 45_000 - 1


def test_header_that_is_not_text(tmp_path):
    path = write(tmp_path, "X.csv", b"time\xffstamp,open,high,low,close\n", mode="wb")
    with pytest.raises(ReadError, match=r"X\.csv, line 1: not utf-8 text"):
        read_csv(path)


# -- issue 11 item 6: folder entries that cannot be read ---------------------------------------


def folder_with(tmp_path, kind):
    data = tmp_path / "data"
    data.mkdir()
    write(data, "GOOD.csv", csv_text(minutes("2024-01-02T10:00", 3)))
    bad = data / "BAD.csv"
    if kind == "broken-link":
        bad.symlink_to(tmp_path / "nowhere.csv")
    elif kind == "loop":
        bad.symlink_to(data / "LOOP.csv")
        (data / "LOOP.csv").symlink_to(bad)
    elif kind == "fifo":
        os.mkfifo(bad)
    return data, bad


@pytest.mark.parametrize("kind,why", [
    ("broken-link", "a broken symbolic link"), ("loop", "a symbolic link loop"),
    ("fifo", "not a regular file")])
def test_unreadable_folder_entries_are_named(tmp_path, kind, why):
    data, bad = folder_with(tmp_path, kind)
    with pytest.raises(ReadError, match=rf"{bad.name}: cannot read: {why}"):
        read_bars(data)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = read_bars(data, on_bad="drop")
    said = [str(w.message) for w in seen if issubclass(w.category, ReadWarning)]
    assert any(f"{bad.name}: skipped, cannot read: {why}" in m for m in said), said
    assert list(result.bars) == ["GOOD"]
    assert result.dropped["unreadable file"] >= 1
    assert any(path.endswith("BAD.csv") for path, _ in result.unreadable)


def test_unreadable_file_without_permission(tmp_path, monkeypatch):
    import sessiondata.readers.folders as readers

    data, _ = folder_with(tmp_path, None)
    write(data, "LOCKED.csv", csv_text(minutes("2024-01-02T10:00", 3)))
    real_open = open

    def fake_open(path, *args, **kwargs):      # root reads everything: deny it here
        if str(path).endswith("LOCKED.csv"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(readers, "open", fake_open, raising=False)
    with pytest.raises(ReadError, match=r"LOCKED\.csv: cannot read: permission denied"):
        read_bars(data)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = read_bars(data, on_bad="drop")
    assert any("LOCKED.csv" in str(w.message) for w in seen)
    assert list(result.bars) == ["GOOD"]


# -- issue 11 item 7: every Parquet error names the file ---------------------------------------


@pytest.mark.parametrize("columns,words", [
    ({"timestamp": pa.array([0, 1, 2], pa.int64())}, "cannot tell the epoch unit of '0'"),
    ({"timestamp": pa.array([1.5, 2.5, 3.5])}, "epoch unit"),
    ({"timestamp": pa.array(["x", "y", "z"])}, "unparseable time 'x'"),
    ({"timestamp": pa.array([[1], [2], [3]])}, "wrong schema"),
    ({"open": pa.array(["a", "b", "c"])}, "wrong schema: column 'open'"),
], ids=["int-no-epoch", "float-no-epoch", "text", "list", "text-price"])
def test_parquet_errors_name_the_file(tmp_path, columns, words):
    base = {"timestamp": pa.array(np.array([ns(t) for t in minutes("2024-01-02T10:00", 3)])
                                  .view("datetime64[ns]"), pa.timestamp("ns", "UTC")),
            "open": [1.0] * 3, "high": [2.0] * 3, "low": [0.5] * 3, "close": [1.5] * 3}
    base.update(columns)
    path = tmp_path / "P.parquet"
    pq.write_table(pa.table(base), path)
    with pytest.raises(ReadError) as info:
        read_parquet(path)
    assert str(info.value).startswith(str(path)) and words in str(info.value)


def test_corrupt_parquet_names_the_file(tmp_path):
    path = write(tmp_path, "C.parquet", b"PAR1" + b"\x00" * 64 + b"PAR1", mode="wb")
    with pytest.raises(ReadError, match=r"C\.parquet: "):
        read_bars(path)


# -- issue 11 item 8: DataFrames at the boundary -----------------------------------------------


def test_from_pandas_with_nat_names_column_and_row():
    pd = pytest.importorskip("pandas")
    ts = pd.to_datetime(["2024-01-02 10:00", None, "2024-01-02 10:02"])
    df = pd.DataFrame({"ts": ts, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
                       "volume": 1.0})
    with pytest.raises(ValueError, match=r"^ts has a missing time \(NaT\) at row 1$"):
        Bars.from_pandas(df)
    with pytest.raises(ValueError, match=r"^when has a missing time \(NaT\) at row 1$"):
        Bars.from_pandas(df.rename(columns={"ts": "when"}), ts_column="when")
    with pytest.raises(ValueError, match=r"^the index has a missing time \(NaT\) at row 1$"):
        Bars.from_pandas(df.set_index("ts"))
    aware = df.assign(ts=df["ts"].dt.tz_localize("Europe/Berlin"))
    with pytest.raises(ValueError, match=r"row 1"):
        Bars.from_pandas(aware)
    text = df.assign(open=["1", "x", "2"])
    with pytest.raises(TypeError, match=r"column 'open' must be numeric; row 0 holds '1'"):
        Bars.from_pandas(text.assign(ts=pd.to_datetime(["2024-01-02"] * 3) +
                                     pd.to_timedelta([0, 1, 2], "min")))


def test_from_polars_text_or_null_ts_names_column_and_row():
    pl = pytest.importorskip("polars")
    base = {"open": [1.0] * 3, "high": [2.0] * 3, "low": [0.5] * 3, "close": [1.5] * 3}
    df = pl.DataFrame({"ts": ["2024-01-02 10:00", "2024-01-02 10:01", "x"], **base})
    with pytest.raises(TypeError, match=r"column 'ts' must be Datetime or int64 nanoseconds, "
                                        r"got String \(first value '2024-01-02 10:00'\)"):
        Bars.from_polars(df)
    df = pl.DataFrame({"ts": [ns("2024-01-02T10:00"), None, ns("2024-01-02T10:02")], **base})
    with pytest.raises(ValueError, match=r"column 'ts' has a missing time \(null\) at row 1"):
        Bars.from_polars(df)
    df = pl.DataFrame({"ts": pl.Series([0, 1, 2]).cast(pl.Datetime("ms")), **base})
    bars = Bars.from_polars(df)          # no volume column: volume-less bars
    assert bars.ts.tolist() == [0, 1_000_000, 2_000_000] and not bars.has_volume
    big = pl.DataFrame({"ts": pl.Series([0, 2**62, 2**62 + 1]).cast(pl.Datetime("us")),
                        **base})
    with pytest.raises(ValueError, match=r"column 'ts': the time at row 1 does not fit"):
        Bars.from_polars(big)


# -- exchange calendars over the data's range ---------------------------------------------------


def test_xetr_covers_2006():
    pytest.importorskip("exchange_calendars")
    cal = Calendar.exchange("XETR")
    w = cal.windows(ns("2006-01-02"), ns("2006-01-07"))
    assert len(w) == 5 and str(cal.coverage[0]) <= "2006-01-02"


def test_parquet_columns_reach_numpy_without_a_copy(tmp_path):
    ts = np.array([ns(t) for t in minutes("2024-01-02T10:00", 1000)]).view("datetime64[ns]")
    table = pa.table({"timestamp": pa.array(ts, pa.timestamp("ns", "UTC")),
                      "open": np.ones(1000), "high": np.full(1000, 2.0),
                      "low": np.full(1000, 0.5), "close": np.full(1000, 1.5),
                      "volume": np.arange(1000.0)})
    pq.write_table(table, tmp_path / "Z.parquet")
    bars = only(read_parquet(tmp_path / "Z.parquet"))

    def owner(a):
        while isinstance(a.base, np.ndarray):
            a = a.base
        return a.base

    for name in ("ts", "open", "high", "low", "close", "volume"):
        col = getattr(bars, name)
        assert not col.flags.owndata and isinstance(owner(col), (pa.Array, pa.Buffer)), name
    assert bars.volume.tolist() == list(range(1000))
    assert bars.ts[0] == ns("2024-01-02T10:00")


def test_a_folder_read_ahead_reports_the_first_bad_file_in_order(tmp_path):
    import threading

    for k in range(6):
        text = csv_text(minutes(f"2024-01-0{k + 2}T10:00", 20))
        if k in (2, 4):
            text = text.replace(",1.5,", ",x,", 1)
        write(tmp_path, f"S{k}.csv", text)
    before = threading.active_count()
    with pytest.raises(ReadError, match=r"S2\.csv, line 2: bad number 'x' in column 'close'"):
        read_bars(tmp_path)
    result = read_bars(tmp_path, on_bad="drop")
    assert result.dropped == {"bad number": 2}
    assert [len(result.bars[f"S{k}"]) for k in range(6)] == [20, 20, 19, 20, 19, 20]
    assert result.where("S4", 0) == (str(tmp_path / "S4.csv"), 3, "line")
    assert threading.active_count() <= before      # the workers are gone


def test_a_byte_that_is_not_text_in_an_unused_column_is_not_passed_over(tmp_path):
    rows = ["timestamp,open,high,low,close,volume,note"]
    rows += [f"{t},1,2,0.5,1.5,3,ok" for t in minutes("2024-01-02T10:00", 5)]
    data = ("\n".join(rows) + "\n").encode().replace(b",ok\n", b",o\xffk\n", 1)
    path = write(tmp_path, "X.csv", data, mode="wb")
    with pytest.raises(ReadError, match=r"X\.csv, line 2: not utf-8 text"):
        read_csv(path)


def test_a_parquet_folder_read_ahead_equals_one_by_one(tmp_path):
    import sessiondata.readers as readers

    for k in range(5):
        ts = np.array([ns(t) for t in minutes(f"2024-01-0{k + 2}T10:00", 30)])
        pq.write_table(pa.table({
            "timestamp": pa.array(ts.view("datetime64[ns]"), pa.timestamp("ns", "UTC")),
            "open": np.full(30, 1.0 + k), "high": np.full(30, 2.0 + k),
            "low": np.full(30, 0.5), "close": np.full(30, 1.5 + k),
            "volume": np.arange(30.0)}), tmp_path / f"P{k}.parquet")
    ahead = read_bars(tmp_path)
    opts = readers.ReadOptions().checked()
    collector = readers._Collector(opts)
    for path in sorted(tmp_path.glob("*.parquet")):
        readers._read_parquet_into(path, opts, collector)
    alone = collector.finish()
    assert list(ahead.bars) == list(alone.bars) == [f"P{k}" for k in range(5)]
    assert all(ahead.bars[s].equals(alone.bars[s]) for s in alone.bars)
    # A bad file in the middle is named in its turn (read again there to say why).
    pq.write_table(pa.table({"timestamp": [0, 1], "open": ["a", "b"], "high": [1.0, 1.0],
                             "low": [1.0, 1.0], "close": [1.0, 1.0]}),
                   tmp_path / "P2.parquet")
    with pytest.raises(ReadError, match=r"P2\.parquet: wrong schema: column 'open'"):
        read_bars(tmp_path)
