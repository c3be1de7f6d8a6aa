"""The main job's export on an object store (``--out s3://bucket/out``): the same files as an
export on disk, written under a run's prefix and committed by its manifest, written last
(the protocol is :mod:`sessiondata.storage`'s).

The engine's partitions write their bar files straight to the store (on a Dask cluster, from
the workers: one object per partition and interval, replaced whole when a partition runs
again); this process writes the session documents, the gap dataset and the manifest, then
the commit record.  A run that fails keeps its files under ``OUT/runs/<run>/`` (the error
says where); the next run into ``OUT`` removes them, or continues that run with ``resume``
when the job is the same.

The run itself is ``export.run_export``'s, the one export path: this module gives it the
stage of a store (:func:`store_stage`: where the bars go, the commit), as
``export.folder_stage`` gives the stage of a folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Mapping, Sequence

from . import storage
from .bars import Bars
from .engine import Engine, Source
from .export import BarDatasetWriter, Stage, parquet_options, partition_file
from .export import run_export as export_run_export
from .results import RunResult

_JOB = "_job.json"
_RESULTS = "_partitions"
KEEP_COMMITTED = 2   # the latest run and the one before it (a reader may still be on it)


class StoreBarWriter(BarDatasetWriter):
    """The bar dataset of an export on a store: each partition writes one object per
    interval under ``PREFIX/bars/interval=<iv>/`` (an object appears only when complete, so
    no temporary name and no rename); it pickles with its file system for a Dask task."""

    def __init__(self, fs: Any, prefix: str, fmt: str = "parquet"):
        super().__init__(tempfile.gettempdir(), fmt, per_partition=True)
        self.fs = fs
        self.prefix = prefix.rstrip("/")
        self.files: list[Any] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"fs": self.fs, "prefix": self.prefix, "fmt": self.fmt}

    def __setstate__(self, state: dict[str, Any]) -> None:
        StoreBarWriter.__init__(self, state["fs"], state["prefix"], state["fmt"])

    def _write_part(self, interval: str, name: str, symbols: list[str],
                    table: Any) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        path = f"{self.prefix}/bars/interval={interval}/{partition_file(name, symbols, self.fmt)}"
        sink = pa.BufferOutputStream()
        if self.fmt == "parquet":
            pq.write_table(table, sink, **parquet_options())
        else:
            pacsv.write_csv(table, sink)
        storage.write_bytes(self.fs, path, sink.getvalue().to_pybytes())

    def close(self) -> None:
        suffix = f".{self.fmt}"
        self.files = [PurePosixPath(p) for p in storage.list_files(self.fs,
                                                                   f"{self.prefix}/bars")
                      if PurePosixPath(p).name.startswith("part-") and p.endswith(suffix)]


class StoreResults:
    """Finished partitions' results of a run on a store (what ``resume`` reuses): one object
    each under ``PREFIX/_partitions/``."""

    def __init__(self, fs: Any, prefix: str):
        self.fs = fs
        self.prefix = prefix.rstrip("/")

    def save(self, key: str, name: str, result: Any) -> None:
        storage.write_bytes(self.fs, f"{self.prefix}/{key}.pkl",
                            pickle.dumps((name, result), protocol=pickle.HIGHEST_PROTOCOL))

    def load(self, key: str, name: str) -> Any:
        try:
            raw = self.fs.open_input_stream(f"{self.prefix}/{key}.pkl").read()
            saved, result = pickle.loads(raw)
        except Exception:  # noqa: BLE001 - not there (or not readable): run it again
            return None
        return result if saved == name else None


def run_export(engine: Engine, sources: Sequence[Source] | Mapping[str, Bars], out: Any, *,
               fmt: str = "parquet", dataset: str = "", span: tuple[int, int] | None = None,
               summary: Callable[[RunResult], dict[str, Any]] | None = None,
               resume: bool = False, job: Any = None, filesystem: Any = None,
               storage_options: Mapping[str, Any] | None = None,
               provenance: dict[str, Any] | None = None) -> RunResult:
    """``export.run_export`` (the one export path) into an export on an object store (see
    the module's text), on the engine's executor: threads or a
    ``distributed.DaskExecutor``."""
    return export_run_export(
        engine, sources, out, fmt=fmt, dataset=dataset, span=span, summary=summary,
        provenance=provenance,
        stage=store_stage(engine, out, fmt, resume=resume, job=job, filesystem=filesystem,
                          storage_options=storage_options))


@contextlib.contextmanager
def store_stage(engine: Engine, out: Any, fmt: str = "parquet", *, resume: bool = False,
                job: Any = None, filesystem: Any = None,
                storage_options: Mapping[str, Any] | None = None) -> Iterator[Stage]:
    """The :class:`~sessiondata.export.Stage` of an export on an object store: the bars
    straight to the run's prefix, the rest into a local folder uploaded when the block ends
    without an error, the manifest last, then the commit record; the committed runs beyond
    :data:`KEEP_COMMITTED` are pruned."""
    fs, root = storage.resolve(out, filesystem, storage_options)
    url = str(out) if filesystem is None else storage.url_of(fs, root)
    _writable(fs, root, url)
    token = json.dumps(job, sort_keys=True, default=str)
    stale = storage.uncommitted(fs, root)
    run = None
    if resume:
        for old in sorted(stale, reverse=True):
            if _read_job(fs, storage.run_prefix(root, old)) == token:
                run = old
                break
    storage.remove_uncommitted(fs, root, keep=[run] if run else [])
    run = run or storage.new_run_id()
    prefix = storage.run_prefix(root, run)
    storage.write_bytes(fs, f"{prefix}/{_JOB}", json.dumps({"job": token}).encode("utf-8"))
    writer = StoreBarWriter(fs, prefix, fmt)
    executor: Any = engine.executor
    dask = hasattr(executor, "store") and hasattr(executor, "client")
    if dask:
        executor.store, executor.mark = StoreResults(fs, f"{prefix}/{_RESULTS}"), None
        executor._calls = 0

    def run_engine(engine_run: Callable[[], RunResult]) -> RunResult:
        result = engine_run()
        writer.close()
        return result

    try:
        tmp = Path(tempfile.mkdtemp(prefix="sessiondata-store-export-"))
        try:
            yield Stage(writer, tmp, run_engine)
            manifest = json.loads((tmp / "manifest.json").read_text(encoding="utf-8"))
            storage.delete(fs, storage.list_files(fs, f"{prefix}/{_RESULTS}"))
            storage.delete(fs, [f"{prefix}/{_JOB}"])
            # The manifest of the run last among its files, then the commit record.
            names = sorted((p for p in tmp.rglob("*") if p.is_file()),
                           key=lambda p: p.name == "manifest.json")
            for p in names:
                rel = p.relative_to(tmp).as_posix()
                storage.write_bytes(fs, f"{prefix}/{rel}", p.read_bytes())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        storage.commit(fs, root, run, manifest)
    except BaseException as exc:
        if hasattr(exc, "add_note"):
            exc.add_note(f"(the run was not committed: {url} still holds the previous export; "
                         f"this run's files are under {url.rstrip('/')}/{storage.RUNS}/{run}/, "
                         "removed by the next run into it, or continued by --resume)")
        raise
    finally:
        if dask:
            executor.store = executor.mark = None
    _prune(fs, root)


def _writable(fs: Any, root: str, url: str) -> None:
    """Fail early, in one line naming the URL, when the store cannot be written."""
    probe = f"{root.rstrip('/')}/{storage.RUNS}/.probe-{os.getpid()}-{threading.get_ident()}"
    try:
        storage.write_bytes(fs, probe, b"")
    except storage.StorageError as exc:
        bucket = root.split("/", 1)[0]
        text = str(exc).split(": ", 1)[-1]
        if "no such" in text:
            text = f"no such bucket ({bucket})"
        raise storage.StorageError(f"{url}: {text}") from None
    storage.delete(fs, [probe])


def _read_job(fs: Any, prefix: str) -> str | None:
    try:
        return json.loads(storage.read_bytes(fs, f"{prefix}/{_JOB}")).get("job")
    except (OSError, ValueError, AttributeError):
        return None


def _prune(fs: Any, root: str) -> None:
    """Remove committed runs older than the last :data:`KEEP_COMMITTED`: the commit record
    first (the run is then no export), then its files."""
    runs = storage.committed(fs, root)
    for run in runs[:-KEEP_COMMITTED]:
        storage.delete(fs, [f"{root.rstrip('/')}/{storage.COMMITS}/{run}.json"])
        storage.delete(fs, storage.list_files(fs, storage.run_prefix(root, run)))


def job_token(data: Any, engine: Engine, *, filesystem: Any = None,
              storage_options: Mapping[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    """What a run is, for ``resume`` (``distributed.job_token``, with the files of a store
    described by their listing: path, size, modification time)."""
    from .distributed import job_token as local_token

    described: Any = data
    if isinstance(data, (str, os.PathLike)) and (storage.is_url(data) or filesystem):
        if storage.is_remote(data, filesystem):
            one, files = storage.entry(data, filesystem, storage_options)
            described = [[str(f), f.size, f.mtime_ns] for f in ([one] if one else files)]
    token = local_token(described if not isinstance(described, list) else None, engine,
                        **options)
    if isinstance(described, list):
        token["input"] = described
    return token
