"""The bar dataset writer (``export.BarDatasetWriter``): a worker thread gathers the bars of
its partitions and writes them in few, large row groups (at a row threshold and at close);
the rows, their order, the schema and the meaning are those of a write per partition; the
held-back edge sessions keep files of their own; a partition written twice in per-partition
mode leaves one file, the second run's."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import ohlcv, session_slots
from sessiondata import Bars, Calendar, Engine, job
from sessiondata import export as export_mod
from sessiondata.engine import ThreadExecutor, batches
from sessiondata.export import BarDatasetWriter, bars_table, run_export, validate_export

MINUTE = 60_000_000_000
FIVE = 5 * MINUTE
DAY0 = np.datetime64("2024-03-11", "D")


def ny() -> Calendar:
    return Calendar.weekly("America/New_York", "09:30", "16:00")


DAYS = ["2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14"]


def universe(n: int, days: list[str] = DAYS) -> dict[str, Bars]:
    """``n`` symbols of 1m bars over whole New York sessions, each with holes of its own."""
    ts = session_slots(ny(), days)
    out = {}
    for i in range(n):
        keep = np.ones(len(ts), bool)
        keep[50 * (i + 1): 50 * (i + 1) + 7] = False
        keep[0] = keep[-1] = True
        out[f"S{i:02d}"] = ohlcv(ts[keep], i)
    return out


def piece(symbol: str, n: int, seed: int, start: int = 0) -> tuple[str, np.ndarray, Bars]:
    """``n`` 5m bars of ``symbol`` (a piece as the engine adds it: symbol, sessions, bars),
    with count and coverage."""
    ts = (np.datetime64("2024-03-11T13:30", "ns").astype(np.int64)
          + (start + np.arange(n, dtype=np.int64)) * FIVE)
    b = ohlcv(ts, seed, interval="5m")
    b = Bars(b.ts, b.open, b.high, b.low, b.close, b.volume,
             count=np.full(n, 5, np.int64) - (np.arange(n) % 3 == 0),
             coverage=np.where(np.arange(n) % 3 == 0, 0.8, 1.0), interval="5m",
             validate=False)
    sessions = DAY0 + (np.arange(n) // 78).astype("timedelta64[D]")
    return symbol, sessions, b


def write_parts(writer: BarDatasetWriter, parts: list[list[tuple[str, np.ndarray, Bars]]],
                interval: str = "5m", watch: list[int] | None = None) -> None:
    """Each item of ``parts`` is a partition: its pieces added, then closed."""
    for pieces in parts:
        part = writer.part("p")
        for symbol, sessions, b in pieces:
            part.add(symbol, interval, sessions, b)
        part.close()
        if watch is not None:
            watch.append(sum(sum(f.rows.values()) for f in writer._threads))


def parts_of(n_parts: int, rows: int, per_part: int = 1, tag: int = 0) -> list[list[tuple]]:
    """``n_parts`` partitions of ``per_part`` symbols of ``rows`` bars each (symbols and
    values of their own for each ``tag``)."""
    k = iter(range(1000 * tag, 1000 * (tag + 1)))
    return [[piece(f"T{tag}.P{p:02d}.{j}", rows, next(k)) for j in range(per_part)]
            for p in range(n_parts)]


def plain(table: pa.Table) -> pa.Table:
    return table.set_column(0, "symbol", table.column("symbol").cast(pa.string()))


def row_groups(path: Path) -> list[int]:
    md = pq.ParquetFile(path).metadata
    return [md.row_group(i).num_rows for i in range(md.num_row_groups)]


def bar_files(out: Path, interval: str, fmt: str = "parquet") -> list[Path]:
    return sorted((out / "bars" / f"interval={interval}").glob(f"part-*.{fmt}"))


# ------------------------------------------------------------------------ through the engine


def test_a_thread_writes_many_partitions_as_one_row_group(tmp_path):
    """Twelve partitions of one symbol on one thread: one row group per file (a row group
    per partition before), the rows as many as the engine made, the export valid."""
    data = universe(12)
    engine = Engine(ny(), derived=["5m", "15m"], executor=ThreadExecutor(1))
    out = tmp_path / "out"
    result = run_export(engine, batches(data, size=1), out)
    assert validate_export(out) == []
    for iv in ("5m", "15m"):
        (path,) = bar_files(out, iv)
        assert row_groups(path) == [pq.ParquetFile(path).metadata.num_rows]
        t = result.intervals[iv]
        assert pq.ParquetFile(path).metadata.num_rows == int(np.sum(t.bars))


def test_edges_keep_files_of_their_own_after_the_middle_sessions(tmp_path):
    """Files in a folder (the data's span unknown before reading): each symbol's first and
    last sessions are held back and written after the middle ones, into files of their own,
    so that within every file a symbol's bars still come in time order."""
    src = tmp_path / "in"
    src.mkdir()
    data = universe(6)
    for symbol, b in data.items():
        # start after the open and end before the close: neither edge is finished early
        b = b[3:-3]
        pq.write_table(pa.table({"timestamp": pa.array(b.ts, pa.timestamp("ns", tz="UTC")),
                                 "open": b.open, "high": b.high, "low": b.low,
                                 "close": b.close, "volume": b.volume}),
                       src / f"{symbol}.parquet")
    out = tmp_path / "out"
    job.run(src, ny(), derived=["5m"], out=out, threads=1)
    assert validate_export(out) == []
    files = bar_files(out, "5m")
    assert len(files) == 2                     # the thread's file, then the edges'
    middle, edges = (pq.read_table(p) for p in files)
    first_day, last_day = np.datetime64(DAYS[0]), np.datetime64(DAYS[-1])
    assert set(edges.column("session").to_numpy().astype("datetime64[D]")) == {first_day,
                                                                               last_day}
    assert not np.isin(middle.column("session").to_numpy().astype("datetime64[D]"),
                       [first_day, last_day]).any()
    assert row_groups(files[0]) == [middle.num_rows]      # six partitions, one row group
    for table in (middle, edges):
        sym = table.column("symbol").cast(pa.string()).to_numpy(zero_copy_only=False)
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        for s in set(sym):
            assert (np.diff(ts[sym == s]) > 0).all()


# --------------------------------------------------------------------------- the writer alone


def test_row_groups_are_written_at_the_threshold_and_the_rest_at_close(tmp_path):
    writer = BarDatasetWriter(tmp_path, row_group_rows=1000)
    held: list[int] = []
    write_parts(writer, parts_of(10, 300), watch=held)
    writer.close()
    (path,) = writer.files
    assert row_groups(path) == [1200, 1200, 600]
    # Memory: what a thread holds stays under the threshold between partitions.
    assert held == [300, 600, 900, 0, 300, 600, 900, 0, 300, 600]
    assert max(held) < 1000


def test_a_partition_larger_than_the_threshold_is_written_when_it_closes(tmp_path):
    writer = BarDatasetWriter(tmp_path, row_group_rows=100)
    write_parts(writer, parts_of(3, 250, per_part=2))
    writer.close()
    assert row_groups(writer.files[0]) == [500, 500, 500]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_gathered_rows_equal_a_write_per_partition(tmp_path, fmt):
    """The same rows, in the same order, with the same schema as a write per partition (a
    threshold of one row) and as one table of every piece."""
    parts = parts_of(9, 157, per_part=3)
    files = {}
    for name, rows in (("each", 1), ("gathered", 1 << 17), ("some", 1000)):
        writer = BarDatasetWriter(tmp_path / name, fmt, row_group_rows=rows)
        write_parts(writer, parts)
        writer.close()
        (files[name],) = writer.files
    if fmt == "csv":
        assert files["each"].read_bytes() == files["gathered"].read_bytes() \
            == files["some"].read_bytes()
        return
    assert len(row_groups(files["each"])) == 9
    assert row_groups(files["gathered"]) == [9 * 3 * 157]
    assert row_groups(files["some"]) == [3 * 3 * 157] * 3
    tables = {k: pq.read_table(p) for k, p in files.items()}
    whole = bars_table([p for pieces in parts for p in pieces])
    assert tables["gathered"].schema == tables["each"].schema == export_mod._schema("bars")
    # Every field of every bar is there: the columns are REQUIRED in the file (no
    # definition levels to write or read), and a reader is told so.
    assert not any(f.nullable for f in tables["gathered"].schema)
    assert {pq.ParquetFile(files["gathered"]).schema.column(i).max_definition_level
            for i in range(10)} == {0}
    for table in tables.values():
        assert plain(table).equals(plain(whole))


def test_the_symbols_of_a_row_group_share_one_dictionary(tmp_path):
    """Pieces of many partitions in one row group: one dictionary of symbols (a dictionary
    that changed from chunk to chunk would make Parquet write the column as plain text)."""
    parts = parts_of(40, 200)
    pieces = [p for pieces in parts for p in pieces]
    table = bars_table(pieces)
    # small pieces are joined into one chunk; large ones keep a chunk each (no copy)
    big = [p for pieces in parts_of(3, 5000) for p in pieces]
    for made, n_chunks in ((table, 1), (bars_table(big), len(big)),
                           (bars_table(big[:1] + pieces + big[1:]), len(big) + 1)):
        chunks = made.column("symbol").chunks
        assert len(chunks) == n_chunks
        assert all(c.dictionary.equals(chunks[0].dictionary) for c in chunks)
    mixed = bars_table(big[:1] + pieces + big[1:])
    assert mixed.column("symbol").to_pylist() == [s for s, _, b in big[:1] + pieces + big[1:]
                                                  for _ in range(len(b))]
    assert mixed.column("ts").cast("int64").to_numpy().tolist() == [
        t for _, _, b in big[:1] + pieces + big[1:] for t in b.ts.tolist()]
    writer = BarDatasetWriter(tmp_path)
    write_parts(writer, parts)
    writer.close()
    md = pq.ParquetFile(writer.files[0]).metadata
    assert md.num_row_groups == 1
    symbol = md.row_group(0).column(0)
    # 8,000 rows: indices in runs and a page of 40 names, not 8,000 strings
    assert symbol.total_uncompressed_size < 2_000, symbol


def test_each_thread_writes_its_own_file_and_close_writes_what_they_gathered(tmp_path):
    writer = BarDatasetWriter(tmp_path, row_group_rows=1000)
    per_thread = {t: parts_of(5, 150 + t, tag=t) for t in range(3)}
    barrier = threading.Barrier(3)

    def work(t: int) -> None:
        barrier.wait()
        write_parts(writer, per_thread[t])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(f.pending for f in writer._threads)       # under the threshold: all held
    writer.close()
    assert len(writer.files) == 3
    got = sorted((plain(pq.read_table(p)) for p in writer.files), key=lambda t: t.num_rows)
    for t, table in enumerate(got):
        assert table.equals(plain(bars_table([p for ps in per_thread[t] for p in ps])))


def test_an_idle_thread_writes_what_it_gathered_and_the_others_keep_theirs(tmp_path):
    """``idle()`` (the engine: this thread takes no more partition) writes the calling
    thread's rows now; another thread's rows stay gathered until the writer closes."""
    writer = BarDatasetWriter(tmp_path, row_group_rows=1000)
    parts = {t: parts_of(3, 120, tag=t) for t in range(2)}

    def quick() -> None:
        write_parts(writer, parts[0])
        writer.idle()

    def slow() -> None:
        write_parts(writer, parts[1])

    a = threading.Thread(target=quick)
    a.start()
    a.join()
    b = threading.Thread(target=slow)
    b.start()
    b.join()
    held = [sum(f.rows.values()) for f in writer._threads]
    assert held == [0, 3 * 120]    # the idle thread's rows are written, the other's held
    assert writer._pending == 3 * 120
    writer.close()
    got = {pq.ParquetFile(p).metadata.num_rows for p in writer.files}
    assert got == {3 * 120}
    rows = pa.concat_tables(plain(pq.read_table(p)) for p in writer.files)
    want = plain(bars_table([p for t in range(2) for ps in parts[t] for p in ps]))
    assert rows.sort_by([("symbol", "ascending"), ("ts", "ascending")]).equals(
        want.sort_by([("symbol", "ascending"), ("ts", "ascending")]))


def test_idle_in_a_thread_with_nothing_gathered_does_nothing(tmp_path):
    writer = BarDatasetWriter(tmp_path)
    writer.idle()                 # this thread never wrote: no file is begun
    writer.close()
    assert writer.files == []


def test_the_threads_together_hold_at_most_pending_rows(tmp_path):
    """Many threads (a machine of many cores): past ``pending_rows`` held in all, a thread
    writes what it holds at once, so memory does not grow with threads x intervals."""
    writer = BarDatasetWriter(tmp_path, row_group_rows=1000, pending_rows=1500)
    parts = {t: parts_of(2, 300, tag=t) for t in range(8)}
    held: list[int] = []

    def work(t: int) -> None:
        for pieces in parts[t]:
            write_parts(writer, [pieces])
            held.append(writer._pending)

    for t in range(8):   # one after the other: each thread keeps its file and its rows
        th = threading.Thread(target=work, args=(t,))
        th.start()
        th.join()
    assert held[:4] == [300, 600, 900, 1200] and max(held) <= 1500
    writer.close()
    assert len(writer.files) == 8
    rows = [pq.read_table(p) for p in writer.files]
    assert sum(t.num_rows for t in rows) == 8 * 2 * 300
    got = pa.concat_tables(plain(t) for t in rows)
    want = plain(bars_table([p for t in range(8) for ps in parts[t] for p in ps]))
    assert got.sort_by([("symbol", "ascending"), ("ts", "ascending")]).equals(
        want.sort_by([("symbol", "ascending"), ("ts", "ascending")]))


def test_a_partition_after_close_is_refused(tmp_path):
    writer = BarDatasetWriter(tmp_path)
    write_parts(writer, parts_of(1, 10))
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        write_parts(writer, parts_of(1, 10))


def test_a_failed_write_at_close_still_finishes_the_other_files(tmp_path, monkeypatch):
    writer = BarDatasetWriter(tmp_path, row_group_rows=1000)
    write_parts(writer, parts_of(2, 100), interval="5m")
    write_parts(writer, parts_of(2, 100), interval="15m")
    real = export_mod.bars_table
    calls = []

    def failing(pieces, plain=False):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(pieces, plain)

    monkeypatch.setattr(export_mod, "bars_table", failing)
    with pytest.raises(OSError, match="No space"):
        writer.close()
    assert writer._open == []
    assert len(writer.files) == 2
    for path in writer.files:   # every file closed all the same: a footer, readable
        assert pq.ParquetFile(path).metadata.num_rows in (0, 200)


def test_done_finishes_the_files_on_a_thread_and_close_waits_for_it(tmp_path, monkeypatch):
    """``done`` (the engine's partitions are over) writes the gathered rows and the footers
    beside the engine's last steps; ``close`` waits for it, and raises what it raised."""
    import threading

    writer = BarDatasetWriter(tmp_path, row_group_rows=1000)
    write_parts(writer, parts_of(3, 100))
    real = export_mod.bars_table
    threads = []

    def spy(pieces, plain=False):
        threads.append(threading.current_thread().name)
        return real(pieces, plain)

    monkeypatch.setattr(export_mod, "bars_table", spy)
    writer.done()
    writer.done()   # once is enough; a second call changes nothing
    writer.close()
    assert threads == ["sessiondata-bars-done"]
    (path,) = writer.files
    assert row_groups(path) == [300]

    failing = BarDatasetWriter(tmp_path / "failing", row_group_rows=1000)
    write_parts(failing, parts_of(2, 100))

    def broken(pieces, plain=False):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_mod, "bars_table", broken)
    failing.done()
    with pytest.raises(OSError, match="No space"):
        failing.close()
    assert failing._open == []


