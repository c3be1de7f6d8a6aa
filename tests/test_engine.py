"""The engine and the results model: one engine for every driver, equal to the live session,
independent of threads and partitions; the scored-span rule; Gaps; the one JSON writer."""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

import sessiondata as sd
from sessiondata import cli, sample
from sessiondata.engine import Engine, Loaded, Source, SymbolEvent, ThreadExecutor, batches
from sessiondata.export import read_dataset, run_export, validate_export
from sessiondata.documents import dumps, session_doc, session_docs
from sessiondata.results import Gaps, GapInfo

MINUTE = 60_000_000_000


def walk(ts: np.ndarray, seed: int = 0) -> sd.Bars:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.05, len(ts)))
    open_ = np.r_[100.0, close[:-1]]
    return sd.Bars.from_arrays(ts, open_, np.maximum(open_, close) + 0.01,
                               np.minimum(open_, close) - 0.01, close,
                               rng.integers(1, 100, len(ts)).astype(float), interval="1m")


def universe(cal: sd.Calendar, first: str, last: str, n: int, seed: int = 1,
             cut_start: int = 0, cut_end: int = 0) -> dict[str, sd.Bars]:
    """``n`` symbols over the sessions, ~3% missing, the data starting ``cut_start`` minutes
    after the first open and ending ``cut_end`` minutes before the last close."""
    w = cal.windows(cal.session_windows(first).open_ns[0],
                    cal.session_windows(last).close_ns[-1])
    slots = np.concatenate([np.arange(o, c, MINUTE) for o, c in zip(w.open_ns, w.close_ns)])
    slots = slots[cut_start:len(slots) - cut_end]
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        keep = rng.random(len(slots)) > 0.03
        keep[0] = keep[-1] = True
        out[f"S{i}"] = walk(slots[keep], seed + i)
    return out


@pytest.fixture(scope="module")
def weekly():
    return sd.Calendar.weekly("America/New_York", "09:30", "16:00", "Mon-Fri")


# -- one engine, whatever the threads and partitions ------------------------------------------


def test_threads_and_partitions_change_nothing(weekly, tmp_path):
    data = universe(weekly, "2024-03-04", "2024-03-15", 7, cut_start=37, cut_end=23)
    docs = []
    for threads, size in ((1, 100), (2, 1), (2, 3)):
        engine = Engine(weekly, derived=("5m", "15m", "1h", "1d"),
                        executor=ThreadExecutor(threads))
        out = tmp_path / f"t{threads}-{size}"
        result = run_export(engine, batches(data, size), out)
        docs.append(session_docs(result))
        assert validate_export(out) == []
        bars = read_dataset(out, "bars").sort_by([("interval", "ascending"),
                                                  ("symbol", "ascending"),
                                                  ("ts", "ascending")])
        if threads == 1:
            first = bars
        else:
            assert bars.equals(first)
    assert docs[0] == docs[1] == docs[2]


def test_span_known_or_found_after_reading_gives_the_same_run(weekly, tmp_path):
    """Files (span unknown before reading: first and last sessions held back) and bars in
    memory (span known) give the same documents and the same bars."""
    data = universe(weekly, "2024-03-04", "2024-03-08", 3, cut_start=7, cut_end=11)
    folder = tmp_path / "files"
    folder.mkdir()
    for symbol, bars in data.items():
        pq.write_table(bars.to_arrow().rename_columns(
            ["timestamp", "open", "high", "low", "close", "volume"]),
            folder / f"{symbol}.parquet")
    from_files = sd.run(folder, weekly, derived=("5m", "1h", "1d"), out=tmp_path / "a")
    in_memory = sd.run(data, weekly, derived=("5m", "1h", "1d"), out=tmp_path / "b")
    assert session_docs(from_files) == session_docs(in_memory)
    for iv in ("5m", "1h", "1d"):
        a = read_dataset(tmp_path / "a", "bars", iv).sort_by([("symbol", "ascending"),
                                                             ("ts", "ascending")])
        b = read_dataset(tmp_path / "b", "bars", iv).sort_by([("symbol", "ascending"),
                                                             ("ts", "ascending")])
        assert a.drop_columns(["symbol"]).equals(b.drop_columns(["symbol"])), iv
        assert a.column("symbol").to_pylist() == b.column("symbol").to_pylist()


