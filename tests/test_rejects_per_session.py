"""Bad bars dropped under ``on_bad="drop"`` are counted in their sessions whatever the input:
a file (the reader drops them) or frames in memory (the engine does), the same documents.

Before, a file's dropped bars were counted only run-wide (``summary.dropped``): the session
document of the day showed ``"rejected": {}`` beside a missing bar, as if the feed had sent
nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import sessiondata as sd
from sessiondata import Calendar
from sessiondata.documents import session_doc

MINUTE = np.timedelta64(1, "m")


def _frame() -> pd.DataFrame:
    ts = pd.date_range("2024-01-02 00:00", periods=3 * 1440, freq="1min", tz="UTC")
    close = 100 + np.arange(len(ts)) * 0.01
    df = pd.DataFrame({"ts": ts, "open": close, "high": close + 0.05, "low": close - 0.05,
                       "close": close, "volume": 100.0})
    df.loc[2000, "high"] = df.loc[2000, "low"] - 1.0            # day 2: high under low
    df.loc[3000, "ts"] = df.loc[3000, "ts"] + pd.Timedelta(seconds=30)  # day 3: off the grid
    df.loc[500, "volume"] = -5.0                                  # day 1: negative volume
    return df


def _rejected(run) -> list[dict]:
    return [session_doc(run, k)["symbols"]["AAA"]["rejected"]
            for k in range(run.windows.n_sessions)]


def test_file_and_memory_count_the_same_rejects_in_the_same_sessions(tmp_path):
    df = _frame()
    path = tmp_path / "AAA.csv"
    df.rename(columns={"ts": "timestamp"}).to_csv(path, index=False)
    from_file = sd.run(path, Calendar.always(), on_bad="drop")
    in_memory = sd.run({"AAA": df}, Calendar.always(), on_bad="drop")
    expected = [{"negative or non-finite volume": 1},
                {"high/low inconsistent with open/close": 1},
                {"not on the base-interval grid": 1}]
    assert _rejected(from_file) == _rejected(in_memory) == expected
    assert from_file.dropped == in_memory.dropped == {}
    for k in range(3):
        doc_f = session_doc(from_file, k)["symbols"]["AAA"]["intervals"]["1m"]
        doc_m = session_doc(in_memory, k)["symbols"]["AAA"]["intervals"]["1m"]
        assert doc_f == doc_m


def test_cli_export_names_the_rejects_in_the_session_document(tmp_path):
    from sessiondata import cli

    path = tmp_path / "AAA.csv"
    _frame().rename(columns={"ts": "timestamp"}).to_csv(path, index=False)
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--calendar", "24/7", "--out", str(out),
                     "--on-bad", "drop", "-q"]) == 0
    docs = [json.loads(p.read_text())["symbols"]["AAA"]
            for p in sorted((out / "sessions").glob("*.json"))]
    assert [sum(d["rejected"].values()) for d in docs] == [1, 1, 1]
    assert [sum(d["intervals"]["1m"]["quality"]["rejected"].values()) for d in docs] == [1, 1, 1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["summary"]["dropped"] == {}


def test_a_dropped_row_far_from_the_data_stays_counted_run_wide(tmp_path):
    """A row dated months after the rest has no session of the run: counted run-wide, not
    pinned on the last session."""
    df = _frame().iloc[:1440].copy()
    df.loc[100, "ts"] = pd.Timestamp("2024-06-02 10:00", tz="UTC")
    path = tmp_path / "AAA.csv"
    df.rename(columns={"ts": "timestamp"}).to_csv(path, index=False)
    run = sd.run(path, Calendar.always(), on_bad="drop")
    assert sum(run.dropped.values()) == 1
    assert sum(sum(r.values()) for r in _rejected(run)) == 1   # the negative volume


@pytest.mark.parametrize("frame", ["pandas", "polars"])
def test_frames_in_a_mapping_are_bars(frame):
    df = _frame().iloc[:1440]
    if frame == "polars":
        pl = pytest.importorskip("polars")
        df = pl.from_pandas(df)
    run = sd.run({"AAA": df}, Calendar.always(), on_bad="drop")
    assert _rejected(run) == [{"negative or non-finite volume": 1}]
    with pytest.raises(Exception, match=r"AAA on calendar ALWAYS: row 500"):
        sd.run({"AAA": df}, Calendar.always())


def test_anything_else_in_a_mapping_is_a_type_error_naming_the_symbol():
    with pytest.raises(TypeError, match=r"^AAA: the bars must be sessiondata.Bars or a "
                                        r"pandas/polars DataFrame, got list"):
        sd.run({"AAA": [1, 2, 3]}, Calendar.always())
    with pytest.raises(ValueError, match=r"^BBB: DataFrame needs a 'ts' column"):
        sd.run({"BBB": pd.DataFrame({"timestamp": [1], "open": [1.0], "high": [1.0],
                                     "low": [1.0], "close": [1.0]})}, Calendar.always())


@pytest.mark.parametrize("frame", ["pandas", "polars"])
def test_a_long_frame_with_a_symbol_column_is_an_input_like_a_file(tmp_path, frame):
    one = _frame().rename(columns={"ts": "timestamp"})
    long = pd.concat([one.assign(symbol="AAA"), one.assign(symbol="BBB")])
    path = tmp_path / "both.csv"
    long.to_csv(path, index=False)
    data = long if frame == "pandas" else pytest.importorskip("polars").from_pandas(long)
    got = sd.run(data, Calendar.always(), on_bad="drop", out=tmp_path / "out")
    want = sd.run(path, Calendar.always(), on_bad="drop")
    assert got.symbols == want.symbols == ["AAA", "BBB"]
    assert got.rejected == want.rejected and len(got.rejected) == 6
    for k in range(3):
        assert session_doc(got, k)["symbols"] == session_doc(want, k)["symbols"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["provenance"]["inputs"] == {"kind": "a DataFrame in memory", "rows": 8640}
    with pytest.raises(sd.readers.ReadError, match=r"<DataFrame>, row 500: negative or non-finite volume: AAA"):
        sd.run(data, Calendar.always())
    with pytest.raises(sd.readers.ReadError, match="no symbol column"):
        sd.run(one, Calendar.always())
