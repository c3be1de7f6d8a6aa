"""The main job on a Dask cluster (``sessiondata.distributed``) on a LocalCluster of 2 worker
processes: the same exports as the threaded run (the sample, the real files, a generated
Parquet universe), a worker killed during a run, a partition whose process dies, a run
interrupted and resumed, and the bad inputs (an unreachable scheduler, a file or a staging
folder a worker cannot read, bad data)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import sessiondata  # noqa: E402
from sessiondata import Calendar, Engine, Source  # noqa: E402
from sessiondata import distributed as sd  # noqa: E402
from sessiondata import job, sample  # noqa: E402
from sessiondata.engine import Loaded  # noqa: E402
from sessiondata.export import BarDatasetWriter, read_dataset, run_export, validate_export  # noqa: E402
from sessiondata.readers import ReadError  # noqa: E402
from sessiondata.documents import dumps, iter_session_docs  # noqa: E402

# The workers cannot import this module: what it defines travels by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CME = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
BTC = DATA / "btc-perp-20211231-20220201_1m.csv"
MINUTE = 60_000_000_000


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=50) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(autouse=True)
def _two_workers(request):
    """Every test starts with both workers up (a test may have killed one)."""
    if "client" in request.fixturenames:
        request.getfixturevalue("client").wait_for_workers(2, timeout=60)


# -- comparing exports ----------------------------------------------------------------------


def documents(result) -> list[bytes]:
    """A run's session documents as the JSON writer writes them (NaN compares equal)."""
    return [dumps(doc) for doc in iter_session_docs(result)]


def docs(out: Path) -> dict[str, object]:
    return {p.name: json.loads(p.read_bytes()) for p in sorted((out / "sessions").glob("*"))}


def rows(out: Path, what: str) -> list[dict]:
    import pyarrow as pa

    t = read_dataset(out, what)
    for i, field in enumerate(t.schema):
        if pa.types.is_dictionary(field.type):
            t = t.set_column(i, field.name, t.column(i).cast(field.type.value_type))
    keys = ["interval", "symbol", "session"] + [
        c for c in t.column_names if c not in ("interval", "symbol", "session")]
    return t.sort_by([(k, "ascending") for k in keys]).to_pylist()


def assert_same_export(a: Path, b: Path) -> None:
    assert docs(a) == docs(b)
    assert rows(a, "bars") == rows(b, "bars")
    assert rows(a, "gaps") == rows(b, "gaps")
    ma, mb = (json.loads((x / "manifest.json").read_bytes()) for x in (a, b))
    for key in ("sessions", "symbols", "intervals_with_bars", "calendar", "format"):
        assert ma[key] == mb[key], key
    assert validate_export(b) == []
    left = [p for p in b.parent.iterdir() if p.name.startswith(f".{b.name}.")]
    assert not left, left   # no staging folder left beside a finished export


# -- data -----------------------------------------------------------------------------------