def test_engine_equals_the_live_session_on_the_sample(tmp_path):
    """The embedded sample through the engine equals, session by session, a
    SessionCoordinator fed bar batches with the sample's adds and removes at their instants."""
    cal = sample.sample_calendar()
    smp = sample.generate(calendar=cal)
    result = sd.run(None, cal)
    docs = {d["session"]: d for d in session_docs(result)}
    span_lo = min(int(b.ts[0]) for b in smp.bars.values())
    co = sd.SessionCoordinator(cal)
    for k, label in enumerate(str(s) for s in result.sessions):
        co.start(label)
        w = co.session_data.windows
        open_ns, close_ns = int(w.open_ns[0]), int(w.close_ns[-1])
        events = sorted((e for e in smp.events if e.session == label),
                        key=lambda e: e.at_ns)
        members = [s for s, b in smp.bars.items()
                   if len(b) and b.ts[0] < close_ns and b.ts[-1] >= open_ns]
        since = {}
        added = {e.symbol for e in events if e.action == "add"}
        times = [open_ns] + [e.at_ns for e in events] + [close_ns]

        def part(symbol, lo, hi):
            b = smp.bars[symbol]
            a, z = np.searchsorted(b.ts, [lo, hi])
            return b[int(a):int(z)]

        for symbol in members:
            if symbol not in added:
                co.add_and_load(symbol, part(symbol, times[0], times[1]))
            elif len(part(symbol, times[0], times[1])):
                co.stream_bars(symbol, part(symbol, times[0], times[1]))
        for j, ev in enumerate(events):
            if ev.action == "add":
                co.add_symbol(ev.symbol)
                co.mark_loaded(ev.symbol)
                since[ev.symbol] = times[j + 1]
            else:
                co.remove_symbol(ev.symbol)
            for symbol in members:
                if len(part(symbol, times[j + 1], times[j + 2])):
                    co.stream_bars(symbol, part(symbol, times[j + 1], times[j + 2]))
        if open_ns < span_lo < close_ns:
            since = {s: max(span_lo, since.get(s, span_lo)) for s in members}
        co.stop(since_ns=since or None, export_to=tmp_path / label)
        live = json.loads((tmp_path / label / "sessions" / f"{label}.json").read_text())
        # The gap kinds depend on the history held (a live session holds one session, the
        # engine the run): the seed's fields are equal; kinds are tested in test_classify.
        assert seed_fields(live) == seed_fields(json.loads(dumps(docs[label]))), label


def seed_fields(doc):
    """A session document without the fields of the gap kinds (classify.py) and the
    anomalies section (issue 22: the engine's detectors; a live session has none)."""
    for entry in doc["symbols"].values():
        for iv in entry["intervals"].values():
            iv.pop("anomalies", None)
            iv["gaps"].pop("kinds", None)
            for r in iv["gaps"]["ranges"]:
                for key in ("kind", "activity", "share_missing"):
                    r.pop(key, None)
            for key in ("data_quality", "lost"):
                iv.get("quality", {}).pop(key, None)
    return doc


def test_run_sessions_and_run_universe_are_the_engine(weekly, tmp_path):
    from sessiondata.backtest import run_universe

    data = universe(weekly, "2024-03-04", "2024-03-06", 2)
    engine = sd.run(data, weekly)
    uni = run_universe(data, weekly, threads=1)
    assert session_docs(uni.result) == session_docs(engine)
    co = sd.SessionCoordinator(weekly)

    def bars_for(day):
        out = {}
        for s, b in data.items():
            w = weekly.session_windows(day)
            a, z = np.searchsorted(b.ts, [w.open_ns[0], w.close_ns[-1]])
            out[s] = b[int(a):int(z)]
        return out

    summaries = co.run_sessions(engine.sessions, bars_for)
    assert session_docs(summaries[0].result) == session_docs(engine)


