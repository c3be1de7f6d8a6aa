"""The main job on a Dask cluster against one process: ``sessiondata.run(..., client=)``.

The universe is the main-job benchmark's (``bench_main_job.make_universe``): 100 symbols (20
with ``--quick``) x 252 XNYS sessions of 1m bars, one Parquet file per symbol, ~1 % missing
plus long halts (9.8M bars).  Timed (group ``distributed``), the whole job with its export
(session documents, bar and gap datasets), the cluster already started:

- ``threads``: the threaded single-process run (``ThreadExecutor`` over the cores);
- ``threads=1``: the same on one thread (the work of one core);
- ``dask 1x1``: a LocalCluster of 1 single-threaded worker process;
- ``dask 2x1``: a LocalCluster of 2 single-threaded worker processes.

Group ``dask-overhead``: 1,000 empty tasks through the scheduler (``client.map`` and
``gather``), the scheduler's cost per task.  The cost per symbol is ``(dask 1x1 - threads=1)
/ symbols``: what a partition pays for travelling to a worker (the task, the engine and the
source pickled, the result pickled back) beyond its work.

``python benchmarks/bench_distributed.py [SYMBOLS] [--ten-years]`` prints the table once
without pytest (best of 2 rounds each, plus the cluster start-up, the workers' peak memory and
bars/s per worker core); ``--ten-years`` also runs 2 symbols x 10 years on 1 worker for the
memory of a ten-year partition (docs/scaling.md quotes both).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import time
from pathlib import Path

import pytest

import sessiondata
from sessiondata import Calendar

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_main_job as main_job  # noqa: E402
from peak import peak_rss_bytes as _peak_rss  # noqa: E402

CONFIGS = {"dask 1x1": 1, "dask 2x1": 2}


def _cluster(n_workers: int):
    import distributed

    cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                       processes=True, dashboard_address=":0",
                                       silence_logs=50)
    return cluster, distributed.Client(cluster)


def _run(data: Path, out: Path, *, client=None, threads=None) -> None:
    shutil.rmtree(out, ignore_errors=True)
    sessiondata.run(data, Calendar.exchange("XNYS"), out=out, client=client, threads=threads)


def _noop(i: int) -> int:
    return i


def _cpu() -> float:
    """CPU seconds of this process (user + system, all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- pytest-benchmark -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def universe(pytestconfig, tmp_path_factory):
    pytest.importorskip("distributed")
    pytest.importorskip("exchange_calendars")
    folder = tmp_path_factory.mktemp("distributed")
    n_symbols = main_job.QUICK_SYMBOLS if main_job._quick(pytestconfig) else main_job.SYMBOLS
    n = main_job.make_universe(folder, n_symbols, fmts=("parquet",))
    yield folder / "parquet", n, n_symbols
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def clusters():
    made = {}

    def get(n_workers: int):
        if n_workers not in made:
            made[n_workers] = _cluster(n_workers)
        return made[n_workers][1]

    yield get
    for cluster, client in made.values():
        client.close()
        cluster.close()


@pytest.mark.parametrize("who", ("threads", "threads=1", "dask 1x1", "dask 2x1"))
def bench_distributed(benchmark, measure, universe, clusters, tmp_path, who):
    data, n, n_symbols = universe
    out = tmp_path / "out"
    client = clusters(CONFIGS[who]) if who in CONFIGS else None
    threads = 1 if who == "threads=1" else None
    benchmark.extra_info.update(symbols=n_symbols, bars=n)
    measure(benchmark, lambda: _run(data, out, client=client, threads=threads),
            group="distributed", label=who, items=n, nbytes=48 * n, rounds=2,
            warmup_rounds=1)
    assert (out / "manifest.json").exists()


def bench_dask_overhead_per_task(benchmark, measure, clusters):
    pytest.importorskip("distributed")
    client = clusters(2)

    def run():
        client.gather(client.map(_noop, range(1000), pure=False))

    measure(benchmark, run, group="dask-overhead", label="1000 empty tasks", items=1000,
            rounds=3)


# -- the table, without pytest --------------------------------------------------------------


def _best(fn, rounds: int = 2, client=None) -> tuple[float, float, float]:
    """The best wall time of ``rounds`` runs, with the CPU seconds of this process and of
    the workers in that round (CPU time is what a core did, whatever else the machine ran)."""
    best = None
    for _ in range(rounds):
        workers0 = sum(client.run(_cpu).values()) if client is not None else 0.0
        cpu0, t0 = _cpu(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
        workers = (sum(client.run(_cpu).values()) - workers0) if client is not None else 0.0
        if best is None or wall < best[0]:
            best = (wall, cpu, workers)
    assert best is not None
    return best


def main(argv: list[str]) -> None:
    import tempfile

    ten_years = "--ten-years" in argv
    args = [a for a in argv if not a.startswith("--")]
    n_symbols = int(args[0]) if args else main_job.SYMBOLS
    root = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    try:
        n = main_job.make_universe(root, n_symbols, fmts=("parquet",))
        data, out = root / "parquet", root / "out"
        print(f"universe: {n_symbols} symbols x 252 XNYS sessions, {n:,} bars "
              f"({48 * n / 2**20:,.0f} MiB of columns), one Parquet file per symbol; "
              f"{os.cpu_count()} cores")
        rows = []
        _run(data, out)  # warm: imports, calendar, page cache
        for label, threads in (("threads", None), ("threads=1", 1)):
            rows.append((label, *_best(lambda: _run(data, out, threads=threads)), None))
        for label, workers in CONFIGS.items():
            t0 = time.perf_counter()
            cluster, client = _cluster(workers)
            start = time.perf_counter() - t0
            try:
                _run(data, out, client=client)  # warm the workers
                timed = _best(lambda: _run(data, out, client=client), client=client)
                rss = max(client.run(_peak_rss).values())
            finally:
                client.close()
                cluster.close()
            rows.append((label, *timed, (start, rss)))
        cluster, client = _cluster(2)
        try:
            client.gather(client.map(_noop, range(200), pure=False))
            per_task = _best(lambda: client.gather(client.map(_noop, range(1000),
                                                              pure=False)), 3)[0] / 1000
        finally:
            client.close()
            cluster.close()
        walls = {r[0]: r[1] for r in rows}
        cpus = {r[0]: (r[2], r[3]) for r in rows}
        print(f"\n{'run':<10} {'wall s':>7} {'bars/s':>11} {'vs threads':>10} "
              f"{'client CPU s':>12} {'worker CPU s':>12} {'start s':>7} {'worker peak MiB':>15}")
        for label, wall, cpu, workers, extra in rows:
            start, rss = extra if extra else (None, None)
            print(f"{label:<10} {wall:>7.2f} {n / wall:>11,.0f} "
                  f"{wall / walls['threads']:>9.2f}x {cpu:>12.2f} "
                  f"{'' if extra is None else f'{workers:.2f}':>12} "
                  f"{'' if start is None else f'{start:.1f}':>7} "
                  f"{'' if rss is None else f'{rss / 2**20:,.0f}':>15}")
        per_symbol = (walls["dask 1x1"] - walls["threads=1"]) / n_symbols
        print(f"\nspeed-up 2 workers vs 1: {walls['dask 1x1'] / walls['dask 2x1']:.2f}x "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"scheduler overhead per task (1000 empty tasks, 2 workers): "
              f"{per_task * 1e3:.2f} ms")
        print(f"overhead per symbol, wall (dask 1x1 - threads=1) / symbols: "
              f"{per_symbol * 1e3:.1f} ms")
        w_cpu = cpus["dask 1x1"][1]
        print(f"bars per worker CPU-second (dask 1x1): {n / w_cpu:,.0f}; client CPU per "
              f"symbol (dask 2x1): {cpus['dask 2x1'][0] / n_symbols * 1e3:.1f} ms; one "
              f"thread's CPU per bar (threads=1): {cpus['threads=1'][0] / n * 1e9:.0f} ns")
        if ten_years:
            _ten_years(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _ten_years(root: Path) -> None:
    """2 symbols x 10 years (2014-2023) on 1 worker: the memory of a ten-year partition."""
    folder = root / "ten"
    first, last = main_job.FIRST, main_job.LAST
    main_job.FIRST, main_job.LAST = "2013-12-31", "2023-12-29"
    try:
        n = main_job.make_universe(folder, 2, fmts=("parquet",))
    finally:
        main_job.FIRST, main_job.LAST = first, last
    size = sum(f.stat().st_size for f in (folder / "parquet").iterdir())
    cluster, client = _cluster(1)
    try:
        base = max(client.run(_peak_rss).values())
        cpu0 = sum(client.run(_cpu).values())
        t0 = time.perf_counter()
        _run(folder / "parquet", root / "out-ten", client=client)
        wall = time.perf_counter() - t0
        cpu = sum(client.run(_cpu).values()) - cpu0
        rss = max(client.run(_peak_rss).values())
    finally:
        client.close()
        cluster.close()
    print(f"\nten years: 2 symbols x 2,516 sessions, {n:,} bars ({n // 2:,} per partition, "
          f"{size / 2 / 2**20:.0f} MiB Parquet each): {wall:.2f} s wall on 1 worker "
          f"({cpu:.2f} worker CPU s), worker peak RSS {rss / 2**20:,.0f} MiB (idle worker "
          f"{base / 2**20:,.0f} MiB)")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
