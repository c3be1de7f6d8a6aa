"""Sparse symbols (issues 18 and 20, item 1): work and memory follow the bars and the
sessions, not the slots between them.

A symbol with data on both sides of a hole of decades, on a 24/7 calendar, has tens of
millions of missing 1m slots; the gap classification used to lay every one of them out
(tens of GB).  It now cuts the gaps into pieces (``classify._pieces``) above a slot budget;
these tests check that the pieces give the kinds the slot-by-slot sums give, and run the
sparse files in a child process, whose time and peak memory they bound.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sessiondata import classify
from sessiondata.classify import ClassifyOptions
from sessiondata.engine import Engine, ThreadExecutor
from sessiondata.synthetic import universe

MAX_RSS_MB = 600
MAX_RUN_S = 6.0   # the engine's run of a sparse file in the child (about 2-3 s on 2 loaded cores)


def _classified(budget: int, monkeypatch, seed: int) -> dict[str, dict[str, np.ndarray]]:
    monkeypatch.setattr(classify, "SLOT_BUDGET", budget)
    u = universe(30, 12, seed=seed)
    run = Engine(u.calendar, derived=("5m",), classify=ClassifyOptions(halts=u.halts),
                 executor=ThreadExecutor(1)).run(u.bars)
    return {name: {"kind": t.gap_kind, "activity": t.gap_activity, "share": t.gap_share,
                   "lost": t.lost} for name, t in run.intervals.items()}


@pytest.mark.parametrize("seed", [0, 3])
def test_pieces_give_the_kinds_of_the_slot_by_slot_sums(monkeypatch, seed):
    """Budget 0 forces the pieces on a universe with outages, late starts, early ends and
    supplied halts: every kind and every lost slot is the slot-by-slot one, and activity and
    share differ only in the last bits of a float (a sum over a piece is length * value)."""
    slots = _classified(1 << 40, monkeypatch, seed)
    pieces = _classified(0, monkeypatch, seed)
    kinds = np.concatenate([c["kind"] for c in slots.values()])
    assert len(np.unique(kinds)) >= 3      # the universe exercises several rules
    for name in slots:
        a, b = slots[name], pieces[name]
        np.testing.assert_array_equal(a["kind"], b["kind"], err_msg=name)
        np.testing.assert_array_equal(a["lost"], b["lost"], err_msg=name)
        np.testing.assert_allclose(a["activity"], b["activity"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a["share"], b["share"], rtol=1e-12, atol=1e-14)


def test_pieces_cut_gaps_at_buckets_and_other_gaps():
    """Two gaps of two symbols that overlap, over a grid of two windows of 6 slots in runs
    of 3: each piece lies in one run and starts and ends where the other gap does."""
    sl = classify._Slots(n=12, step_ns=1, window_first=np.array([0, 6]),
                         window_open=np.array([0, 100]), run_start=np.array([0, 3, 6, 9]),
                         run_len=np.array([3, 3, 3, 3]), run_bucket=np.array([0, 1, 0, 1]),
                         run_session=np.array([0, 0, 1, 1]), run_window=np.array([0, 0, 1, 1]),
                         n_buckets=2)
    g, start, n = classify._pieces(np.array([1, 2]), np.array([5, 9]), sl, 14, budget=0)
    assert g.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert start.tolist() == [1, 2, 3, 2, 3, 6, 9]
    assert n.tolist() == [1, 1, 3, 1, 3, 3, 2]
    g, start, n = classify._pieces(np.array([1, 2]), np.array([5, 9]), sl, 14)
    assert start.tolist() == [1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 7, 8, 9, 10] and set(n) == {1}


def _write(path: Path, stamps: list[dt.datetime]) -> None:
    lines = ["timestamp,open,high,low,close"]
    lines += [f"{t:%Y-%m-%d %H:%M:%S},1,2,0.5,1.5" for t in stamps]
    path.write_text("\n".join(lines) + "\n")


PEAK = """
import resource