# -- the scored span ------------------------------------------------------------------------


def test_buckets_cut_by_the_span_count_over_their_slots_inside(weekly):
    """Data from 09:47 to 11:02: the 09:45 5m bucket holds 3 expected slots, the 09:30 1h
    bucket 43, the 10:30 one 32; the session bucket 75; no interval has more bars than
    expected slots, and full data scores 100 everywhere."""
    day = weekly.session_windows("2024-03-05")
    o = int(day.open_ns[0])
    ts = np.arange(o + 17 * MINUTE, o + 92 * MINUTE, MINUTE)
    result = sd.run({"X": walk(ts)}, weekly, derived=("5m", "15m", "1h", "1d"))
    for name, t in result.intervals.items():
        assert (t.bars <= t.expected).all(), name
        assert t.covered.sum() == pytest.approx(t.expected.sum()), name
    assert result.intervals["5m"].expected[0, 0] == 16      # 09:45 .. 11:00
    assert result.intervals["1h"].expected[0, 0] == 2
    assert result.intervals["1d"].expected[0, 0] == 1
    doc = session_doc(result, 0)["symbols"]["X"]
    assert doc["scored_from"].endswith("09:47:00-05:00")
    assert doc["scored_to"].endswith("11:02:00-05:00")
    # The functional API scores the same span alike.
    q = sd.quality(walk(ts), "1h", weekly, since=int(ts[0]), until=int(ts[-1]) + MINUTE)
    assert (q.expected, q.present, q.score) == (2, 2, 100.0)
    cut = sd.find_gaps(walk(ts[5:]), "1m", weekly, since=int(ts[0]))
    assert [(g.start_time.strftime("%H:%M"), g.bar_count) for g in cut] == \
        [("09:47", 5), ("11:02", 298)]


def test_symbols_added_and_removed_mid_session(weekly):
    day = weekly.session_windows("2024-03-05")
    o, c = int(day.open_ns[0]), int(day.close_ns[-1])
    ts = np.arange(o, c, MINUTE)
    add, remove = o + 95 * MINUTE, o + 200 * MINUTE
    events = [SymbolEvent("2024-03-05", add, "A", "add", "+A"),
              SymbolEvent("2024-03-05", remove, "R", "remove", "-R")]
    result = sd.run({"A": walk(ts), "R": walk(ts), "K": walk(ts)}, weekly, events=events)
    doc = session_doc(result, 0)
    assert sorted(doc["symbols"]) == ["A", "K"]
    assert doc["unknown_bars"] == {"A": 95, "R": 190}
    assert doc["symbols"]["A"]["intervals"]["1m"]["quality"]["expected"] == 390 - 95
    assert doc["symbols"]["A"]["intervals"]["1h"]["quality"]["score"] == 100.0
    assert result.notes[0] == ["+A", "-R"]


# -- bad data -------------------------------------------------------------------------------


def test_a_bad_bar_names_its_symbol_or_is_dropped_and_counted_in_its_session(weekly):
    day = weekly.session_windows("2024-03-05")
    ts = np.arange(int(day.open_ns[0]), int(day.close_ns[-1]), MINUTE)
    good = walk(ts)
    high = good.high.copy()
    high[10] = good.low[10] - 1.0
    bad = sd.Bars(good.ts, good.open, high, good.low, good.close, good.volume,
                  interval="1m", validate=False)
    with pytest.raises(ValueError, match="BAD.*row 10.*high/low"):
        sd.run({"GOOD": good, "BAD": bad}, weekly)
    result = sd.run({"GOOD": good, "BAD": bad}, weekly, on_bad="drop")
    doc = session_doc(result, 0)["symbols"]["BAD"]
    assert doc["rejected"] == {"high/low inconsistent with open/close": 1}
    assert doc["intervals"]["1m"]["quality"]["present"] == 389