def write_universe(folder: Path, n: int, sessions: int = 12, seed: int = 7) -> Path:
    """``n`` Parquet files (a symbol each) of XNYS-like weekday 1m bars, 14:30-21:00 UTC,
    with ~1% of the minutes missing and a halt here and there; symbols start and end on
    different days, so the first and last sessions are cut by the run's span."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    days = np.arange(np.datetime64("2024-03-04"), np.datetime64("2024-04-30"))
    days = days[np.is_busday(days)][:sessions]
    minutes = np.arange(390, dtype=np.int64) * MINUTE
    for i in range(n):
        first, last = int(rng.integers(0, 2)), len(days) - int(rng.integers(0, 2))
        day_ns = (days[first:last].astype("datetime64[ns]").astype(np.int64)
                  + (14 * 60 + 30) * MINUTE)
        ts = (day_ns[:, None] + minutes[None, :]).ravel()
        keep = rng.random(len(ts)) >= 0.01
        if i % 3 == 0:
            at = int(rng.integers(0, len(ts) - 60))
            keep[at:at + 45] = False
        ts = ts[keep][int(rng.integers(0, 30)):]
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, len(ts))))
        open_ = np.r_[100.0, close[:-1]]
        pq.write_table(pa.table({
            "timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")),
            "open": open_,
            "high": np.maximum(open_, close) * 1.0001,
            "low": np.minimum(open_, close) * 0.9999,
            "close": close,
            "volume": np.round(rng.standard_exponential(len(ts)) * 1000.0),
        }), folder / f"S{i:03d}.parquet")
    return folder


@pytest.fixture(scope="module")
def universe(tmp_path_factory):
    return write_universe(tmp_path_factory.mktemp("universe") / "data", 10)


WEEKDAYS = Calendar.weekly("UTC", "14:30", "21:00", "Mon-Fri")


# -- identical results ----------------------------------------------------------------------


def test_the_sample_on_two_workers_equals_the_threaded_run(client, tmp_path):
    sessiondata.run(out=tmp_path / "threads")
    result = sessiondata.run(out=tmp_path / "dask", client=client)
    assert_same_export(tmp_path / "threads", tmp_path / "dask")
    assert result.symbols == ["ACME", "BOLT", "CRUX", "DELT", "NEWT"]


def test_bars_in_memory_without_export(client):
    smp = sample.generate(calendar=sample.sample_calendar())
    cal = sample.sample_calendar()
    one = sessiondata.run(dict(smp.bars), cal)
    two = sessiondata.run(dict(smp.bars), cal, client=client)
    assert documents(one) == documents(two)


def test_files_without_export(client, universe):
    """The first and last sessions held back (the span is known only once every file is
    read) are finished on the client, as on one machine."""
    one = sessiondata.run(universe, WEEKDAYS, on_bad="drop")
    two = sessiondata.run(universe, WEEKDAYS, on_bad="drop", client=client)
    assert documents(one) == documents(two)
    assert one.dropped == two.dropped


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_generated_universe_on_two_workers_equals_the_threaded_run(client, universe,
                                                                      tmp_path, fmt):
    kw = dict(fmt=fmt, export_base=fmt == "csv")
    sessiondata.run(universe, WEEKDAYS, out=tmp_path / "threads", **kw)
    sessiondata.run(universe, WEEKDAYS, out=tmp_path / "dask", client=client, **kw)
    assert_same_export(tmp_path / "threads", tmp_path / "dask")
    # One file per partition and interval, none of them temporary.
    files = sorted(p.name for p in (tmp_path / "dask" / "bars").rglob("*") if p.is_file())
    assert not [f for f in files if f.startswith(".")]


@pytest.mark.data
@pytest.mark.skipif(not (CME.exists() and BTC.exists()), reason="no real data in ../shared/data")
def test_the_real_files_on_two_workers_equal_the_threaded_run(client, tmp_path):
    pytest.importorskip("exchange_calendars")
    cme = tmp_path / "cme"
    cme.mkdir()
    for name in ("EURA.csv.gz", "EURB.csv.gz"):   # two partitions of the real file
        shutil.copy(CME, cme / name)
    for data, cal, options in ((cme, Calendar.exchange("CME_GLOBEX"), {"stamp": "end"}),
                               (BTC, Calendar.always(), {})):
        a, b = tmp_path / f"{Path(data).name}-threads", tmp_path / f"{Path(data).name}-dask"
        sessiondata.run(data, cal, out=a, read_options=options)
        sessiondata.run(data, cal, out=b, read_options=options, client=client)
        assert_same_export(a, b)


# -- faults ---------------------------------------------------------------------------------


def test_a_worker_killed_during_the_run_changes_nothing(client, universe, tmp_path):
    sessiondata.run(universe, WEEKDAYS, out=tmp_path / "threads")
    import signal

    pids = client.run(os.getpid)   # worker address -> its process
    killed = []

    def progress(symbols: int, bars: int) -> None:
        if symbols == 2 and not killed:   # the middle of the run: kill a worker process
            victim = sorted(pids)[0]
            killed.append(victim)
            os.kill(pids[victim], signal.SIGKILL)

    sessiondata.run(universe, WEEKDAYS, out=tmp_path / "dask", client=client,
                    progress=progress)
    assert killed
    assert_same_export(tmp_path / "threads", tmp_path / "dask")
    client.wait_for_workers(2, timeout=60)
    assert killed[0] not in client.scheduler_info()["workers"]   # it did die (and restart)


def dies_once(source: Source, marker: Path) -> Source:
    """The source, whose first load kills its worker process (after the marker is set)."""
    load = source.load

    def first_time_dies() -> Loaded:
        if not marker.exists():
            marker.write_text("died")
            os._exit(1)
        return load()

    return Source(source.name, first_time_dies, source.span)


def engine(client=None, **kw) -> Engine:
    executor = sd.DaskExecutor(client) if client is not None else None
    return Engine(WEEKDAYS, executor=executor, **kw)


def test_the_workers_write_the_session_documents_byte_for_byte(client, tmp_path,
                                                              monkeypatch):
    """Under Dask the session documents are built on the workers, a range of sessions a
    task (``DaskExecutor.write_docs``): the same bytes as the threaded run's, on a run long
    enough for several tasks, with gaps of every kind, anomalies and a symbol event."""
    from sessiondata import documents as doc_module
    from sessiondata.engine import SymbolEvent
    from sessiondata.synthetic import anomaly_universe

    u = anomaly_universe(n_symbols=4, n_sessions=70, seed=5, rates={"clock_stamp": 0.0})
    day = str(u.calendar.sessions("2024-02-01", "2024-02-10")[0])
    at = int(u.calendar.session_windows(day).open_ns[0]) + 90 * MINUTE
    symbol = sorted(u.bars)[1]
    events = [SymbolEvent(day, at, symbol, "remove", f"-{symbol}")]
    threads = sessiondata.run(u.bars, u.calendar, out=tmp_path / "threads", events=events)
    built_here = []
    real = doc_module.start_session_docs

    def spy(run, folder, **kw):   # this process: nothing under Dask
        built_here.append(len(run.sessions))
        return real(run, folder, **kw)

    monkeypatch.setattr("sessiondata.export.start_session_docs", spy)
    dask = sessiondata.run(u.bars, u.calendar, out=tmp_path / "dask", events=events,
                           client=client)
    assert built_here == []
    assert len(threads.sessions) == 70 and len(threads.anomalies) > 0
    names = sorted(p.name for p in (tmp_path / "threads" / "sessions").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "dask" / "sessions").iterdir())
    assert len(names) == 70
    for name in names:
        assert ((tmp_path / "threads" / "sessions" / name).read_bytes()
                == (tmp_path / "dask" / "sessions" / name).read_bytes()), name
    assert documents(dask) == documents(threads)


def test_the_documents_of_a_range_of_sessions_are_the_runs():
    """``RunResult.session_range`` (what a worker builds documents from) holds what the
    documents of its sessions are made of: the same bytes, for any range."""
    import pickle

    from sessiondata.synthetic import anomaly_universe

    u = anomaly_universe(n_symbols=3, n_sessions=12, seed=5, rates={"clock_stamp": 0.0})
    run = sessiondata.run(u.bars, u.calendar)
    assert len(run.anomalies) > 0
    whole = documents(run)
    for a, b in [(0, 12), (0, 1), (3, 7), (11, 12), (5, 5)]:
        part = run.session_range(a, b)
        assert list(part.sessions) == list(run.sessions[a:b])
        assert documents(part) == whole[a:b], (a, b)
        # as a worker gets it: pickled, its integer columns narrowed on the way
        assert documents(pickle.loads(pickle.dumps(part))) == whole[a:b], (a, b)


def test_a_partition_whose_process_dies_is_run_again_once(client, universe, tmp_path):
    sources = job.file_sources(universe, WEEKDAYS, "1m", "raise", {})
    run_export(engine(), sources, tmp_path / "threads")
    sources[3] = dies_once(sources[3], tmp_path / "died")
    sd.run_export(engine(client), sources, tmp_path / "dask", job="test")
    assert (tmp_path / "died").exists()
    assert_same_export(tmp_path / "threads", tmp_path / "dask")


def test_a_partition_written_twice_leaves_one_file(tmp_path):
    import pickle

    bars = sample.generate(calendar=sample.sample_calendar()).bars
    writer = BarDatasetWriter(tmp_path, "parquet", per_partition=True)
    for attempt in range(2):   # the first run's worker died after writing: a rerun
        w = pickle.loads(pickle.dumps(writer)) if attempt else writer
        part = w.part("ACME.parquet")
        b = bars["ACME"]
        part.add("ACME", "1m", b.ts.astype("datetime64[D]"), b)
        part.close()
    writer.close()
    assert [p.name for p in writer.files] == [writer.files[0].name]
    assert writer.files[0].name.startswith("part-ACME.parquet-")
    import pyarrow.parquet as pq

    assert pq.read_table(writer.files[0]).num_rows == len(bars["ACME"])
    with pytest.raises(TypeError, match="per_partition"):
        pickle.dumps(BarDatasetWriter(tmp_path / "x"))


def counting(source: Source, log: Path, pause: float = 0.0) -> Source:
    load = source.load

    def logged() -> Loaded:
        with open(log, "a") as f:
            f.write(source.name + "\n")
        time.sleep(pause)
        return load()

    return Source(source.name, logged, source.span)


def test_an_interrupted_run_resumes_with_the_partitions_it_finished(client, universe,
                                                                    tmp_path):
    out = tmp_path / "dask"
    run_export(engine(), job.file_sources(universe, WEEKDAYS, "1m", "raise", {}),
                        tmp_path / "threads")
    log = tmp_path / "loads.txt"

    def sources(pause=0.0):
        return [counting(s, log, pause)
                for s in job.file_sources(universe, WEEKDAYS, "1m", "raise", {})]

    def interrupt(symbols: int, bars: int) -> None:
        if symbols >= 4:
            raise KeyboardInterrupt

    first = engine(client, progress=interrupt)
    with pytest.raises(KeyboardInterrupt):
        sd.run_export(first, sources(0.3), out, job="the job")
    assert not out.exists()                     # no half-written export
    assert len(sd.staging_folders(out)) == 1    # kept for a resume
    time.sleep(0.7)   # tasks already running when the run stopped finish meanwhile
    log.unlink()
    again = engine(client)
    sd.run_export(again, sources(), out, job="the job", resume=True)
    loads = log.read_text().split()
    assert again.executor.reused >= 4 and again.executor.submitted >= 1
    assert len(loads) == 10 - again.executor.reused == again.executor.submitted
    assert_same_export(tmp_path / "threads", out)


def test_resume_of_another_job_starts_afresh(client, universe, tmp_path):
    out = tmp_path / "dask"

    def interrupt(symbols: int, bars: int) -> None:
        if symbols >= 3:
            raise KeyboardInterrupt

    sources = job.file_sources(universe, WEEKDAYS, "1m", "raise", {})
    with pytest.raises(KeyboardInterrupt):
        sd.run_export(engine(client, progress=interrupt), sources, out, job="a")
    other = engine(client, derived=("5m",))
    sd.run_export(other, sources, out, job="b", resume=True)
    assert other.executor.reused == 0
    assert sorted(p.name for p in (out / "bars").iterdir()) == ["interval=5m"]


def test_resume_through_sessiondata_run(client, universe, tmp_path):
    out = tmp_path / "dask"

    def interrupt(symbols: int, bars: int) -> None:
        if symbols >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sessiondata.run(universe, WEEKDAYS, out=out, client=client, progress=interrupt)
    sessiondata.run(universe, WEEKDAYS, out=out, client=client, resume=True)
    sessiondata.run(universe, WEEKDAYS, out=tmp_path / "threads")
    assert_same_export(tmp_path / "threads", out)
    with pytest.raises(ValueError, match="resume"):
        sessiondata.run(universe, WEEKDAYS, out=out, resume=True)


# -- bad input ------------------------------------------------------------------------------


def test_an_unreachable_scheduler_is_named_within_the_timeout(tmp_path, capsys, monkeypatch):
    from sessiondata.cli import main

    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=r"tcp://127\.0\.0\.1:9 within 2 s"):
        with sd.cluster("tcp://127.0.0.1:9", timeout=2):
            pass
    assert time.monotonic() - t0 < 15
    monkeypatch.setattr(sd, "CONNECT_TIMEOUT_S", 1.0)
    out = tmp_path / "out"
    code = main(["run", "--scheduler", "tcp://127.0.0.1:9", "--out", str(out), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert not tmp_path.joinpath("out").exists() and not list(tmp_path.iterdir())
    assert main(["run", "--resume", "--out", str(out), "-q"]) == 2
    assert "--resume" in capsys.readouterr().err
    for spec in ("local:zero", "foo"):
        with pytest.raises(ValueError, match="local:N"):
            with sd.cluster(spec):
                pass


def test_a_file_a_worker_cannot_read_names_the_worker_and_the_path(client, universe,
                                                                   tmp_path):
    data = tmp_path / "data"
    shutil.copytree(universe, data)
    sources = job.file_sources(data, WEEKDAYS, "1m", "raise", {})
    (data / "S004.parquet").unlink()   # listed by the client, gone for the worker
    with pytest.raises(ReadError) as info:
        sd.run_export(engine(client), sources, tmp_path / "out", job="x")
    message = str(info.value)
    assert str(data / "S004.parquet") in message
    assert "on Dask worker tcp://" in message
    assert not (tmp_path / "out").exists()


def test_a_staging_folder_a_worker_cannot_reach_is_named(client, tmp_path):
    mark = (str(tmp_path / "elsewhere" / "_reachable"), "token")
    failure = client.submit(sd._run_task, len, [1, 2], "000000", "p", None, mark,
                            pure=False).result()
    with pytest.raises(FileNotFoundError) as info:
        failure.reraise()
    assert str(tmp_path / "elsewhere") in str(info.value)
    assert "on Dask worker tcp://" in str(info.value)
    assert "every worker" in str(info.value)


def test_bad_data_is_the_same_error_as_on_one_machine(client, universe, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(universe, data)
    bad = data / "S002.csv"
    (data / "S002.parquet").unlink()
    bad.write_text("timestamp,open,high,low,close,volume\n"
                   "2024-03-04T14:30:00Z,10,11,9,10.5,100\n"
                   "2024-03-04T14:31:00Z,10,9,11,10.5,100\n")   # high below low
    errors = []
    for client_ in (None, client):
        with pytest.raises(Exception) as info:
            sessiondata.run(data, WEEKDAYS, out=tmp_path / f"out-{client_ is None}",
                            client=client_)
        errors.append(info.value)
        assert not (tmp_path / f"out-{client_ is None}").exists()
    one, two = errors
    assert type(one) is type(two)
    assert str(one) == str(two)
    assert "S002.csv" in str(two) and "line 3" in str(two)


def test_the_cli_runs_on_local_workers(tmp_path, capsys):
    from sessiondata.cli import main

    assert main(["run", "--out", str(tmp_path / "threads"), "-q"]) == 0
    assert main(["run", "--scheduler", "local:2", "--out", str(tmp_path / "dask"), "-q"]) == 0
    assert_same_export(tmp_path / "threads", tmp_path / "dask")


def test_a_symbol_result_pickles_small_and_back_exactly():
    """What a worker sends back (``SymbolResult``) pickles with its integer counts and gap
    columns narrowed, and comes back equal, dtypes and all: also fractions, -0.0, NaN and
    values past 2**32, which stay as they are."""
    import pickle

    from sessiondata.results import SymbolResult

    k = 252
    rng = np.random.default_rng(1)
    ints = rng.integers(0, 390, (4, k)).astype(np.float64)
    counts = {"1m": np.vstack([ints, ints[2] * 0.75]),
              "5m": np.vstack([ints, ints[2]]).astype(np.int64),
              "1h": np.vstack([ints[:3], np.full((1, k), 2.0**40), ints[2][None]]),
              "1d": np.vstack([ints[:3], np.r_[-0.0, ints[3, 1:]][None], ints[2][None]]),
              "15m": np.vstack([ints[:3], np.r_[np.nan, ints[3, 1:]][None], ints[2][None]])}
    g = 1000
    gaps = {"1m": (np.sort(rng.integers(0, k, g)), rng.integers(0, 2**62, g),
                   rng.integers(0, 2**62, g), rng.integers(1, 390, g)),
            "5m": tuple(np.empty(0, np.int64) for _ in range(4))}
    r = SymbolResult("X", np.ones(k, bool), np.zeros(k, np.int64), np.zeros(k, np.int64),
                     counts, gaps, {3: 5}, {4: {"x": 1}})
    raw = pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)
    back = pickle.loads(raw)
    for name, c in counts.items():
        got = back.counts[name]
        assert got.dtype == c.dtype and got.shape == c.shape, name
        np.testing.assert_array_equal(got, c, err_msg=name)
        assert (np.signbit(got) == np.signbit(c)).all(), name
    for name, cols in gaps.items():
        for a, b in zip(back.gaps[name], cols):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    assert (back.unknown, back.rejected, back.symbol) == (r.unknown, r.rejected, r.symbol)
    wide = len(pickle.dumps(vars(r), protocol=pickle.HIGHEST_PROTOCOL))
    assert len(raw) < 0.8 * wide
