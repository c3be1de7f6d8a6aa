"""A backtest over a universe: ``sessiondata.backtest.run_universe`` on a year of XNYS.

500 symbols (50 with ``--quick`` / ``SESSIONDATA_BENCH_QUICK=1``) x the 252 XNYS sessions from
2022-12-29 to 2023-12-29 (the 250 sessions of 2023 and the last two of 2022: a trading year of
252) x their 1m bars (390 a regular session, 210 on the early closes of 2023-07-03 and
2023-11-24), a seeded random walk per symbol with ~1 % of the minutes missing at random: ~48.5M
bars, built once per module (~2 s, ~2.3 GB), never timed.

Each benchmark is one ``run_universe(data, cal, derived=("5m", "15m", "1h"), out_dir=tmp,
threads=T)`` call a round (the engine over batches of symbols, exporting as it goes), for
T = 1 and T = 2 (labels ``threads=1``, ``threads=2``), 2 rounds (the first of a process pays
its first-touch page faults), each into a fresh output directory.  ``extra_info`` holds,
besides ``items`` (= ``bars``): ``timings`` (run: the engine with the bar dataset written as
it goes; export: the session documents, gaps and manifest after it; total), ``parallel_s``
(the engine's part, least over the rounds; the gate compares it between T = 2 and T = 1),
``export_s``, and on T = 2 the thread speed-ups over T = 1 (``speedup_parallel``,
``speedup_wall``) when T = 1 ran in the same session.  ``parallel_s`` is measured by two
more calls without ``out_dir`` (the engine alone: the export's writes go through pyarrow's
own threads and the disk, which more worker threads do not speed up).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from sessiondata import Bars, Calendar
from sessiondata.backtest import run_universe

SEED = 20_240_104
SYMBOLS, QUICK_SYMBOLS = 500, 50
FIRST, LAST = "2022-12-29", "2023-12-29"   # 252 XNYS sessions
SESSIONS = 252
DERIVED = ("5m", "15m", "1h")
MISSING_RATE = 0.01
ROUNDS = 2
MINUTE_NS = 60_000_000_000

_SEEN: dict[int, dict[str, float]] = {}   # threads -> parallel_s, wall_s of this session


def _quick(config) -> bool:
    env = os.environ.get("SESSIONDATA_BENCH_QUICK", "").strip().lower()
    return bool(config.getoption("--quick")) or env in ("1", "true", "yes", "on")


@pytest.fixture(scope="module")
def universe(pytestconfig):
    """(data: {symbol: Bars}, calendar, n_bars)."""
    pytest.importorskip("exchange_calendars")
    cal = Calendar.exchange("XNYS")
    sessions = cal.sessions(FIRST, LAST)
    assert len(sessions) == SESSIONS
    lo = int(np.datetime64(sessions[0], "ns").astype(np.int64))
    hi = int(np.datetime64(sessions[-1] + 2, "ns").astype(np.int64))
    windows = cal.windows(lo, hi)
    assert windows.n_sessions == SESSIONS
    slots = np.concatenate([np.arange(o, c, MINUTE_NS, dtype=np.int64)
                            for o, c in zip(windows.open_ns.tolist(), windows.close_ns.tolist())])
    rng = np.random.default_rng(SEED)
    n_symbols = QUICK_SYMBOLS if _quick(pytestconfig) else SYMBOLS
    data = {}
    for i in range(n_symbols):
        ts = slots[rng.random(slots.shape[0]) >= MISSING_RATE]
        n = ts.shape[0]
        close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n)))
        open_ = np.empty(n)
        open_[0] = 100.0
        open_[1:] = close[:-1]
        spread = rng.random((2, n)) * 1e-4
        data[f"S{i:04d}"] = Bars.from_arrays(
            ts, open_, np.maximum(open_, close) * (1.0 + spread[0]),
            np.minimum(open_, close) * (1.0 - spread[1]), close,
            rng.standard_exponential(n) * 1000.0, interval="1m")
    return data, cal, sum(len(b) for b in data.values())


@pytest.mark.parametrize("threads", (1, 2))
def bench_universe(benchmark, measure, universe, tmp_path, threads):
    data, cal, n = universe
    runs = []
    out = tmp_path / "out"

    def fresh():  # untimed: an empty output directory each round
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        return (), {}

    def run():
        result = run_universe(data, cal, derived=DERIVED, out_dir=out, threads=threads)
        runs.append(result)
        return result

    benchmark.extra_info.update(symbols=len(data), sessions=SESSIONS, bars=n,
                                threads=threads, derived=list(DERIVED))
    result = measure(benchmark, run, setup=fresh, group="universe", label=f"threads={threads}",
                     items=n, nbytes=48 * n, rounds=ROUNDS, warmup_rounds=0)
    shutil.rmtree(out, ignore_errors=True)
    assert result.sessions == SESSIONS and result.bars == n and result.threads == threads

    # The symbol-parallel part: the engine without the export (whose Parquet and JSON
    # writes go through pyarrow's own threads and the disk, which two more threads do not
    # speed up), untimed by the benchmark, twice.
    parallel = [run_universe(data, cal, derived=DERIVED, threads=threads).timings["run"]
                for _ in range(2)]
    walls = [r.total_s for r in runs]
    best = runs[int(np.argmin(walls))]
    benchmark.extra_info.update(
        timings={k: round(v, 6) for k, v in best.timings.items()},
        parallel_s=min(parallel), parallel_s_rounds=[round(p, 6) for p in parallel],
        export_s=min(r.timings["export"] for r in runs),
        quality={k: round(v, 4) for k, v in best.quality.items()},
        missing=dict(best.missing),
    )
    _SEEN[threads] = {"parallel_s": min(parallel), "wall_s": min(walls)}
    if threads > 1 and 1 in _SEEN:
        benchmark.extra_info["speedup_parallel"] = _SEEN[1]["parallel_s"] / min(parallel)
        benchmark.extra_info["speedup_wall"] = _SEEN[1]["wall_s"] / min(walls)