def test_symbol_in_two_partitions_is_refused(weekly):
    day = weekly.session_windows("2024-03-05")
    ts = np.arange(int(day.open_ns[0]), int(day.close_ns[-1]), MINUTE)
    parts = [Source.of({"X": walk(ts[:100])}, "a"), Source.of({"X": walk(ts[100:])}, "b")]
    with pytest.raises(ValueError, match="'X' appears in two partitions"):
        Engine(weekly).run(parts)


# -- Gaps -----------------------------------------------------------------------------------


def test_gaps_is_a_columnar_sequence_of_gapinfo(weekly):
    day = weekly.session_windows("2024-03-05")
    ts = np.arange(int(day.open_ns[0]), int(day.close_ns[-1]), MINUTE)
    bars = walk(np.delete(ts, [3, 4, 5, 100, 200, 201]))
    gaps = sd.find_gaps(bars, calendar=weekly)
    assert isinstance(gaps, Gaps) and len(gaps) == 3
    assert gaps.bar_count.tolist() == [3, 1, 2] and gaps.missing == 6
    assert (gaps.expected, gaps.present) == (390, 384)
    assert np.array_equal(gaps.end_ns - gaps.start_ns, gaps.bar_count * MINUTE)
    first = gaps[0]
    assert isinstance(first, GapInfo) and first.bar_count == 3
    assert first.start_time.strftime("%H:%M %Z") == "09:33 EST"
    assert gaps[-1] == list(gaps)[2] and gaps[1:].bar_count.tolist() == [1, 2]
    assert gaps == list(gaps)
    with pytest.raises(IndexError):
        gaps[3]
    table = gaps.to_arrow()
    assert table.column_names == ["start", "end", "bar_count"] and table.num_rows == 3
    pd = pytest.importorskip("pandas")
    frame = gaps.to_pandas()
    assert frame["bar_count"].tolist() == [3, 1, 2]
    assert frame["start_time"].iloc[0] == pd.Timestamp("2024-03-05 09:33", tz="America/New_York")
    assert gaps.to_dicts()[0] == first.to_dict()


# -- the JSON writer ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.1, 1 / 3, 1e-300, 2.5e20, 123456.78901234567, -0.0,
                                   99.99995, 5e-324, 1.7976931348623157e308])
def test_the_json_writer_reads_back_as_json_dumps_does(value):
    doc = {"a": [value, {"b": round(value, 4), "c": "é – 日本"}], "n": 2**53, "t": True,
           "z": None}
    for indent in (True, False):
        text = dumps(doc, indent=indent)
        assert text.endswith(b"\n")
        assert json.loads(text) == json.loads(json.dumps(doc))
        back = json.loads(text)["a"][0]
        assert back == value and math.copysign(1, back) == math.copysign(1, value)


def test_session_documents_read_back_equal(weekly):
    data = universe(weekly, "2024-03-04", "2024-03-05", 2)
    for doc in session_docs(sd.run(data, weekly)):
        assert json.loads(dumps(doc)) == json.loads(json.dumps(doc))


# -- progress -------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only(monkeypatch):
    term = _Terminal()
    progress = cli.Progress(3, stream=term)
    progress._t0 -= 10  # the run has taken long enough to show progress
    for i in range(3):
        progress(i + 1, 1_000_000 * (i + 1))
    progress.finish()
    assert "sessiondata run" in term.getvalue() and "bars/s" in term.getvalue()
    pipe = io.StringIO()
    quiet = cli.Progress(3, stream=pipe)
    quiet._t0 -= 10
    quiet(1, 10)
    quiet.finish()
    assert pipe.getvalue() == ""


