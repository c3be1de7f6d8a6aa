"""Backtests over a universe: many symbols, many sessions, on the engine.

``run_universe`` runs bars held in memory (symbol -> ``Bars`` over the whole range) through
``sessiondata.engine.Engine``, as the command line runs files: derived bars, gaps and quality
per session, and with ``out_dir`` the export (one JSON document per session, bar and gap
datasets).  It returns the counts and timings a backtest wants at a glance, with the results
model itself in ``result``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .bars import Bars
from .calendar import Calendar
from .engine import Engine, ThreadExecutor, batches
from .export import run_export
from .results import RunResult
from .summary import Summary


@dataclass
class UniverseResult:
    """What a universe run did and how long it took (seconds, wall clock)."""

    symbols: int
    sessions: int
    bars: int
    threads: int
    timings: dict[str, float] = field(default_factory=dict)   # run (compute), export, total
    quality: dict[str, float] = field(default_factory=dict)   # pooled score per interval
    missing: dict[str, int] = field(default_factory=dict)     # missing bars per interval
    gaps: dict[str, int] = field(default_factory=dict)        # gap runs per interval
    result: RunResult | None = field(default=None, repr=False)

    @property
    def total_s(self) -> float:
        return self.timings.get("total", 0.0)


def run_universe(data: Mapping[str, Bars], calendar: Calendar | None = None, *,
                 base: str = "1m", derived: Iterable[str] = ("5m", "15m", "1h"),
                 out_dir: str | os.PathLike | None = None, threads: int | None = None,
                 fmt: str = "parquet", batch: int = 16) -> UniverseResult:
    """Derived bars, gaps, quality and (with ``out_dir``) the export of every symbol over the
    sessions its bars touch.

    Parameters
    ----------
    data : mapping of symbol to Bars
        Each symbol's base bars over the whole range.
    calendar : Calendar, optional
        Defaults to ``Calendar.always()``.
    base, derived : str, iterable of str
        The base interval of the bars and the intervals to derive.
    out_dir : path, optional
        The export folder (see ``sessiondata.export``); nothing is written without it.
    threads : int, optional
        Worker threads over symbol batches (default: the cores).
    fmt : {"parquet", "csv"}
        The format of the exported datasets.
    batch : int
        Symbols per partition.
    """
    executor = ThreadExecutor(threads)
    engine = Engine(calendar, base=base, derived=derived, executor=executor)
    t0 = time.perf_counter()
    sources = batches(data, batch)
    if out_dir is None:
        result = engine.run(sources)
        compute = time.perf_counter() - t0
    else:
        result = run_export(engine, sources, out_dir, fmt=fmt)
        compute = result.seconds
    total = time.perf_counter() - t0
    summary = Summary(result)
    totals = summary.by_interval()
    return UniverseResult(
        len(result.symbols), len(result.sessions),
        int(result.intervals[result.base].bars.sum()), executor.threads,
        {"run": compute, "export": total - compute, "total": total},
        {name: t["quality"] for name, t in totals.items()},
        {name: t["missing"] for name, t in totals.items()},
        {name: t["gaps"] for name, t in totals.items()},
        result)
