"""Shared data and helpers of the benchmark suites.

The data: ``N`` one-minute bars of a seeded random walk on ``Calendar.always()`` (24/7), with
about one bar in a thousand followed by a short run of missing minutes, so that gap finding
and partial buckets have real work to do.  Built once per session, outside every timed region.

Size: ``N = 10_000_000`` by default; ``--quick`` or ``SESSIONDATA_BENCH_QUICK=1`` gives
1_000_000; ``SESSIONDATA_BENCH_N`` overrides both.  ``SESSIONDATA_BENCH_ROUNDS`` sets the rounds
of our kernels and their references (default 7); the slower peers (pandas, polars) get half.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import sessiondata
from sessiondata.api import make_grid
from sessiondata.intervals import parse_interval

DEFAULT_N = 10_000_000
QUICK_N = 1_000_000
SEED = 20_240_102
GAP_RATE = 0.001          # chance that a bar is followed by missing minutes
GAP_MAX_MINUTES = 30      # missing minutes in such a run: 1 .. GAP_MAX_MINUTES - 1
START = "2005-01-03T00:00"
MINUTE_NS = 60_000_000_000
AGGREGATOR_BARS = 1_000_000
_LOAD_AT_START = pytest.StashKey[object]()


def pytest_addoption(parser):
    parser.addoption(
        "--quick", action="store_true", default=False,
        help=f"sessiondata benchmarks on {QUICK_N:_} bars instead of {DEFAULT_N:_} "
             "(same as SESSIONDATA_BENCH_QUICK=1; SESSIONDATA_BENCH_N overrides both)",
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def bench_size(config) -> int:
    """The number of base bars for this run."""
    env = os.environ.get("SESSIONDATA_BENCH_N", "").strip()
    if env:
        n = int(env.replace("_", ""))
        if n < 2:
            raise pytest.UsageError(f"SESSIONDATA_BENCH_N must be >= 2, got {env!r}")
        return n
    if config.getoption("--quick") or _truthy(os.environ.get("SESSIONDATA_BENCH_QUICK")):
        return QUICK_N
    return DEFAULT_N


def bench_rounds() -> tuple[int, int]:
    """Rounds for (our kernels and references, the slower peers)."""
    fast = int(os.environ.get("SESSIONDATA_BENCH_ROUNDS", "7"))
    if fast < 1:
        raise pytest.UsageError("SESSIONDATA_BENCH_ROUNDS must be >= 1")
    return fast, max(1, fast // 2)


def pytest_report_header(config):
    fast, slow = bench_rounds()
    return (f"sessiondata benchmarks: N={bench_size(config):_} 1m bars, seed={SEED}, "
            f"rounds={fast} (pandas/polars {slow})")


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return None


def pytest_sessionstart(session):
    session.config.stash[_LOAD_AT_START] = _loadavg()


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record what was measured, so that a saved JSON says which N it holds, and how busy the
    machine was (other builds and test runs on the same cores move the numbers)."""
    fast, slow = bench_rounds()
    output_json["sessiondata_bench"] = {
        "loadavg_start": config.stash.get(_LOAD_AT_START, None),
        "loadavg_end": _loadavg(),
        "n": bench_size(config),
        "seed": SEED,
        "gap_rate": GAP_RATE,
        "aggregator_bars": min(AGGREGATOR_BARS, bench_size(config)),
        "rounds": fast,
        "peer_rounds": slow,
        "sessiondata_version": sessiondata.__version__,
        "numpy_version": np.__version__,
    }


def make_walk(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """``n`` valid 1m OHLCV bars of a random walk, with seeded runs of missing minutes."""
    rng = np.random.default_rng(seed)
    skip = np.zeros(n, np.int64)
    jump = rng.random(n) < GAP_RATE
    skip[jump] = rng.integers(1, GAP_MAX_MINUTES, int(jump.sum()))
    start = np.datetime64(START, "ns").astype(np.int64)
    minutes = np.arange(n, dtype=np.int64)
    minutes += np.cumsum(skip) - skip  # a bar's own skip opens the gap after it
    ts = start + minutes * MINUTE_NS
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n)))
    open_ = np.empty(n)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 1e-4, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 1e-4, n)))
    volume = rng.gamma(2.0, 500.0, n)
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}


@pytest.fixture(scope="session")
def n_bars(pytestconfig) -> int:
    return bench_size(pytestconfig)


@pytest.fixture(scope="session")
def rounds() -> tuple[int, int]:
    """Rounds of (our kernels and references, the slower peers)."""
    return bench_rounds()


@pytest.fixture(scope="session")
def aggregator_n() -> int:
    """Bars fed to the streaming Aggregator from Python (at most N)."""
    return AGGREGATOR_BARS


@pytest.fixture(scope="session")
def cal():
    return sessiondata.Calendar.always()


@pytest.fixture(scope="session")
def bars(n_bars):
    """The base bars (validated once, here, not in the timed regions)."""
    cols = make_walk(n_bars)
    return sessiondata.Bars.from_arrays(
        cols["ts"], cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"],
        interval="1m",
    )


@pytest.fixture(scope="session")
def columns(bars):
    """The six input arrays, in order."""
    return (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)


@pytest.fixture(scope="session")
def pandas_frame(bars):
    """The bars as a pandas DataFrame on a DatetimeIndex (naive UTC)."""
    pd = pytest.importorskip("pandas")
    index = pd.DatetimeIndex(bars.ts.view("datetime64[ns]"), name="ts")
    return pd.DataFrame(
        {k: np.array(getattr(bars, k)) for k in ("open", "high", "low", "close", "volume")},
        index=index,
    )


@pytest.fixture(scope="session")
def polars_frame(bars):
    """The bars as a polars DataFrame, ``ts`` a Datetime("ns") column flagged sorted."""
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({
        "ts": pl.Series("ts", np.array(bars.ts)).cast(pl.Datetime("ns")),
        **{k: np.array(getattr(bars, k)) for k in ("open", "high", "low", "close", "volume")},
    })
    return df.with_columns(pl.col("ts").set_sorted())


@pytest.fixture(scope="session")
def grid_5m(bars, cal):
    """The 5m grid over the sessions of the bars, as the Aggregator takes it."""
    lo, hi = int(bars.ts[0]), int(bars.ts[-1]) + 1
    return make_grid(cal.windows(lo, hi), parse_interval("5m"), parse_interval("1m"))


@pytest.fixture(scope="session")
def measure():
    """``measure(benchmark, fn, group=, label=, items=, nbytes=, peer=False, setup=None,
    rounds=None, warmup_rounds=1)``.

    Times ``fn`` with ``benchmark.pedantic`` (one warm-up round, one iteration per round),
    tags the result with the group and ``extra_info`` the gate reads (``label``, ``items``,
    ``bytes``) and returns ``fn``'s last result.  ``rounds`` overrides the rounds of
    ``SESSIONDATA_BENCH_ROUNDS`` (a benchmark of ~1 ms wants more, one of seconds fewer).
    """
    fast, slow = bench_rounds()

    def run(benchmark, fn, *, group, label, items, nbytes=None, peer=False, setup=None,
            args=(), rounds=None, warmup_rounds=1):
        benchmark.group = group
        benchmark.extra_info["label"] = label
        benchmark.extra_info["items"] = int(items)
        if nbytes is not None:
            benchmark.extra_info["bytes"] = int(nbytes)
        if rounds is None:
            rounds = slow if peer else fast
        if setup is not None:
            return benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1,
                                      warmup_rounds=warmup_rounds)
        return benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1,
                                  warmup_rounds=warmup_rounds)

    return run