def test_rounding_by_array_equals_pythons_round():
    from sessiondata.documents import rounded

    rng = np.random.default_rng(3)
    halves = np.round(rng.random(50_000) * 100, 5)          # many values next to a half
    odd = np.array([0.5, 2.675, 1.00005, 99.99995, 123.456785, 0.0, -0.0, 1e300, -7.5e-5])
    for digits in (4, 6):
        for values in (rng.random(50_000) * 100, halves, rng.integers(0, 10**6, 5000) / 7.0,
                       odd):
            want = [round(v, digits) for v in values.tolist()]
            got = rounded(values, digits)
            assert [repr(x) for x in got] == [repr(x) for x in want]


def test_run_sessions_under_revise_takes_bars_in_time_order_the_last_of_a_slot(weekly):
    """Over finished days, revise is the bars in time order with a repeated slot's last bar
    kept: the same result as the batch run over those bars."""
    day = weekly.session_windows("2024-03-05")
    ts = np.arange(int(day.open_ns[0]), int(day.close_ns[-1]), MINUTE)
    bars = walk(ts)
    shuffled = np.random.default_rng(5).permutation(len(ts))
    cols = {c: getattr(bars, c)[shuffled] for c in ("ts", "open", "high", "low", "close",
                                                      "volume")}
    fix = {c: np.r_[cols[c], getattr(bars, c)[7] * (1.01 if c != "ts" else 1)]
           for c in cols}
    fix["ts"] = np.r_[cols["ts"], ts[7]]            # a second bar for 09:37, the one kept

    co = sd.SessionCoordinator(weekly, on_bad="revise")
    got = co.run_sessions(["2024-03-05"], lambda day: {"X": fix})[0].result
    want_bars = {c: getattr(bars, c).copy() for c in cols}
    for c in ("open", "high", "low", "close", "volume"):
        want_bars[c][7] *= 1.01
    want = sd.run({"X": sd.Bars.from_dict(want_bars, interval="1m")}, weekly)
    assert session_docs(got) == session_docs(want)


def test_bars_take_concat_copy_keep_count_and_coverage():
    """Bars owns masking, concatenating and replacing coverage: derived bars keep their
    count and coverage through each (the engine's old mask dropped them)."""
    ts = np.arange(4, dtype=np.int64) * 300_000_000_000
    px = np.array([1.0, 2.0, 3.0, 4.0])
    b = sd.Bars(ts, px, px, px, px, px, count=[5, 4, 5, 1], coverage=[1.0, 0.8, 1.0, 0.2],
                interval="5m")
    kept = b.take(np.array([True, False, True, True]))
    assert kept.count.tolist() == [5, 5, 1] and kept.coverage.tolist() == [1.0, 1.0, 0.2]
    assert kept.interval == b.interval and kept.has_volume
    both = sd.Bars.concat([b[:2], b[2:]])
    assert both.equals(b) and both.count.tolist() == b.count.tolist()
    assert both.coverage.tolist() == b.coverage.tolist()
    with pytest.raises(ValueError, match="strictly increasing|order|increas"):
        sd.Bars.concat([b[2:], b[:2]], validate=True)
    cut = b.with_coverage(np.array([1.0, 0.8, 1.0, 0.1]))
    assert cut.coverage.tolist()[-1] == 0.1 and b.coverage.tolist()[-1] == 0.2
    own = b[1:3].copy()
    assert own.ts.base is None or own.ts.base is not b.ts.base
    assert not own.ts.flags.writeable and own.count.tolist() == [4, 5]
    with pytest.raises(ValueError, match="mask"):
        b.take(np.array([True, False]))