def peak_mb():
    # VmHWM is this process's own peak: ru_maxrss keeps the peak of the forked parent image
    # across exec on Linux (a child of a big pytest process reports the parent's size)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def _child(code: str) -> dict:
    """Run ``code`` in a fresh interpreter (its own peak RSS); it prints one JSON line."""
    proc = subprocess.run([sys.executable, "-c", PEAK + textwrap.dedent(code)],
                          capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _days(a: str, b: str) -> int:
    return (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days + 1


def test_decades_between_two_januaries_run_in_bounded_time_and_memory(tmp_path):
    """20 bars on 2024-01-02 and 20 on 2112-01-02 on 24/7: 46M missing 1m slots, every
    empty session one gap covering the session."""
    path = tmp_path / "years.csv"
    _write(path, [dt.datetime(2024, 1, 2, 10) + dt.timedelta(minutes=i) for i in range(20)]
           + [dt.datetime(2112, 1, 2, 10) + dt.timedelta(minutes=i) for i in range(20)])
    got = _child(f"""
        import json, resource, time
        import numpy as np
        import sessiondata as sd
        t0 = time.perf_counter()
        r = sd.run({str(path)!r}, sd.Calendar.always(), on_bad="drop")
        seconds = time.perf_counter() - t0
        t = r.intervals["1m"]
        print(json.dumps({{"seconds": seconds,
            "rss_mb": peak_mb(),
            "sessions": len(r.sessions), "gaps": len(t.gap_symbol),
            "counts": np.bincount(t.gap_count).nonzero()[0].tolist(),
            "missing": int(t.gap_count.sum()), "expected": int(t.expected.sum()),
            "kinds": sorted(set(t.gap_kind.tolist())),
            "gaps_5m": len(r.intervals["5m"].gap_symbol)}}))
    """)
    n = _days("2024-01-02", "2112-01-02")
    assert got["sessions"] == n
    # one gap per session: after the first 20 bars, each empty session whole, before the last
    assert got["gaps"] == n and got["gaps_5m"] == n
    assert got["counts"] == [600, 820, 1440]   # last day before 10:00, first after 10:20
    # the span starts at the first bar (10:00) and ends after the last (10:20)
    assert got["expected"] == n * 1440 - 600 - (1440 - 620)
    assert got["missing"] == got["expected"] - 40
    assert got["kinds"] == [classify.NO_TRADE]   # a symbol almost never there: quiet
    assert got["rss_mb"] < MAX_RSS_MB, got
    assert got["seconds"] < MAX_RUN_S, got


def test_two_weeks_thirty_years_two_weeks_through_the_cli(tmp_path):
    """20 bars a day for two weeks, nothing for 30 years, two weeks again, through
    ``sessiondata run --calendar 24/7 --on-bad drop``: one document per session of the
    span, each empty session one gap, in bounded memory."""
    path = tmp_path / "weeks.csv"
    stamps = []
    for first in (dt.datetime(2024, 1, 1), dt.datetime(2054, 1, 1)):
        for d in range(14):
            stamps += [first + dt.timedelta(days=d, hours=10, minutes=i) for i in range(20)]
    _write(path, stamps)
    out = tmp_path / "out"
    got = _child(f"""
        import json, resource, time
        from sessiondata.cli import main
        t0 = time.perf_counter()
        rc = main(["run", {str(path)!r}, "--calendar", "24/7", "--on-bad", "drop",
                   "--out", {str(out)!r}, "-q"])
        print(json.dumps({{"rc": rc, "seconds": time.perf_counter() - t0,
            "rss_mb": peak_mb()}}))
    """)
    assert got["rc"] == 0
    n = _days("2024-01-01", "2054-01-14")
    docs = sorted(p.name for p in (out / "sessions").iterdir())
    assert len(docs) == n
    assert docs[0] == "2024-01-01.json" and docs[-1] == "2054-01-14.json"
    doc = json.loads((out / "sessions" / "2040-06-01.json").read_text())
    gaps_1m = doc["symbols"]["weeks"]["intervals"]["1m"]["gaps"]
    assert gaps_1m["gap_count"] == 1                # the empty session is one gap ...
    assert gaps_1m["ranges"][0]["bar_count"] == 1440   # ... covering it whole
    import pyarrow.parquet as pq
    rows = pq.read_table(out / "gaps" / "interval=1m").num_rows
    # 26 data days with a gap on each side, the first and the last day with one (the span
    # starts at the first bar and ends after the last), every empty session one
    assert rows == n + 26
    assert got["rss_mb"] < MAX_RSS_MB, got
