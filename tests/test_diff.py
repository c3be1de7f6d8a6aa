"""``sessiondata diff`` / ``sd.diff``: two deliveries of the same history compared.

The real 6E file of ``../shared/data`` is delivered again with three bars edited, one removed
and one added: the diff must report exactly those five at the base interval, the derived
changes as their consequences, and nothing at all for two identical exports."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow.dataset as pds
import pytest
import sessiondata as sd
from sessiondata import cli

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CME = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
RUN = ["--calendar", "CME_GLOBEX", "--stamp", "end", "--tz", "UTC"]
MIN = dt.timedelta(minutes=1)

pytestmark = pytest.mark.skipif(not CME.exists(), reason="needs ../shared/data")


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def delivery(tmp_path_factory):
    """The 6E file and a second delivery of it: rows 1000, 10000 and 20000 edited (a close,
    a high, a volume), row 15000 removed, a bar added in the missing minute after a row
    stamped 21:23 on 2024-01-05.  Returns the folder, the truth (start-stamped UTC times of
    the five bars, by change) and both exports (``run --export-base``)."""
    root = tmp_path_factory.mktemp("delivery")
    lines = gzip.open(CME, "rt").read().splitlines()
    head, rows = lines[0], lines[1:]
    new = list(rows)
    truth: dict[str, list[dt.datetime]] = {"changed": [], "removed": [], "added": []}
    edits = {}
    for i, field in ((1000, "close"), (10000, "high"), (20000, "volume")):
        t, o, h, lo, c, v = rows[i].split(",")
        if field == "close":
            c = lo if lo != c else h        # a close moved within the bar's range
        elif field == "high":
            h = repr(float(h) + 0.0005)     # a higher high
        else:
            v = str(int(v) + 1000)
        assert (t, o, h, lo, c, v) != tuple(rows[i].split(","))
        new[i] = ",".join((t, o, h, lo, c, v))
        edits[i] = field
        truth["changed"].append(_utc(t) - MIN)   # stamped at the end: the bar opens a minute before
    truth["removed"].append(_utc(rows[15000].split(",")[0]) - MIN)
    # A missing minute: two rows two minutes apart.
    stamps = [_utc(r.split(",")[0]) for r in rows]
    gap = next(i for i in range(5000, len(rows) - 1) if stamps[i + 1] - stamps[i] == 2 * MIN)
    price = rows[gap].split(",")[4]
    added_end = stamps[gap] + MIN
    new.insert(gap + 1, f"{added_end:%Y-%m-%d %H:%M:%S},{price},{price},{price},{price},7")
    truth["added"].append(added_end - MIN)
    del new[15000 + (1 if gap + 1 <= 15000 else 0)]
    old_file = root / "old" / "6E.csv.gz"
    new_file = root / "new" / "6E.csv.gz"
    for path, body in ((old_file, rows), (new_file, new)):
        path.parent.mkdir()
        with gzip.open(path, "wt") as f:
            f.write("\n".join([head] + body) + "\n")
    outs = []
    for name, path in (("old", old_file), ("new", new_file)):
        out = root / f"out_{name}"
        assert cli.main(["-q", "run", str(path), *RUN, "--export-base", "--out", str(out)]) == 0
        outs.append(out)
    return root, truth, outs


def _ledger_times(table, change: str) -> list[dt.datetime]:
    rows = table.filter(pds.field("change") == change).column("ts").to_pylist()
    return sorted(rows)


def test_three_edited_one_removed_one_added_exactly(delivery):
    root, truth, (old, new) = delivery
    result = sd.diff(old, new)
    assert result.changed and result.exit_code == 1
    primary = result.primary()
    assert primary.num_rows == 5
    assert set(primary.column("interval").to_pylist()) == {"1m"}
    for change in ("changed", "removed", "added"):
        assert _ledger_times(primary, change) == sorted(truth[change]), change
    s = result.summary
    assert s["level"] == "base interval 1m" and s["changes"] == 5
    assert s["intervals"]["1m"] == {**s["intervals"]["1m"], "added": 1, "removed": 1,
                                    "changed": 3, "consequence": False}
    # Every derived change is a consequence of the five (none unexplained), and there are
    # some: each edited, removed or added minute lands in a 5m, 15m and 1h bucket.
    for iv in ("5m", "15m", "1h"):
        t = s["intervals"][iv]
        assert t["consequence"] and t["unexplained"] == 0
        assert 1 <= t["added"] + t["removed"] + t["changed"] <= 5, (iv, t)
    # The ledger's old and new values are the file's.
    edited = primary.filter(pds.field("change") == "changed").to_pylist()
    by_field = {"close": 0, "high": 0, "volume": 0}
    for row in edited:
        for f in by_field:
            if row[f"old_{f}"] != row[f"new_{f}"]:
                by_field[f] += 1
        assert row["price_change"] is not None
    assert by_field == {"close": 1, "high": 1, "volume": 1}
    high = next(r for r in edited if r["old_high"] != r["new_high"])
    assert high["new_high"] - high["old_high"] == pytest.approx(0.0005)
    assert high["price_change"] == pytest.approx(0.0005)
    vol = next(r for r in edited if r["old_volume"] != r["new_volume"])
    assert vol["new_volume"] - vol["old_volume"] == 1000 and vol["volume_change"] == 1000
    added = primary.filter(pds.field("change") == "added").to_pylist()[0]
    assert added["old_close"] is None and added["new_volume"] == 7
    removed = primary.filter(pds.field("change") == "removed").to_pylist()[0]
    assert removed["new_close"] is None and removed["old_close"] is not None
    # Cells: the added bar closes a gap, the removed one opens one (or widens: one closed
    # and one opened), and the completeness moves with them.
    cells = result.cells.filter(pds.field("interval") == "1m").to_pylist()
    assert sum(c["added"] for c in cells) == 1 and sum(c["removed"] for c in cells) == 1
    assert sum(c["changed"] for c in cells) == 3
    add_cell = next(c for c in cells if c["added"])
    assert add_cell["gaps_closed"] >= 1
    assert add_cell["bars_new"] == add_cell["bars_old"] + 1
    assert add_cell["completeness_new"] > add_cell["completeness_old"]
    rem_cell = next(c for c in cells if c["removed"])
    assert rem_cell["gaps_opened"] >= 1
    assert rem_cell["bars_new"] == rem_cell["bars_old"] - 1
    assert rem_cell["completeness_new"] < rem_cell["completeness_old"]


def test_identical_exports_report_nothing(delivery, tmp_path):
    root, truth, (old, new) = delivery
    result = sd.diff(old, old)
    assert not result.changed and result.exit_code == 0
    assert result.changes.num_rows == 0 and result.cells.num_rows == 0
    # Two runs of the same file, each exported on its own, are identical too.
    again = tmp_path / "again"
    assert cli.main(["-q", "run", str(root / "old" / "6E.csv.gz"), *RUN, "--export-base",
                     "--out", str(again)]) == 0
    result = sd.diff(old, again)
    assert result.changes.num_rows == 0 and result.cells.num_rows == 0 and not result.changed
    assert cli.main(["-q", "diff", str(old), str(again)]) == 0


def test_cli_on_data_files_writes_the_ledger(delivery, tmp_path, capsys):
    root, truth, _ = delivery
    out = tmp_path / "DIFF"
    code = cli.main(["diff", str(root / "old" / "6E.csv.gz"), str(root / "new" / "6E.csv.gz"),
                     *RUN, "--out", str(out)])
    assert code == 1
    text = capsys.readouterr().out
    assert "history CHANGED" in text and "compared at base interval 1m" in text
    ledger = pds.dataset(out / "changes", format="parquet", partitioning="hive").to_table()
    base = ledger.filter(pds.field("interval") == "1m")
    assert base.num_rows == 5
    assert not any(base.column("consequence").to_pylist())
    assert set(ledger.column_names) >= {"symbol", "session", "interval", "ts", "old_open",
                                        "old_high", "old_low", "old_close", "old_volume",
                                        "new_open", "new_high", "new_low", "new_close",
                                        "new_volume"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["changes"] == 5 and summary["changed"] is True
    assert (out / "cells.parquet").exists()


def test_tolerance_hides_float_noise(tmp_path):
    """A second delivery whose prices differ by float noise (1e-12): a change at tolerance 0,
    none at 1e-9; a change of 1e-6 stays a change."""
    cal = sd.Calendar.weekly("UTC", "09:00", "10:00", "Mon-Fri")
    day = cal.session_windows("2024-03-04")
    ts = np.arange(day.open_ns[0], day.close_ns[0], 60_000_000_000)
    px = 100 + np.arange(len(ts)) * 0.01

    def export(name: str, bump: np.ndarray) -> Path:
        p = px + bump
        bars = sd.Bars.from_arrays(ts, p, p + 0.05, p - 0.05, p, np.ones(len(ts)),
                                   interval="1m")
        sd.run({"X": bars}, cal, out=tmp_path / name, export_base=True)
        return tmp_path / name

    a = export("a", np.zeros(len(ts)))
    noise = np.zeros(len(ts))
    noise[10] = 1e-12
    b = export("b", noise)
    assert sd.diff(a, b).summary["changes"] == 1
    assert sd.diff(a, b, tolerance=1e-9).summary["changes"] == 0
    assert sd.diff(a, b, rtol=1e-12).summary["changes"] == 0
    noise[20] = 1e-6
    c = export("c", noise)
    r = sd.diff(a, c, tolerance=1e-9)
    assert r.summary["changes"] == 1
    assert r.primary().column("price_change").to_pylist() == [pytest.approx(1e-6)]
    assert cli.main(["-q", "diff", str(a), str(b), "--tolerance", "1e-9"]) == 0
    assert cli.main(["-q", "diff", str(a), str(b)]) == 1


def test_derived_only_exports_and_bad_input(tmp_path, capsys):
    """Without base bars both sides are compared per derived interval, each a change of its
    own; exports of different calendars are refused (exit 2) naming both."""
    cal = sd.Calendar.weekly("UTC", "09:00", "10:00", "Mon-Fri")
    day = cal.session_windows("2024-03-04")
    ts = np.arange(day.open_ns[0], day.close_ns[0], 60_000_000_000)
    p = 100 + np.arange(len(ts)) * 0.01
    bars = sd.Bars.from_arrays(ts, p, p + 0.05, p - 0.05, p, np.ones(len(ts)), interval="1m")
    sd.run({"X": bars}, cal, out=tmp_path / "a")
    keep = np.r_[0:7, 8:len(ts)]
    sd.run({"X": sd.Bars.from_arrays(ts[keep], p[keep], p[keep] + 0.05, p[keep] - 0.05, p[keep],
                                     np.ones(len(keep)), interval="1m")}, cal,
           out=tmp_path / "b")
    r = sd.diff(tmp_path / "a", tmp_path / "b")
    assert r.summary["level"] == "each derived interval"
    assert not any(r.changes.column("consequence").to_pylist())
    assert r.summary["intervals"]["5m"]["changed"] == 1   # the 09:05 bucket lost a bar
    other = sd.Calendar.weekly("UTC", "09:00", "11:00", "Mon-Fri")
    sd.run({"X": bars}, other, out=tmp_path / "c")
    assert cli.main(["diff", str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    assert "differ in calendar" in capsys.readouterr().err
    assert cli.main(["diff", str(tmp_path / "a"), str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_csv_exports_diff_like_parquet(tmp_path):
    """The bar and gap datasets as CSV (``--bars csv``) compare as Parquet ones do."""
    cal = sd.Calendar.weekly("UTC", "09:00", "10:00", "Mon-Fri")
    ts = np.concatenate([np.arange(cal.session_windows(d).open_ns[0],
                                   cal.session_windows(d).close_ns[0], 60_000_000_000)
                         for d in ("2024-03-04", "2024-03-05")])
    p = 100 + np.arange(len(ts)) * 0.01
    v = np.ones(len(ts))

    def bars(keep: np.ndarray, q: np.ndarray) -> dict[str, sd.Bars]:
        return {"X": sd.Bars.from_arrays(ts[keep], q[keep], q[keep] + 0.05, q[keep] - 0.05,
                                         q[keep], v[keep], interval="1m"),
                "Y": sd.Bars.from_arrays(ts, p, p + 0.05, p - 0.05, p, v, interval="1m")}

    edited = p.copy()
    edited[70] += 0.01
    everything = np.arange(len(ts))
    results = {}
    for fmt in ("parquet", "csv"):
        a, b = tmp_path / f"a-{fmt}", tmp_path / f"b-{fmt}"
        sd.run(bars(everything, p), cal, out=a, export_base=True, fmt=fmt)
        sd.run(bars(np.delete(everything, 5), edited), cal, out=b, export_base=True, fmt=fmt)
        r = sd.diff(a, b)
        results[fmt] = r.primary().select(["symbol", "ts", "change"]).to_pylist()
        assert r.summary["intervals"]["1m"]["gaps_opened"] == 1
    assert results["csv"] == results["parquet"]
    assert [(x["symbol"], x["change"]) for x in results["csv"]] == [("X", "removed"),
                                                                    ("X", "changed")]


def test_changed_rows_in_either_layout():
    """The comparison of matched bars gives the same positions (in key order) whether the
    two sides were read in the same layout (compared as read) or not (gathered)."""
    from sessiondata.diff import VALUES, _changed, _match, _Side

    rng = np.random.default_rng(3)
    n = 1000
    key = np.arange(n, dtype=np.int64) * 7
    order = rng.permutation(n)            # the rows as read: key[order] is sorted

    def side(bump: dict[int, tuple[str, float]], order_: np.ndarray) -> _Side:
        cols = {v: np.linspace(1, 2, n) for v in VALUES}
        cols["volume"][::10] = np.nan     # NaN equals NaN
        cols["count"] = np.ones(n, np.int64)
        for pos, (name, d) in bump.items():
            cols[name][pos] += d
        raw = {k: np.empty_like(v) for k, v in cols.items()}
        for k, v in cols.items():         # lay the key-ordered values out as read
            raw[k][order_] = v
        return _Side(key, order_, raw)

    bumps = {5: ("close", 1e-3), 501: ("volume", 1.0), 900: ("count", 1), 10: ("open", 1e-12)}
    for order_new in (order, rng.permutation(n)):
        old = side({}, order)
        new = side(bumps, order_new)
        m = _match(old.key, new.key)
        pos, price, volume = _changed(old, new, m, 1e-9, 0.0)
        assert pos.tolist() == [5, 501, 900]
        assert price.tolist() == [pytest.approx(1e-3), 0.0, 0.0]
        assert volume.tolist() == [0.0, 1.0, 0.0]
        pos, _, _ = _changed(old, new, m, 0.0, 0.0)
        assert pos.tolist() == [5, 10, 501, 900]