def test_sessions_outside_every_symbols_span_are_no_part_of_the_run(tmp_path):
    """Issue 19: a folder of one symbol in one year and another in a later year wrote an
    empty document for every session between them.  Those sessions are not part of the
    run; inside a symbol's span an empty session is still a gap."""
    minute = 60_000_000_000

    def day_bars(days, skip=()):
        ts = np.concatenate([np.datetime64(d, "ns").astype(np.int64)
                             + np.arange(1440, dtype=np.int64) * minute
                             for d in days if d not in skip])
        p = np.ones(len(ts))
        return sd.Bars(ts, p, p, p, p, p)

    data = {"OLD": day_bars(["2024-01-02", "2024-01-03"]),
            "NEW": day_bars(["2024-01-10", "2024-01-11", "2024-01-12"], skip=("2024-01-11",))}
    result = sd.run(data, sd.Calendar.always(), derived=("1h",), out=tmp_path / "out")
    labels = [str(s) for s in result.sessions]
    assert labels == ["2024-01-02", "2024-01-03", "2024-01-10", "2024-01-11", "2024-01-12"]
    written = sorted(p.stem for p in (tmp_path / "out" / "sessions").glob("*.json"))
    assert written == labels
    doc = json.loads((tmp_path / "out" / "sessions" / "2024-01-11.json").read_bytes())
    gaps = doc["symbols"]["NEW"]["intervals"]["1m"]["gaps"]
    assert gaps["gap_count"] == 1 and gaps["missing_bars"] == 1440   # inside NEW's span
    assert "OLD" not in doc["symbols"]
    assert validate_export(tmp_path / "out") == []


def test_session_documents_written_by_threads_equal_the_serial_ones(tmp_path, monkeypatch):
    """Issue 18 item 5: the documents are built from columns laid out once, by threads
    (compiled, without the GIL); byte for byte what one thread writes.  A failing thread
    fails the call."""
    from sessiondata import documents

    rng = np.random.default_rng(7)
    minute = 60_000_000_000
    ts = np.datetime64("2024-01-01", "ns").astype(np.int64) + np.arange(70 * 1440) * minute
    data = {}
    for name in ("A", "B", "C"):
        t = ts[rng.random(len(ts)) > 0.01]
        p = np.ones(len(t))
        data[name] = sd.Bars(t, p, p, p, p, p)
    result = sd.run(data, sd.Calendar.always(), derived=("15m",))
    assert len(result.sessions) >= 2 * documents.MIN_SESSIONS_PER_WORKER
    one, three = tmp_path / "one", tmp_path / "three"
    one.mkdir()
    three.mkdir()
    documents.write_session_docs(result, one, workers=1)
    documents.write_session_docs(result, three, workers=3)   # two threads
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in three.iterdir()) and len(names) == 70
    assert all((one / n).read_bytes() == (three / n).read_bytes() for n in names)
    assert (one / names[0]).read_bytes() == dumps(session_docs(result, [0])[0], indent=False)

    original = documents._Documents.write

    def broken(self, sessions, folder):
        if sessions[0] > 0:   # the second share only
            raise RuntimeError("a thread's document failed")
        return original(self, sessions, folder)

    monkeypatch.setattr(documents._Documents, "write", broken)
    four = tmp_path / "four"
    four.mkdir()
    with pytest.raises(RuntimeError, match="writing the session documents into .* failed") \
            as caught:
        documents.write_session_docs(result, four, workers=3)
    assert "a thread's document failed" in str(caught.value.__cause__)


