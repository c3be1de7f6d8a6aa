"""Issue 20 (an outside fuzz campaign): each finding, reproduced as it was reported.

1. A mistyped year (one bar in 2112 among bars of 2024) is an error naming its file and line,
   or dropped and counted under ``--on-bad drop``, found by the reader before any span grows.
2. ``--on-bad drop`` drops the row that breaks the order (judged against its neighbours), not
   the rows after it; a descending file is an error naming it; drop fails past half a file.
3. ``--on-bad drop`` skips unreadable folder entries (a broken link, a FIFO).
4. An encrypted zip member and a bare CR in the header or first line are named errors
   (exit 2), not internal ones; CR-only files are read.
5. A FIFO given directly as DATA is refused, not read (which would block).
6. A file named with a line break and ``--symbol-column open`` give messages that name the
   file and what is wrong.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sessiondata import cli
from sessiondata.readers import ReadError, read_bars, read_csv

HEADER = "timestamp,open,high,low,close\n"
ROW = "{},1,2,0.5,1.5\n"


def minutes(n: int, start: str = "2024-01-02T10:00") -> list[str]:
    t = np.datetime64(start) + np.arange(n).astype("timedelta64[m]")
    return [str(x.astype("datetime64[s]")).replace("T", " ") for x in t]


def write(path: Path, times: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(ROW.format(t) for t in times))
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def summary(path: Path) -> dict:
    return json.loads(path.read_text())


# 1. A mistyped year ------------------------------------------------------------------------


@pytest.mark.parametrize("year,years", [("2112", 88), ("2160", 136)])
def test_a_mistyped_year_is_an_error_naming_file_and_line(tmp_path, capsys, year, years):
    data = write(tmp_path / "X.csv", ["2024-01-02 10:00:00", f"{year}-01-02 10:00:00"])
    t0 = time.perf_counter()
    code, _out, err = run(capsys, "run", data, "--calendar", "24/7", "--out", tmp_path / "out")
    assert time.perf_counter() - t0 < 10
    assert code == 2, err
    assert f"X.csv, line 3: the bar at '{year}-01-02 10:00:00'" in err
    assert f"is {years} years after the rest of X" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_mistyped_year_is_dropped_and_counted_under_drop(tmp_path, capsys):
    data = write(tmp_path / "X.csv", ["2024-01-02 10:00:00", "2112-01-02 10:00:00"])
    out = tmp_path / "out"
    t0 = time.perf_counter()
    code, _o, err = run(capsys, "run", data, "--calendar", "24/7", "--out", out, "--on-bad",
                        "drop", "--json-summary", tmp_path / "s.json", "--quiet")
    assert time.perf_counter() - t0 < 10          # the issue: 34 s and 6.2 GB before
    assert code == 0, err
    got = summary(tmp_path / "s.json")
    assert got["dropped"] == {"time far from the other bars": 1}
    assert len(list((out / "sessions").iterdir())) == 1
    assert cli.main(["validate", str(out)]) == 0


def test_far_bars_are_judged_against_all_others(tmp_path):
    times = minutes(500)
    times[250] = "1924-01-02 10:00:00"                    # far before, in the middle
    times.append("2099-05-05 00:00:00")                    # far after, at the end
    path = write(tmp_path / "X.csv", times)
    with pytest.raises(ReadError, match=r"X\.csv, line 252: the bar at .*100 years before"):
        read_csv(path)
    got = read_csv(path, on_bad="drop")
    assert len(got.bars["X"]) == 499 and got.dropped == {"time far from the other bars": 2}
    # A long pause with many bars on each side is data, not a typo.
    long_pause = minutes(300) + minutes(300, "2026-01-02T10:00")
    assert len(read_csv(write(tmp_path / "Y.csv", long_pause)).bars["Y"]) == 600


# 2. Order under drop -------------------------------------------------------------------------


def test_drop_loses_the_row_that_breaks_the_order_not_the_rows_after(tmp_path, capsys):
    times = minutes(600)
    times.insert(100, "2024-06-02 10:00:00")               # months ahead, in the middle
    path = write(tmp_path / "X.csv", times)
    got = read_csv(path, on_bad="drop")
    assert len(got.bars["X"]) == 600
    assert got.dropped == {"timestamp out of order": 1}
    np.testing.assert_array_equal(np.diff(got.bars["X"].ts), 60_000_000_000)
    with pytest.raises(ReadError, match=r"X\.csv, line 102: timestamp out of order: "
                                        r"2024-06-02 10:00:00 UTC of X lies after the rows"):
        read_csv(path)
    code, _o, err = run(capsys, "run", path, "--calendar", "24/7", "--no-export", "--on-bad",
                        "drop", "--json-summary", tmp_path / "s.json", "--quiet")
    assert code == 0, err
    assert summary(tmp_path / "s.json")["dropped"] == {"timestamp out of order": 1}


def test_drop_keeps_the_most_rows_in_order(tmp_path):
    times = minutes(40)
    times[10], times[11] = times[11], times[10]             # a swap: one row goes
    times.insert(30, times[5])                               # a repeat of an earlier row
    got = read_csv(write(tmp_path / "X.csv", times), on_bad="drop")
    assert len(got.bars["X"]) == 39
    assert sum(got.dropped.values()) == 2


@pytest.mark.parametrize("on_bad", ["raise", "drop"])
def test_a_descending_file_is_an_error_naming_it(tmp_path, capsys, on_bad):
    path = write(tmp_path / "X.csv", minutes(200)[::-1])
    code, _o, err = run(capsys, "run", path, "--calendar", "24/7", "--no-export", "--on-bad",
                        on_bad)
    assert code == 2
    assert "X.csv: the rows of X are in descending time order (199 of 199 steps" in err


def test_drop_never_discards_more_than_half_a_file(tmp_path):
    times = minutes(100)
    rows = [ROW.format(t) if k % 3 == 0 else f"{t},1,2,0.5,x\n" for k, t in enumerate(times)]
    path = tmp_path / "X.csv"
    path.write_text(HEADER + "".join(rows))
    with pytest.raises(ReadError, match=r"X\.csv: --on-bad drop would drop 66 of 100 rows "
                                        r"\(66 bad number; the first, line 3: .*more than 50%"):
        read_csv(path, on_bad="drop")
    # Under half: dropped and counted.
    rows = [ROW.format(t) if k % 3 else f"{t},1,2,0.5,x\n" for k, t in enumerate(times)]
    path.write_text(HEADER + "".join(rows))
    assert read_csv(path, on_bad="drop").dropped == {"bad number": 34}


# 3. Unreadable folder entries under drop ----------------------------------------------------


def test_drop_skips_unreadable_folder_entries(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    write(folder / "A.csv", minutes(50))
    write(folder / "B.csv", minutes(50))
    os.symlink(tmp_path / "nowhere.csv", folder / "C.csv")
    os.mkfifo(folder / "D.csv")
    code, _o, err = run(capsys, "run", folder, "--calendar", "24/7", "--no-export")
    assert code == 2 and "C.csv: cannot read: a broken symbolic link" in err
    code, _o, err = run(capsys, "run", folder, "--calendar", "24/7", "--no-export",
                        "--on-bad", "drop", "--json-summary", tmp_path / "s.json", "--quiet")
    assert code == 0, err
    assert "sessiondata: warning: " + str(folder / "C.csv") + ": skipped" in err
    assert "D.csv: skipped, cannot read: not a regular file" in err
    assert summary(tmp_path / "s.json")["dropped"] == {"unreadable file": 2}


# 4. Exit 3 for bad input ----------------------------------------------------------------------


def _encrypted_zip(path: Path, member: str, text: str) -> Path:
    """A zip whose member says it is encrypted: the flag zipfile refuses to read, set in the
    local header and the central directory of a plain zip."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, text)
    data = bytearray(path.read_bytes())
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        k = data.index(sig) + at
        data[k] |= 0x1
    path.write_bytes(bytes(data))
    return path


