"""Data and exports on object storage (issue 24), against moto's standalone S3 server started
on 127.0.0.1 by this module, with the real clients (pyarrow's S3 file system; polars'
object_store for the README snippet): the sample, a generated universe and the real files,
on threads and on a LocalCluster, compared with the local-disk export; the client's GETs on
the data counted on the wire (none on a cluster); a worker killed mid-run; a run killed
before its commit; a resume; wrong credentials, a missing bucket, a missing extra."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
psutil = pytest.importorskip("psutil")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import sessiondata  # noqa: E402
from sessiondata import Calendar, storage  # noqa: E402
from sessiondata.cli import main  # noqa: E402
from sessiondata.export import validate_export  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_distributed import docs, rows, write_universe  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CME = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"
BTC = DATA / "btc-perp-20211231-20220201_1m.csv"
BUCKET = "sessiondata-test"
WEEKDAYS = Calendar.weekly("UTC", "14:30", "21:00", "Mon-Fri")


class _Server(moto_server.ThreadedMotoServer):
    """moto's S3 server, with every GET noted as (path, whether it came from this process):
    a socket of this process on the peer's port means that the request is this process's."""

    def __init__(self, port: int):
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self.gets: list[tuple[str, bool]] = []
        self._lock = threading.Lock()

    def _server_entry(self) -> None:
        from werkzeug.serving import make_server

        app = moto_server.DomainDispatcherApplication(moto_server.create_backend_app)
        me = psutil.Process()

        def counted(environ, start_response):
            if environ.get("REQUEST_METHOD") == "GET":
                port = int(environ.get("REMOTE_PORT") or 0)
                mine = any(c.laddr and c.laddr.port == port
                           for c in me.net_connections(kind="tcp"))
                with self._lock:
                    self.gets.append((environ.get("PATH_INFO", ""), mine))
            return app(environ, start_response)

        self._server = make_server(self._ip_address, self._port, counted, True)
        self._server_ready_event.set()
        self._server.serve_forever()

    def gets_by_key(self, key_prefix: str, start: int = 0) -> dict[str, int]:
        """GETs of each object under ``key_prefix`` since the ``start``-th GET."""
        with self._lock:
            got = self.gets[start:]
        counts: dict[str, int] = {}
        for path, _ in got:
            if path.startswith(f"/{BUCKET}/{key_prefix}"):
                counts[path] = counts.get(path, 0) + 1
        return counts

    def data_gets(self, key_prefix: str) -> tuple[int, int]:
        """GETs of objects under ``key_prefix``: (from this process, from others)."""
        with self._lock:
            hits = [mine for path, mine in self.gets
                    if path.startswith(f"/{BUCKET}/{key_prefix}")]
        return sum(hits), len(hits) - sum(hits)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3():
    server = _Server(_free_port())
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket=BUCKET)
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="module")
def client(s3):   # after the server: the workers inherit its environment
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=50) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def upload(local: Path, key: str) -> str:
    """A file, or a folder's files, to ``s3://BUCKET/key``; the URL."""
    fs, _ = storage.resolve(f"s3://{BUCKET}/x")
    files = [local] if local.is_file() else sorted(p for p in local.iterdir() if p.is_file())
    for p in files:
        target = f"{BUCKET}/{key}" if local.is_file() else f"{BUCKET}/{key}/{p.name}"
        storage.write_bytes(fs, target, p.read_bytes())
    return f"s3://{BUCKET}/{key}"


def local_copy(url: str, tmp: Path) -> Path:
    return Path(storage.download_export(url, tmp))


def assert_same(local: Path, copy: Path) -> None:
    assert docs(local) == docs(copy)
    assert rows(local, "bars") == rows(copy, "bars")
    assert rows(local, "gaps") == rows(copy, "gaps")
    ma, mb = (json.loads((x / "manifest.json").read_bytes()) for x in (local, copy))
    for key in ("sessions", "symbols", "intervals_with_bars", "calendar", "format"):
        assert ma[key] == mb[key], key
    assert validate_export(copy) == []


@pytest.fixture(scope="module")
def universe(tmp_path_factory, s3):
    folder = write_universe(tmp_path_factory.mktemp("universe") / "data", 6, sessions=5)
    return folder, upload(folder, "universe")


# -- the store itself -------------------------------------------------------------------------