@pytest.mark.parametrize("threads", (1, 2))
def test_edge_sessions_the_span_cannot_cut_are_finished_with_the_middle(weekly, tmp_path,
                                                                        threads):
    """Issue 18: with the span unknown before reading, a symbol's first session is finished
    in the first pass when its first bar is at the open (the span, starting at or before
    that bar, cannot cut it), its last session when its last bar ends at the close; the
    others are held back.  Either way the run is the one whose span is known: symbols
    starting at the open or later, ending at the close or earlier, one session long, an
    edge bar rejected (so that edge is held), and the bars written alike."""
    w = weekly.windows(weekly.session_windows("2024-03-04").open_ns[0],
                       weekly.session_windows("2024-03-08").close_ns[-1])
    slots = np.concatenate([np.arange(o, c, MINUTE) for o, c in zip(w.open_ns, w.close_ns)])
    day = 390
    data = {
        "OPEN_CLOSE": walk(slots, 1),                       # both edges finished at once
        "CUT_START": walk(slots[17:], 2),                   # first session held
        "CUT_END": walk(slots[:-9], 3),                     # last session held
        "LATER": walk(slots[day:3 * day], 4),               # starts at a later open
        "ONE_DAY": walk(slots[2 * day:3 * day], 5),         # one session, at the edges
        "ONE_CUT": walk(slots[2 * day + 5:3 * day - 5], 6),  # one session, cut
    }
    bad = walk(slots, 7)
    high = bad.high.copy()
    high[0] = bad.low[0] - 1.0                              # its first bar rejected
    high[-1] = bad.low[-1] - 1.0                            # and its last
    data["BAD_EDGES"] = sd.Bars(bad.ts, bad.open, high, bad.low, bad.close, bad.volume,
                                interval="1m", validate=False)
    derived = ("5m", "1h", "1d")

    def run(sources, out):
        engine = Engine(weekly, derived=derived, on_bad="drop",
                        executor=ThreadExecutor(threads))
        return run_export(engine, sources, out)

    def same(data, name):
        unknown = [Source(f"p{i}", (lambda b: lambda: Loaded(b))({s: data[s]}))
                   for i, s in enumerate(data)]
        assert all(s.span is None for s in unknown)
        a = run(unknown, tmp_path / f"{name}-a")
        b = run(batches(data, 2), tmp_path / f"{name}-b")
        assert [dumps(d) for d in session_docs(a)] == [dumps(d) for d in session_docs(b)]
        for iv in derived:
            x, y = (read_dataset(tmp_path / f"{name}-{c}", "bars", iv)
                    .sort_by([("symbol", "ascending"), ("ts", "ascending")]) for c in "ab")
            assert x.equals(y), iv
        return a

    a = same(data, "all")
    assert a.rejected
    # Every bar of an edge session (or of the only one) rejected: the held session has no
    # bar left, yet it is the run's as when the span is known - its rejections counted in
    # it, never lost.
    def rejected_in(bars, lo, hi):
        high = bars.high.copy()
        high[lo:hi] = bars.low[lo:hi] - 1.0
        return sd.Bars(bars.ts, bars.open, high, bars.low, bars.close, bars.volume,
                       interval="1m", validate=False)

    whole = same({"LAST_BAD": rejected_in(walk(slots, 9), 4 * day, 5 * day),
                  "FIRST_BAD": rejected_in(walk(slots, 10), 0, day),
                  "ONLY_BAD": rejected_in(walk(slots[2 * day:3 * day], 11), 0, day)}, "whole")
    k = {s: i for i, s in enumerate(whole.symbols)}
    assert whole.rejected[(k["LAST_BAD"], 4)] == {"high/low inconsistent with open/close": day}
    assert whole.rejected[(k["FIRST_BAD"], 0)] == {"high/low inconsistent with open/close": day}
    assert whole.rejected[(k["ONLY_BAD"], 2)] == {"high/low inconsistent with open/close": day}
    assert "scored_from" not in session_doc(a, 0)["symbols"]["CUT_START"]
    # The run's span starting and ending inside sessions: the held sessions are cut.
    a = same({"CUT_BOTH": walk(slots[17:-9], 8), "ONE_CUT": data["ONE_CUT"]}, "cut")
    assert session_doc(a, 0)["symbols"]["CUT_BOTH"]["scored_from"].endswith("09:47:00-05:00")
    assert session_doc(a, 4)["symbols"]["CUT_BOTH"]["scored_to"].endswith("15:51:00-05:00")