def test_an_encrypted_binance_zip_is_a_named_error(tmp_path, capsys):
    zpath = _encrypted_zip(tmp_path / "ADABTC-1m-2021-11-27.zip", "ADABTC-1m-2021-11-27.csv",
                           "1637971200000,1,2,0.5,1.5,10,1637971259999,1,1,1,1,0\n")
    code, _o, err = run(capsys, "run", zpath, "--format", "binance", "--calendar", "24/7",
                        "--no-export")
    assert code == 2, err
    assert "ADABTC-1m-2021-11-27.zip: ADABTC-1m-2021-11-27.csv in the zip is encrypted" in err


def test_an_encrypted_lean_zip_is_a_named_error(tmp_path, capsys):
    folder = tmp_path / "equity" / "usa" / "minute" / "spy"
    folder.mkdir(parents=True)
    _encrypted_zip(folder / "20240102_trade.zip", "20240102_spy_minute_trade.csv",
                   "34200000,4700000,4710000,4690000,4705000,100\n")
    code, _o, err = run(capsys, "run", folder, "--format", "lean", "--calendar", "24/7",
                        "--no-export")
    assert code == 2, err
    assert "20240102_trade.zip: 20240102_spy_minute_trade.csv in the zip is encrypted" in err


def test_a_bare_cr_in_the_header_or_first_line_is_a_named_error(tmp_path, capsys):
    path = tmp_path / "X.csv"
    path.write_text("timestamp,open\r,high,low,close\n" + ROW.format("2024-01-02 10:00:00"))
    code, _o, err = run(capsys, "run", path, "--calendar", "24/7", "--no-export")
    assert code == 2
    assert "X.csv, line 1: cannot parse the header line: a carriage return (CR)" in err
    path.write_text(HEADER + "2024-01-02 10:00:00,1,2\r,0.5,1.5\n" +
                    "".join(ROW.format(t) for t in minutes(5, "2024-01-02T10:01")))
    code, _o, err = run(capsys, "run", path, "--calendar", "24/7", "--no-export")
    assert code == 2 and "X.csv, line 2: cannot parse the line: a carriage return" in err
    code, _o, err = run(capsys, "run", path, "--calendar", "24/7", "--no-export",
                        "--on-bad", "drop", "--json-summary", tmp_path / "s.json", "--quiet")
    assert code == 0 and summary(tmp_path / "s.json")["dropped"] == {"unreadable line": 1}


