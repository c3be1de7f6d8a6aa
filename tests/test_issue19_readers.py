"""Issue 19 ("Know the file"), the readers' part: items 4 and 5.

4. In a folder, files that are not bar data (by name, by content) are skipped with a warning
   and a count; ``--on-bad drop`` skips unreadable files; an unused column that looks like a
   misspelt known one (``volumen``) is a warning naming it, a missing one (``clsoe``) is named
   in the error.
5. The errors name the known fix: a row with more fields than the header names
   ``--columns``; a header-less Binance file points to ``--format binance``; a wrongly given
   ``--stamp end`` gets a hint.  CR-only files are read (tests/test_issue20.py); a header-only
   file is named.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from sessiondata import Calendar, cli
from sessiondata.readers import ReadError, ReadWarning, read_bars, read_csv

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HEADER = "timestamp,open,high,low,close,volume\n"


def rows(n: int, start: str = "2024-01-02T10:00") -> str:
    t = np.datetime64(start) + np.arange(n).astype("timedelta64[m]")
    return "".join(f"{str(x.astype('datetime64[s]')).replace('T', ' ')},1,2,0.5,1.5,10\n"
                   for x in t)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# 4. Folders --------------------------------------------------------------------------------


def test_files_that_are_not_bars_are_skipped_with_a_note_and_a_count(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "A.csv").write_text(HEADER + rows(30))
    (folder / "B.csv").write_text(HEADER + rows(30))
    (folder / "README.txt").write_text("Minute bars of A and B, from the vendor.\n")
    (folder / "notes.csv").write_text("date,note\n2024-01-02,a holiday somewhere\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = read_bars(folder)
    assert sorted(got.bars) == ["A", "B"]
    assert got.dropped == {"not a data file": 2}
    said = " | ".join(str(w.message) for w in seen if w.category is ReadWarning)
    assert "README.txt: skipped, not bar data (a document, by its name)" in said
    assert "notes.csv: skipped, not bar data (its first line 'date,note' names no open" in said
    code, _o, err = run(capsys, "run", folder, "--calendar", "24/7", "--no-export",
                        "--json-summary", tmp_path / "s.json", "--quiet")
    assert code == 0, err
    assert "sessiondata: warning: " in err and "notes.csv: skipped, not bar data" in err
    assert json.loads((tmp_path / "s.json").read_text())["dropped"] == {"not a data file": 2}


def test_a_file_that_looks_like_bars_is_never_skipped_as_not_data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "A.csv").write_text(HEADER + rows(3))
    (folder / "B.csv").write_text("timestamp,open,high,low,clsoe,volume\n" + rows(3))
    (folder / "C.csv").write_text(rows(3))                      # no header: numbers
    with pytest.raises(ReadError, match=r"B\.csv: missing column 'close' .*'clsoe' looks "
                                        r"like 'close'"):
        read_bars(folder)
    (folder / "B.csv").unlink()
    with pytest.raises(ReadError, match=r"C\.csv: no timestamp column .*the first line is "
                                        r"data, not a header: give --no-header"):
        read_bars(folder)


def test_a_folder_of_nothing_but_documents_is_an_error(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "README.txt").write_text("nothing here\n")
    with pytest.raises(ReadError, match=r"data: no bar data in the folder: README\.txt: "), \
            pytest.warns(ReadWarning, match="skipped, not bar data"):
        read_bars(folder)


def test_a_misspelt_volume_column_is_a_warning_naming_it(tmp_path):
    path = tmp_path / "X.csv"
    path.write_text("timestamp,open,high,low,close,volumen\n" + rows(3).replace(",10\n", ",7\n"))
    with pytest.warns(ReadWarning, match=r"X\.csv: column 'volumen' is not used: is it "
                                         r"'volume'\?"):
        got = read_csv(path)
    assert not got.bars["X"].has_volume


def test_on_bad_drop_skips_unreadable_files(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "A.csv").write_text(HEADER + rows(30))
    (folder / "B.csv").symlink_to(tmp_path / "gone.csv")
    code, _o, err = run(capsys, "run", folder, "--calendar", "24/7", "--no-export",
                        "--on-bad", "drop", "--quiet")
    assert code == 0 and "B.csv: skipped, cannot read: a broken symbolic link" in err


# 5. Errors that name the fix -----------------------------------------------------------------


def test_more_fields_than_the_header_names_columns(tmp_path):
    path = tmp_path / "X.csv"
    path.write_text("timestamp,open,high,low,close,volume\n" +
                    rows(3).replace(",10\n", ",10,0\n"))
    with pytest.raises(ReadError, match=r"X\.csv, line 2: 7 fields, the header has 6 \(if the "
                                        r"header is wrong, name the fields with --columns"):
        read_csv(path)


@pytest.mark.skipif(not (DATA / "ADABTC-1m-2021-11-27.csv").exists(), reason="no real data")
def test_a_headerless_binance_file_points_to_format_binance(tmp_path, capsys):
    code, _o, err = run(capsys, "run", DATA / "ADABTC-1m-2021-11-27.csv", "--calendar", "24/7",
                        "--no-export")
    assert code == 2
    assert "ADABTC-1m-2021-11-27.csv: no timestamp column" in err
    assert "a Binance kline file" in err and "--format binance" in err


def test_a_wrong_stamp_end_gets_a_hint(tmp_path):
    # Regular hours of a weekly calendar, stamped at the open: read as end stamps, the
    # 09:00 bar would open at 08:59, before the session.
    cal = Calendar.weekly("UTC", "09:00", "10:00", "Mon-Fri")
    path = tmp_path / "X.csv"
    path.write_text(HEADER + rows(60, "2024-01-02T09:00"))
    got = read_csv(path, stamp="end", interval="1m")
    with pytest.raises(ReadError, match=r"X\.csv, line 2: the bar at '2024-01-02 09:00:00' .* "
                                        r"lies outside every session .*; the whole file fits "
                                        r"--stamp start better: as read, 59 of 60 bars "
                                        r"lie inside sessions") as info:
        got.check_sessions(cal, "1m")
    assert "\n" not in str(info.value)


def test_a_header_only_file_is_named(tmp_path, capsys):
    path = tmp_path / "X.csv"
    path.write_text(HEADER)
    with pytest.warns(ReadWarning, match=r"X\.csv: no data rows \(only a header line\)"):
        read_csv(path)
    code, _o, err = run(capsys, "run", path, "--calendar", "24/7", "--no-export")
    assert code == 2
    assert "X.csv: no data rows (only a header line)" in err
    assert err.strip().splitlines()[-1].startswith(f"sessiondata: error: {path}: no bars")


SIX_E = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"


@pytest.mark.skipif(not SIX_E.exists(), reason="no real data")
@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York", "America/Chicago"])
def test_6e_read_in_a_wrong_zone_names_utc_not_chicago(tz):
    """6E is a UTC file.  Read in another zone, the bars outside every session are a misread
    (not extended hours): the one-line error names the file, the line and ``--tz UTC``, the
    plausibility scorer's verdict on every bar of the file; nothing suggests Chicago."""
    pytest.importorskip("exchange_calendars")
    cal = Calendar.exchange("CME_GLOBEX")
    got = read_bars(SIX_E, tz=tz, stamp="end", interval="1m")
    with pytest.raises(ReadError) as info:
        got.check_sessions(cal, "1m")
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{SIX_E}, line ")
    assert "lies outside every session of CME_GLOBEX; the whole file fits --tz UTC better" \
        in text
    assert "--tz America/Chicago" not in text and "--stamp" not in text
    # The counts it quotes are those of the run with --tz UTC: 423 slots missing.
    assert "with --tz UTC, " in text and " inside and 423 missing" in text


@pytest.mark.skipif(not SIX_E.exists(), reason="no real data")
def test_6e_read_right_is_not_called_misread():
    pytest.importorskip("exchange_calendars")
    got = read_bars(SIX_E, tz="UTC", stamp="end", interval="1m")
    counts = got.check_sessions(Calendar.exchange("CME_GLOBEX"), "1m")
    assert not counts and sum(len(b) for b in got.bars.values()) == got.rows