def test_list_read_write_delete(s3):
    fs, path = storage.resolve(f"s3://{BUCKET}/basics")
    assert path == f"{BUCKET}/basics"
    storage.write_bytes(fs, f"{path}/a.csv", b"x")
    storage.write_bytes(fs, f"{path}/sub/b.csv", b"yy")
    one, files = storage.entry(f"s3://{BUCKET}/basics")
    assert one is None and [f.name for f in files] == ["a.csv"]    # not the deeper prefix
    f, _ = storage.entry(f"s3://{BUCKET}/basics/sub/b.csv")
    assert f is not None and f.read_bytes() == b"yy" and f.stat().st_size == 2
    assert str(f) == f"s3://{BUCKET}/basics/sub/b.csv"
    storage.delete(fs, storage.list_files(fs, path))
    assert storage.list_files(fs, path) == []
    local, lpath = storage.resolve("file:///tmp/x")
    assert lpath == "/tmp/x" and local.type_name == "local"


def test_a_missing_bucket_and_prefix_are_one_line_naming_the_url(s3, tmp_path, capsys):
    with pytest.raises(storage.StorageError, match=r"^s3://no-such-bucket-x/data: no such "
                                                   r"bucket"):
        storage.entry("s3://no-such-bucket-x/data")
    with pytest.raises(storage.StorageError, match=f"^s3://{BUCKET}/nothing: no such file"):
        storage.entry(f"s3://{BUCKET}/nothing")
    code = main(["run", "s3://no-such-bucket-x/data", "--calendar", "24/7", "--out",
                 str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "s3://no-such-bucket-x/data" in err, err
    code = main(["run", "--out", "s3://no-such-bucket-x/out", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert "s3://no-such-bucket-x/out: no such bucket" in err, err
    code = main(["validate", f"s3://{BUCKET}/never-written"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"s3://{BUCKET}/never-written: no committed export" in err, err


def _auth(free_requests: float) -> None:
    """What moto's /moto-api/reset-auth does (the server runs in this process)."""
    from moto import settings
    from moto.core.responses import ActionAuthenticatorMixin

    settings.INITIAL_NO_AUTH_ACTION_COUNT = free_requests
    ActionAuthenticatorMixin.request_count = 0


def test_wrong_credentials_are_one_line_naming_the_url(s3, capsys):
    """moto checks the key once authentication is on: a key it never issued is refused,
    said in one line with the URL.  (moto's signature check refuses pyarrow's signed
    requests even with a key it issued, so the accepted case is not tested here.)"""
    _auth(0)
    try:
        code = main(["validate", f"s3://{BUCKET}/anything"])
        err = capsys.readouterr().err.strip()
        code2 = main(["run", f"s3://{BUCKET}/universe", "--calendar", "24/7", "--no-export"])
        err2 = capsys.readouterr().err.strip()
    finally:
        _auth(float("inf"))
    assert code == 2 and err.count("\n") == 0, err
    assert f"s3://{BUCKET}/anything: access denied (check the credentials" in err, err
    assert code2 == 2 and err2.count("\n") == 0, err2
    assert f"s3://{BUCKET}/universe: access denied" in err2, err2


def test_a_store_without_its_extra_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_gcsfs(name, *a, **kw):
        if name in ("gcsfs", "adlfs"):
            raise ImportError(name)
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_gcsfs)
    monkeypatch.setattr("importlib.import_module", lambda name: no_gcsfs(name))
    with pytest.raises(ImportError, match=r"gs://b/x: .*pip install 'sessiondata\[gcs\]'"):
        storage.resolve("gs://b/x")
    with pytest.raises(ImportError, match=r"az://c/x: .*pip install 'sessiondata\[azure\]'"):
        storage.resolve("az://c/x")


def test_storage_options_are_checked():
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        storage.parse_options(["endpoint_url"])
    with pytest.raises(ValueError, match="unknown storage option"):
        storage.resolve("s3://b/x", storage_options={"colour": "red"})


def test_the_readers_take_urls_and_a_filesystem(s3, tmp_path):
    """read_bars of a file, a prefix and a gzip file at URLs equals the local read; a bad
    row is named by its URL and line, as a local file's by its path."""
    import gzip

    from sessiondata.readers import ReadError, read_bars

    good = "timestamp,open,high,low,close,volume\n" + "".join(
        f"2024-03-04T14:{m:02d}:00Z,1,2,0.5,1.5,10\n" for m in range(30, 40))
    (tmp_path / "AAA.csv").write_text(good)
    (tmp_path / "BBB.csv.gz").write_bytes(gzip.compress(good.encode()))
    prefix = upload(tmp_path, "readers")
    local = read_bars(tmp_path)
    remote = read_bars(prefix)
    assert sorted(remote.bars) == sorted(local.bars) == ["AAA", "BBB"]
    for sym in local.bars:
        assert (remote.bars[sym].ts == local.bars[sym].ts).all()
        assert (remote.bars[sym].close == local.bars[sym].close).all()
    fs, _ = storage.resolve(prefix)
    one = read_bars(f"{BUCKET}/readers/BBB.csv.gz", filesystem=fs)
    assert list(one.bars) == ["BBB"]
    bad = good.replace("2024-03-04T14:32:00Z,1,2,", "2024-03-04T14:32:00Z,1,x,")
    url = upload(_write(tmp_path / "bad" / "CCC.csv", bad), "readers-bad/CCC.csv")
    with pytest.raises(ReadError, match=f"^{url}, line 4: "):
        read_bars(url)
    with pytest.raises(ReadError, match=f"s3://{BUCKET}/readers-empty: no such file"):
        read_bars(f"s3://{BUCKET}/readers-empty")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- the same export --------------------------------------------------------------------------


def test_the_sample_to_the_store_equals_the_local_export(s3, tmp_path):
    sessiondata.run(out=tmp_path / "local")
    sessiondata.run(out=f"s3://{BUCKET}/sample")
    assert_same(tmp_path / "local", local_copy(f"s3://{BUCKET}/sample", tmp_path / "copy"))


def test_a_universe_on_the_store_on_threads_equals_the_local_run(s3, universe, tmp_path):
    folder, url = universe
    sessiondata.run(folder, WEEKDAYS, out=tmp_path / "local")
    sessiondata.run(url, WEEKDAYS, out=f"s3://{BUCKET}/threads-out")
    assert_same(tmp_path / "local", local_copy(f"s3://{BUCKET}/threads-out", tmp_path / "c"))


def test_on_a_cluster_the_client_reads_no_data(s3, client, universe, tmp_path):
    """The workers read their partitions and write their bars; the client lists the prefix
    and GETs nothing of the data (counted on the server, by the requesting process)."""
    folder, url = universe
    sessiondata.run(folder, WEEKDAYS, out=tmp_path / "local")
    before = s3.data_gets("universe/")
    sessiondata.run(url, WEEKDAYS, out=f"s3://{BUCKET}/dask-out", client=client)
    after = s3.data_gets("universe/")
    mine, theirs = after[0] - before[0], after[1] - before[1]
    assert mine == 0, "the client read data"
    assert theirs >= 6           # every file, read by a worker
    assert_same(tmp_path / "local", local_copy(f"s3://{BUCKET}/dask-out", tmp_path / "c"))
    # The bar files came from the workers too: no bar object left after the run is local.
    fs, _ = storage.resolve(f"s3://{BUCKET}/dask-out")
    record = storage.latest(fs, f"{BUCKET}/dask-out")
    assert any(f.startswith(f"{record['root']}/bars/") for f in record["files"])


def test_a_filesystem_argument_instead_of_a_url(s3, universe, tmp_path):
    import pyarrow.fs as pafs

    folder, _ = universe
    fs = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"].split("://")[1],
                           scheme="http", region="us-east-1",
                           # moto 5.2.1 answers CompleteMultipartUpload with a body pyarrow
                           # refuses (getmoto/moto#10055): small objects in one PutObject
                           allow_delayed_open=True)
    sessiondata.run(folder, WEEKDAYS, out=tmp_path / "local")
    sessiondata.run(f"{BUCKET}/universe", WEEKDAYS, out=f"{BUCKET}/fs-out", filesystem=fs)
    assert_same(tmp_path / "local", Path(storage.download_export(
        f"{BUCKET}/fs-out", tmp_path / "c", filesystem=fs)))


@pytest.mark.data
@pytest.mark.skipif(not (CME.exists() and BTC.exists()), reason="no real data in ../shared/data")
def test_the_real_files_from_the_store_on_threads_and_a_cluster(s3, client, tmp_path):
    pytest.importorskip("exchange_calendars")
    cme = tmp_path / "cme"
    cme.mkdir()
    for name in ("EURA.csv.gz", "EURB.csv.gz"):   # two partitions of the real file
        shutil.copy(CME, cme / name)
    cme_url = upload(cme, "real/cme")
    btc_url = upload(BTC, f"real/{BTC.name}")
    for local, url, cal, options in (
            (cme, cme_url, Calendar.exchange("CME_GLOBEX"), {"stamp": "end"}),
            (BTC, btc_url, Calendar.always(), {})):
        name = Path(url).name
        sessiondata.run(local, cal, out=tmp_path / f"{name}-local", read_options=options)
        for how, kw in (("threads", {}), ("dask", {"client": client})):
            out = f"s3://{BUCKET}/real-out/{name}-{how}"
            sessiondata.run(url, cal, out=out, read_options=options, **kw)
            assert_same(tmp_path / f"{name}-local", local_copy(out, tmp_path / f"{name}-{how}"))


def test_files_with_a_symbol_column_are_probed_on_the_workers(s3, client, universe,
                                                              tmp_path):
    """Files that name their symbols in a column are one partition (symbols may span
    files); which files do is read from their headers on the workers, not here."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder, _ = universe
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for k, group in enumerate((["S000", "S001", "S002"], ["S003", "S004", "S005"])):
        parts = []
        for name in group:
            t = pq.read_table(folder / f"{name}.parquet")
            parts.append(t.append_column("symbol", pa.array([name] * t.num_rows)))
        pq.write_table(pa.concat_tables(parts), mixed / f"part{k}.parquet")
    url = upload(mixed, "mixed")
    sessiondata.run(mixed, WEEKDAYS, out=tmp_path / "local")
    before = s3.data_gets("mixed/")
    sessiondata.run(url, WEEKDAYS, out=f"s3://{BUCKET}/mixed-out", client=client)
    after = s3.data_gets("mixed/")
    assert after[0] - before[0] == 0 and after[1] - before[1] >= 2
    assert_same(tmp_path / "local", local_copy(f"s3://{BUCKET}/mixed-out", tmp_path / "c"))


# -- faults -----------------------------------------------------------------------------------


def test_a_worker_killed_mid_run_changes_nothing(s3, client, universe, tmp_path):
    folder, url = universe
    sessiondata.run(folder, WEEKDAYS, out=tmp_path / "local")
    pids = client.run(os.getpid)
    killed: list[str] = []

    def progress(symbols: int, bars: int) -> None:
        if symbols == 2 and not killed:
            victim = sorted(pids)[0]
            killed.append(victim)
            os.kill(pids[victim], signal.SIGKILL)

    sessiondata.run(url, WEEKDAYS, out=f"s3://{BUCKET}/killed-worker", client=client,
                    progress=progress)
    assert killed
    assert_same(tmp_path / "local", local_copy(f"s3://{BUCKET}/killed-worker", tmp_path / "c"))
    client.wait_for_workers(2, timeout=60)


def test_a_run_killed_before_its_commit_leaves_the_previous_export(s3, universe, tmp_path,
                                                                   capsys):
    """A process SIGKILLed in the middle of its run (bars written, no commit): the export
    is the previous run's, whole; the dead run's files are listed; the next run removes
    them."""
    folder, url = universe
    out = f"s3://{BUCKET}/kill-before-commit"
    sessiondata.run(out=out)                               # the previous export: the sample
    fs, root = storage.resolve(out)
    first = storage.committed(fs, root)
    script = textwrap.dedent(f"""
        import os, signal, sessiondata
        from sessiondata import Calendar
        def progress(symbols, bars):
            if symbols == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        sessiondata.run({url!r}, Calendar.weekly("UTC", "14:30", "21:00", "Mon-Fri"),
                        out={out!r}, progress=progress, threads=1)
    """)
    done = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), timeout=300)
    assert done.returncode == -signal.SIGKILL
    assert storage.committed(fs, root) == first            # no new commit
    left = storage.uncommitted(fs, root)
    assert len(left) == 1 and any("/bars/" in p for p in next(iter(left.values())))
    sessiondata.run(out=tmp_path / "sample")
    assert_same(tmp_path / "sample", local_copy(out, tmp_path / "c"))
    assert main(["validate", out]) == 0
    said = capsys.readouterr().out
    run = next(iter(left))
    assert f"{out}/runs/{run}/ holds {len(left[run])} file(s) of a run that did not commit" \
        in said, said
    sessiondata.run(out=out)                               # the next run cleans up
    assert storage.uncommitted(fs, root) == {}
    sessiondata.run(out=out)                               # a third commit: the first goes
    kept = storage.committed(fs, root)
    assert len(kept) == 2 and first[0] not in kept
    assert storage.list_files(fs, storage.run_prefix(root, first[0])) == []


def test_a_failed_run_names_its_files_for_cleanup(s3, monkeypatch):
    out = f"s3://{BUCKET}/failed-commit"
    sessiondata.run(out=out)

    def boom(*a, **kw):
        raise OSError("the network went away")

    monkeypatch.setattr(storage, "commit", boom)
    with pytest.raises(OSError) as info:
        sessiondata.run(out=out)
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "not committed" in note and f"{out}/runs/" in note
    monkeypatch.undo()
    fs, root = storage.resolve(out)
    assert len(storage.committed(fs, root)) == 1 and len(storage.uncommitted(fs, root)) == 1


def test_resume_on_the_store_reruns_only_the_unfinished(s3, client, universe, tmp_path):
    folder, url = universe
    out = f"s3://{BUCKET}/resumed"
    sessiondata.run(folder, WEEKDAYS, out=tmp_path / "local")

    class Stop(Exception):
        pass

    def interrupt(symbols: int, bars: int) -> None:
        if symbols >= 3:
            raise Stop

    with pytest.raises(Stop):
        sessiondata.run(url, WEEKDAYS, out=out, client=client, progress=interrupt)
    start = len(s3.gets)
    sessiondata.run(url, WEEKDAYS, out=out, client=client, resume=True)
    # Every file's header is probed (a GET of its footer); the finished partitions' files
    # are not read again (fewer GETs than the files read in full).
    per_file = s3.gets_by_key("universe/", start)
    assert len(per_file) == 6
    full = max(per_file.values())
    reused = [k for k, n in per_file.items() if n < full]
    assert len(reused) >= 3, per_file
    assert_same(tmp_path / "local", local_copy(out, tmp_path / "c"))


# -- the command line and the README's snippets -----------------------------------------------


def test_the_cli_on_two_local_workers_equals_the_local_run(s3, universe, tmp_path, capsys,
                                                           monkeypatch):
    pytest.importorskip("exchange_calendars")
    pytest.importorskip("plotly")
    folder, url = universe
    assert main(["run", str(folder), "--calendar", "XNYS", "--out", str(tmp_path / "local"),
                 "-q"]) == 0
    out = f"s3://{BUCKET}/cli-out"
    monkeypatch.chdir(tmp_path)   # run --report writes report.html here for an export on a store
    assert main(["run", url, "--calendar", "XNYS", "--out", out, "--scheduler", "local:2",
                 "--report", "-q"]) == 0
    assert (tmp_path / "report.html").stat().st_size > 1000
    assert_same(tmp_path / "local", local_copy(out, tmp_path / "c"))
    capsys.readouterr()
    assert main(["validate", out]) == 0
    assert capsys.readouterr().out.startswith(f"OK   {out}: ")
    rule = ["--fail-under", "completeness=99.5", "--format", "json", "--all"]
    code_local = main(["check", str(tmp_path / "local"), *rule])
    said_local = capsys.readouterr().out
    assert main(["check", out, *rule]) == code_local
    assert capsys.readouterr().out == said_local and said_local
    assert main(["report", out, "--output", str(tmp_path / "r.html"), "-q"]) == 0
    assert main(["diff", str(tmp_path / "local"), out, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["new"] == out
    assert (tmp_path / "r.html").stat().st_size > 1000


def test_the_readme_snippets_read_the_export_from_the_store(s3, tmp_path):
    """The README's pyarrow and polars snippets, run as written against the server."""
    sessiondata.run(out=tmp_path / "local")
    sessiondata.run(out=f"s3://{BUCKET}/readme")
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Object storage", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    assert len(blocks) >= 2
    expected = rows(tmp_path / "local", "bars")
    for block in blocks:
        scope: dict = {}
        code = block.replace("s3://my-bucket/out", f"s3://{BUCKET}/readme") \
                    .replace("my-bucket/out", f"{BUCKET}/readme")
        exec(compile(code, "README.md", "exec"), scope)
        table = scope["bars"]
        if not hasattr(table, "to_pylist"):     # polars
            table = table.to_arrow()
        assert table.num_rows == len([r for r in expected]), block


def test_halts_from_the_store(s3, tmp_path):
    """``--halts s3://...``: BOLT's 37 minutes are a halt, as with the local file."""
    halts = tmp_path / "halts.csv"
    halts.write_text("BOLT,2024-11-27 13:42,2024-11-27 14:19\n")
    url = upload(halts, "halts/halts.csv")
    said = {}
    for name, where in (("local", str(halts)), ("store", url)):
        summary = tmp_path / f"{name}.json"
        assert main(["run", "--no-export", "-q", "--json-summary", str(summary), "--halts",
                     where, "--tz", "America/New_York"]) == 0
        said[name] = json.loads(summary.read_text())["totals"]["1m"]["kinds"]
    assert said["store"] == said["local"]
    assert said["store"]["halt"] == {"gaps": 1, "missing": 37}
    assert main(["run", "--no-export", "-q", "--halts", f"s3://{BUCKET}/halts/none.csv"]) == 2
