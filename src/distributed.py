"""The main job on a Dask cluster: the engine's partitions on ``dask.distributed`` workers.

    sessiondata run DATA --calendar XNYS --scheduler tcp://host:8786     an existing cluster
    sessiondata run DATA --calendar XNYS --scheduler local:4             4 local processes
    sessiondata.run(DATA, calendar, out=OUT, client=distributed.Client(...))

:class:`DaskExecutor` is the engine's executor interface (``map_unordered``) on a Dask client:
each partition of the input (a file, i.e. a symbol, or a batch of in-memory symbols) is one
task that runs ``Engine._partition`` on a worker.  The worker reads its file, runs the kernels
and writes the partition's bars straight into the export's staging folder, which must be a
path every worker can reach (a shared file system); only the small per-symbol results (counts,
gaps, and the bars of each symbol's first and last session while the data's span is unknown)
travel back to the client, which finishes those sessions, assembles the run and writes the
gap dataset and the manifest, then swaps the export in as a whole.  The session documents are
built and written by the workers, a range of sessions a task (:meth:`DaskExecutor.write_docs`).

Faults.  A worker lost during a run: Dask runs its tasks again elsewhere.  A partition writes
one file per interval, named by the partition and its symbols and renamed into place when
complete, so a partition run twice replaces its files (nothing lost, nothing doubled), and
half-written temporary files never reach the export.  A run that is itself interrupted keeps
its staging folder (``.OUT.cluster-staging-<id>`` beside ``OUT``) with the result of each finished
partition; ``resume=True`` (``--resume``) reruns only the others when the job (input files,
calendar, intervals, options) is the same, else starts afresh.  An error in a partition's data
is raised on the client as the same exception as on one machine (file, line, reason); a file
a worker cannot read, or a staging folder it cannot reach, is named with the worker.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import pickle
import shutil
import socket
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .bars import Bars
from .engine import Engine, Source, batches
from .export import run_export as export_run_export
from .export import write_json
from .readers import ReadError
from .documents import MIN_SESSIONS_PER_WORKER
from .results import RunResult, paused_gc

CONNECT_TIMEOUT_S = 10.0
STAGING = ".{name}.cluster-staging-"  # + a run's id: beside the export folder
_RESULTS = "_partitions"               # finished partitions' results, while the run lasts
_JOB = "_job.json"                     # what the staged run is (resume checks it)
_MARK = "_reachable"                   # a token every worker must see in the staging folder


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError("running on a Dask cluster needs dask.distributed: "
                          "pip install 'sessiondata[dask]'") from None
    return distributed


# -- the cluster ----------------------------------------------------------------------------


@contextlib.contextmanager
def cluster(scheduler: str, *, timeout: float | None = None,
            threads_per_worker: int = 1) -> Iterator[Any]:
    """A ``distributed.Client`` for ``--scheduler``: ``local:N`` starts a LocalCluster of N
    worker processes (``threads_per_worker`` threads each) for the block and closes it after;
    any other value is a scheduler's address (``tcp://host:8786``), reached within
    ``timeout`` seconds or a ``ConnectionError`` naming it."""
    distributed = _import_distributed()
    spec = scheduler.strip()
    if spec.lower().startswith("local:") or spec.lower() == "local":
        text = spec.partition(":")[2] or str(os.cpu_count() or 1)
        try:
            n = int(text)
            if n < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"--scheduler {scheduler!r}: expected local:N with N >= 1 "
                             "worker processes, or a scheduler address tcp://HOST:PORT") from None
        with distributed.LocalCluster(n_workers=n, threads_per_worker=threads_per_worker,
                                      processes=True, dashboard_address=":0",
                                      silence_logs=40) as local:
            with distributed.Client(local) as client:
                yield client
        return
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        client = distributed.Client(spec, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(f"cannot reach the Dask scheduler at {spec} within "
                              f"{timeout:g} s ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split()) or 'no answer'})") from None
    except ValueError as exc:
        raise ValueError(f"--scheduler {scheduler!r}: {exc}; expected a scheduler address "
                         "tcp://HOST:PORT or local:N") from None
    with client:
        yield client


# -- the executor ---------------------------------------------------------------------------


class DaskExecutor:
    """The engine's executor on a ``distributed.Client``: one task per partition, results
    yielded as they complete.  The engine's own small work (the sessions held back until the
    data's span is known) runs on the client, one symbol after the other.

    Attributes set by :func:`run_export` for a run that exports: ``store``, the folder where
    each finished partition's result is kept (so an interrupted run can be resumed), and
    ``mark``, a file of the staging folder that a worker must see before it writes there.
    """

    def __init__(self, client: Any):
        _import_distributed()
        self.client = client
        self.store: Path | None = None
        self.mark: tuple[str, str] | None = None
        self.reused = 0       # partitions taken from the store (resume)
        self.submitted = 0
        self._calls = 0       # map_unordered calls of the run: part of the stored keys

    #: Partitions run in other processes: the export gives each its own files.
    remote = True

    def stage(self, out: str | os.PathLike, *, resume: bool = False, job: Any = None) -> Path:
        """The staging folder of an export into ``out`` (``export.run_export``): a folder of
        this run's own, so that tasks an interrupted run left running write into that one
        only; with ``resume``, the folder an earlier run of the same ``job`` left."""
        out = Path(out).resolve()
        token = json.dumps(job, sort_keys=True, default=str)
        stage = None
        for old in staging_folders(out):
            if stage is None and resume and _read_job(old) == token:
                stage = old
            else:
                shutil.rmtree(old, ignore_errors=True)
        if stage is None:
            out.parent.mkdir(parents=True, exist_ok=True)
            stage = out.parent / (STAGING.format(name=out.name) + uuid.uuid4().hex[:12])
            stage.mkdir()
            write_json(stage / _JOB, {"job": token})
        return stage

    @contextlib.contextmanager
    def attached(self, stage: Path) -> Iterator[None]:
        """The run inside the block keeps each finished partition's result in ``stage`` (a
        resume reuses them) and its workers write there only while ``stage`` holds this
        run's mark."""
        (stage / _RESULTS).mkdir(exist_ok=True)
        secret = uuid.uuid4().hex
        (stage / _MARK).write_text(secret, encoding="utf-8")
        self.store, self.mark = stage / _RESULTS, (str(stage / _MARK), secret)
        self._calls = 0   # the stored keys count the run's calls from here
        try:
            yield
        finally:
            self.store = self.mark = None

    @staticmethod
    def tidy(stage: Path) -> None:
        """Remove what is not part of the export: the results kept for a resume, temporary
        files of writers whose worker died, the job and the mark."""
        shutil.rmtree(stage / _RESULTS, ignore_errors=True)
        for leftover in stage.glob("bars/*/.*.tmp"):
            leftover.unlink(missing_ok=True)
        for name in (_JOB, _MARK):
            (stage / name).unlink(missing_ok=True)

    def write_docs(self, run: RunResult, folder: Path) -> None:
        """Build and write the session documents of ``run`` on the workers, into ``folder``
        (the export's staging folder, which every worker reaches).  Each task gets the
        result of a range of sessions alone (``RunResult.session_range``: what those
        documents are made of) and gives back the names it wrote; at most two tasks a
        worker are in flight, so the ranges sent are made while the documents are built."""
        from distributed import as_completed

        n_k = run.windows.n_sessions
        if n_k == 0:
            return
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        # No task under MIN_SESSIONS_PER_WORKER sessions (each lays out its columns once),
        # and at least two a worker while there are sessions for them.
        tasks = max(1, min(max(2 * workers, n_k // (4 * MIN_SESSIONS_PER_WORKER)),
                           n_k // MIN_SESSIONS_PER_WORKER))
        bounds = np.linspace(0, n_k, tasks + 1).round().astype(int).tolist()
        chunks = iter([(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a])
        run_id = uuid.uuid4().hex[:12]
        fn = functools.partial(_write_doc_range, str(folder))

        def submit(i: int, a: int, b: int) -> Any:
            item = _Docs(run.session_range(a, b), f"sessions {a}..{b - 1}")
            return self.client.submit(_run_task, fn, item, f"docs-{i}", item.name, None, None,
                                      key=f"sessiondata-docs-{run_id}-{i}", pure=False)

        futures = [submit(i, a, b) for i, (a, b) in zip(range(2 * workers), chunks)]
        pending = as_completed(futures)
        written = []
        try:
            for future in pending:
                out = future.result()
                future.release()
                if isinstance(out, _Failure):
                    out.reraise()
                written.append(out)
                nxt = next(chunks, None)
                if nxt is not None:
                    futures.append(submit(len(futures), *nxt))
                    pending.add(futures[-1])
        finally:
            left = [f for f in futures if not f.done()]
            if left:
                self.client.cancel(left)
        for worker, names in written:
            missing = [n for n in names if not (folder / n).exists()]
            if missing:
                raise FileNotFoundError(
                    errno.ENOENT, f"the session documents written by Dask worker {worker} "
                    f"are not in the export's staging folder ({len(missing)} of them, e.g. "
                    f"{missing[0]}); --out must be on a file system that every worker shares",
                    str(folder))

    def map_unordered(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        from distributed import as_completed

        items = list(items)
        run = uuid.uuid4().hex[:12]
        self._calls += 1
        stored: list[Any] = []
        futures = []
        names: dict[str, str] = {}
        for i, item in enumerate(items):
            key = f"{self._calls:02d}-{i:06d}"
            done = _load_result(self.store, key, _name(item))
            if done is not None:
                stored.append(done)
                continue
            futures.append(self.client.submit(
                _run_task, fn, item, key, _name(item),
                None if self.store is None else _store_arg(self.store), self.mark,
                key=f"sessiondata-{run}-{key}", pure=False))
            names[futures[-1].key] = _name(item)
        self.submitted += len(futures)
        self.reused += len(stored)
        try:
            yield from stored
            stored.clear()
            for future in as_completed(futures):
                try:
                    out = future.result()
                except Exception as exc:  # the cluster's own (a worker lost too often, ...)
                    if hasattr(exc, "add_note"):
                        exc.add_note(f"(partition {names.get(future.key, '?')!r} of the run "
                                     "on the Dask cluster)")
                    raise
                future.release()
                if isinstance(out, _Failure):
                    out.reraise()
                yield out
        finally:
            pending = [f for f in futures if not f.done()]
            if pending:
                self.client.cancel(pending)


class _Docs:
    """A task of :meth:`DaskExecutor.write_docs`: the result of some sessions, named."""

    def __init__(self, run: RunResult, name: str):
        self.run = run
        self.name = name


def _write_doc_range(folder: str, item: _Docs) -> tuple[str, list[str]]:
    """On a worker: write the documents of ``item.run``'s sessions into ``folder``; returns
    the worker and the names written."""
    from .documents import write_session_docs

    with paused_gc():
        write_session_docs(item.run, Path(folder))
    return _worker(), [f"{s}.json" for s in item.run.sessions]


def _name(item: Any) -> str:
    return str(getattr(item, "name", ""))


def _worker() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()} pid {os.getpid()}"


def _run_task(fn: Callable[[Any], Any], item: Any, key: str, name: str, store: str | None,
              mark: tuple[str, str] | None) -> Any:
    """One partition on a worker.  Errors of the work are returned (not raised: Dask would
    not rerun them anyway) as a :class:`_Failure` that the client raises again."""
    try:
        if mark is not None:
            _check_reachable(mark)
        result = fn(item)
        if store is not None:
            if isinstance(store, str):
                _save_result(Path(store), key, name, result)
            else:           # an object store's (store_export.StoreResults)
                store.save(key, name, result)
        return result
    except Exception as exc:  # noqa: BLE001 - every error goes back to the client
        return _Failure.of(exc, _worker())


def _store_arg(store: Any) -> Any:
    """What a task is given of the results' store: a folder's path, or an object store's."""
    return str(store) if isinstance(store, Path) else store


def _check_reachable(mark: tuple[str, str]) -> None:
    path, token = mark
    try:
        seen = Path(path).read_text(encoding="utf-8")
    except OSError:
        seen = None
    if seen != token:
        folder = os.path.dirname(path)
        raise FileNotFoundError(
            errno.ENOENT, "the export's staging folder is not reachable from this worker; "
            "--out must be on a file system that every worker shares", folder)


class _Failure:
    """An exception of a worker's task, carried back to the client (as it is when it
    pickles, else by its type, arguments and attributes) with the worker's traceback.  A
    file a worker cannot read is named with the worker; an error in the data is the same as
    on one machine."""

    def __init__(self, exc: BaseException | None, parts: tuple | None, worker: str,
                 trace: str):
        self.exc = exc
        self.parts = parts
        self.worker = worker
        self.trace = trace

    @classmethod
    def of(cls, exc: BaseException, worker: str) -> "_Failure":
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, OSError) or (isinstance(exc, ReadError) and exc.line is None):
            exc = _on_worker(exc, worker)
        try:
            again = pickle.loads(pickle.dumps(exc))
            if type(again) is type(exc) and str(again) == str(exc):
                return cls(exc, None, worker, trace)
        except Exception:  # noqa: BLE001 - an exception that does not pickle as itself
            pass
        state = {k: v for k, v in vars(exc).items() if _pickles(v)}
        return cls(None, (type(exc), exc.args, state), worker, trace)

    def rebuild(self) -> BaseException:
        if self.exc is not None:
            exc = self.exc
        else:
            assert self.parts is not None
            cls, args, state = self.parts
            exc = cls.__new__(cls)
            exc.args = args
            vars(exc).update(state)
        if hasattr(exc, "add_note"):
            exc.add_note(f"(raised on Dask worker {self.worker}; its traceback:\n"
                         f"{self.trace.rstrip()})")
        return exc

    def reraise(self) -> None:
        raise self.rebuild()

    def __reduce__(self):
        return (_Failure, (self.exc, self.parts, self.worker, self.trace))


def _on_worker(exc: BaseException, worker: str) -> BaseException:
    """The same error, saying which worker could not read the file."""
    where = f"on Dask worker {worker}"
    if isinstance(exc, ReadError):
        return ReadError(exc.path, exc.line, f"{exc.reason} ({where})")
    if isinstance(exc, OSError) and exc.strerror and exc.errno is not None:
        return type(exc)(exc.errno, f"{exc.strerror} ({where})", exc.filename)
    return type(exc)(f"{exc} ({where})") if isinstance(exc, OSError) else exc


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value)
        return True
    except Exception:  # noqa: BLE001
        return False


def _save_result(store: Path, key: str, name: str, result: Any) -> None:
    """A finished partition's result, written whole (temporary file and rename)."""
    path = store / f"{key}.pkl"   # the store is made by the client: a stale task fails
    tmp = store / f".{key}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            pickle.dump((name, result), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _load_result(store: Path | None, key: str, name: str) -> Any:
    """The stored result of a partition of an interrupted run, or None."""
    if store is None:
        return None
    if not isinstance(store, Path):  # an object store's (store_export.StoreResults)
        return store.load(key, name)
    try:
        with open(store / f"{key}.pkl", "rb") as f:
            saved_name, result = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, AttributeError,
            ImportError):
        return None
    return result if saved_name == name else None


# -- the run --------------------------------------------------------------------------------


def partitions(data: Mapping[str, Bars] | Sequence[Source]) -> list[Source]:
    """Bars held in memory as one partition per symbol (a task each), or the sources as
    they are."""
    if isinstance(data, Mapping):
        return batches(data, size=1)
    return list(data)


def staging_folders(out: str | os.PathLike) -> list[Path]:
    """The staging folders that runs into ``out`` left (one per interrupted run)."""
    out = Path(out).resolve()   # "." has a name and a parent too
    return sorted(out.parent.glob(STAGING.format(name=out.name) + "*"))


def run_export(engine: Engine, sources: Sequence[Source] | Mapping[str, Bars],
               out: str | os.PathLike, **options: Any) -> RunResult:
    """:func:`sessiondata.export.run_export` (the one export path) on an engine whose executor
    is a :class:`DaskExecutor`."""
    if not isinstance(engine.executor, DaskExecutor):
        raise TypeError("distributed.run_export needs an engine whose executor is a "
                        "DaskExecutor")
    return export_run_export(engine, partitions(sources), out, **options)


def _read_job(stage: Path) -> str | None:
    try:
        return json.loads((stage / _JOB).read_text(encoding="utf-8")).get("job")
    except (OSError, ValueError, AttributeError):
        return None


def job_token(data: Any, engine: Engine, **options: Any) -> dict[str, Any]:
    """What a run is, for ``resume``: the engine's settings, the options and the input (each
    file's path, size and modification time; a digest of bars held in memory)."""
    return {
        "calendar": engine.calendar.name,
        "base": engine.base.name,
        "derived": [d.name for d in engine.derived],
        "on_bad": engine.on_bad,
        "start": str(engine.start),
        "end": str(engine.end),
        "events": sorted(repr(e) for evs in engine.events.values() for e in evs),
        "export_base": engine.export_base,
        # the anomaly detectors' kinds and thresholds (issue 22): other ones, another job
        "anomalies": repr(getattr(engine, "anomalies", None)),
        "filled_as_missing": bool(getattr(engine, "filled_as_missing", False)),
        "input": _describe(data),
        **{k: repr(v) for k, v in sorted(options.items())},
    }


def _describe(data: Any) -> Any:
    if data is None:
        return "the embedded sample"
    if isinstance(data, Mapping):
        digest = hashlib.sha1()
        for symbol in sorted(data):
            bars = data[symbol]
            digest.update(str(symbol).encode("utf-8") + b"\0")
            for column in ("ts", "open", "high", "low", "close", "volume"):
                digest.update(np.ascontiguousarray(getattr(bars, column)).tobytes())
        return digest.hexdigest()
    path = Path(data)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    out = []
    for f in files:
        with contextlib.suppress(OSError):
            st = f.stat()
            out.append([str(f), st.st_size, st.st_mtime_ns])
    return out