def test_the_engine_says_done_before_it_classifies(tmp_path, monkeypatch):
    """The engine tells its sink that no more bars come before it assembles and classifies
    the run, so the sink's last rows are written meanwhile."""
    import sessiondata.engine as engine_mod

    order = []
    real_done, real_classify = BarDatasetWriter.done, engine_mod.classify_run
    monkeypatch.setattr(BarDatasetWriter, "done",
                        lambda self: (order.append("done"), real_done(self))[1])
    monkeypatch.setattr(engine_mod, "classify_run",
                        lambda run, opts: (order.append("classify"), real_classify(run, opts))[1])
    job.run(universe(3), ny(), out=tmp_path / "out")
    assert order == ["done", "classify"]
    assert bar_files(tmp_path / "out", "5m")


def test_a_thread_with_no_partition_left_writes_its_bars_while_the_last_one_runs(tmp_path):
    """With every partition begun, the thread whose partition ends while another still runs
    says so to the sink (``idle``): its gathered bars are written then, not in the tail.
    The last partitions wait for each other, so they overlap; exactly one thread is idle
    (the last to end is followed by the tail, which writes the rest); the files hold the
    same rows as a run without threads."""
    from sessiondata.engine import Source

    calls: list[str] = []

    class Spy(BarDatasetWriter):
        def idle(self) -> None:
            calls.append(threading.current_thread().name)
            super().idle()

    data = universe(6)
    together = threading.Barrier(2, timeout=30)

    def source(symbol: str, last: bool) -> Source:
        inner = Source.of({symbol: data[symbol]}, name=symbol)

        def load():
            if last:
                together.wait()
            return inner.load()

        return Source(symbol, load, inner.span)

    symbols = sorted(data)
    sources = [source(s, i >= 4) for i, s in enumerate(symbols)]
    engine = Engine(ny(), derived=["5m", "15m"], executor=ThreadExecutor(2))
    spy = Spy(tmp_path / "threads", row_group_rows=10_000)
    engine.run(sources, sink=spy)
    spy.close()
    assert len(calls) == 1
    alone = BarDatasetWriter(tmp_path / "alone")
    Engine(ny(), derived=["5m", "15m"], executor=ThreadExecutor(1)).run(
        [Source.of({s: data[s]}, name=s) for s in symbols], sink=alone)
    alone.close()
    for iv in ("5m", "15m"):
        got = pa.concat_tables(plain(pq.read_table(p)) for p in bar_files(tmp_path / "threads", iv))
        want = pa.concat_tables(plain(pq.read_table(p)) for p in bar_files(tmp_path / "alone", iv))
        key = [("symbol", "ascending"), ("ts", "ascending")]
        assert got.num_rows == want.num_rows > 0
        assert got.sort_by(key).equals(want.sort_by(key))


# ------------------------------------------------------------------------ per-partition mode


def test_a_partition_run_twice_replaces_its_files(tmp_path):
    """Per-partition mode (worker processes): a partition written again (its worker was
    lost, or the task ran twice) replaces its file of each interval, the second run's
    rows, never adds a second file or rows."""
    writer = BarDatasetWriter(tmp_path, per_partition=True)
    first = [piece("A", 120, 1), piece("B", 80, 2)]
    second = [piece("A", 100, 3), piece("B", 90, 4)]
    for attempt, pieces in enumerate((first, second)):
        w = pickle.loads(pickle.dumps(writer)) if attempt else writer
        part = w.part("batch-0")
        for symbol, sessions, b in pieces:
            part.add(symbol, "5m", sessions, b)
            part.add(symbol, "15m", sessions, b)
        part.close()
    writer.close()
    assert sorted(p.parent.name for p in writer.files) == ["interval=15m", "interval=5m"]
    for path in writer.files:
        assert plain(pq.read_table(path)).equals(plain(bars_table(second)))
    leftovers = [p for p in (tmp_path / "bars").rglob("*") if p.is_file()
                 and p not in writer.files]
    assert leftovers == []