@pytest.mark.parametrize("n", [50, 5000])       # below and above the sniffer's 64 KiB
def test_cr_only_files_are_read(tmp_path, n):
    times = minutes(n)
    lf = write(tmp_path / "lf.csv", times)
    cr = tmp_path / "cr.csv"
    cr.write_bytes(lf.read_bytes().replace(b"\n", b"\r"))
    a, b = read_csv(lf).bars["lf"], read_csv(cr).bars["cr"]
    np.testing.assert_array_equal(a.ts, b.ts)
    np.testing.assert_array_equal(a.close, b.close)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(cr.read_bytes().replace(b"1.5\r", b"x\r", 1))
    with pytest.raises(ReadError, match=r"bad\.csv, line 2: bad number 'x'"):
        read_csv(bad)


# 5. A FIFO given directly ---------------------------------------------------------------------


def test_a_fifo_given_as_data_is_refused_not_read(tmp_path, capsys):
    fifo = tmp_path / "X.csv"
    os.mkfifo(fifo)
    got: dict = {}

    def go():
        got["code"] = cli.main(["run", str(fifo), "--calendar", "24/7", "--no-export"])

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():               # unblock the reader, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert got["code"] == 2
    assert "X.csv: cannot read: not a regular file" in capsys.readouterr().err


# 6. Messages that named nothing ----------------------------------------------------------------


def test_a_file_name_with_a_line_break_names_the_file(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    write(folder / "A.csv", minutes(5))
    write(folder / "x\ny.csv", minutes(5))
    code, _o, err = run(capsys, "run", folder, "--calendar", "24/7", "--no-export")
    assert code == 2
    assert "y.csv: bad symbol: symbol 'x\\ny' contains control characters" in err


def test_a_symbol_column_that_is_a_price_is_named(tmp_path, capsys):
    path = write(tmp_path / "X.csv", minutes(5))
    code, _o, err = run(capsys, "run", path, "--calendar", "24/7", "--no-export",
                        "--symbol-column", "open")
    assert code == 2
    assert "X.csv: column 'open' cannot be both the symbol and the open" in err
    with pytest.raises(ReadError, match="cannot be both the symbol and the time"):
        read_bars(path, symbol_column="timestamp")


def test_the_quick_stray_search_drops_as_few_rows_as_the_longest_run():
    from sessiondata.readers.result import _isolated_strays, _longest_increasing

    rng = np.random.default_rng(20)
    quick = 0
    for _ in range(3000):
        n = int(rng.integers(2, 40))
        v = np.sort(rng.integers(0, 60, n)).astype(np.int64)
        for _ in range(int(rng.integers(0, 4))):
            v[int(rng.integers(0, n))] = int(rng.integers(-10, 70))
        slow = _longest_increasing(v)
        assert np.all(np.diff(v[slow]) > 0)
        fast = _isolated_strays(v)
        if fast is not None:
            quick += 1
            assert np.all(np.diff(v[fast]) > 0), v
            assert fast.sum() == slow.sum(), v
    assert quick > 1000              # the quick path is the common one
