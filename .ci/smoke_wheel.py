"""Smoke test of an installed sessiondata wheel, run from outside the source tree.

CI runs it on the repaired wheel in a virtual environment with no C compiler, on the wheel
built from the sdist, and cibuildwheel runs it on every wheel it builds.  It checks results,
not only imports: a core compiled wrongly for a platform, or a file missing from the wheel,
fails here.  Exit 0 when every check passes; a failed check raises AssertionError.

    python .ci/smoke_wheel.py           # from any folder but the checkout
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import sys
import tempfile
from pathlib import Path

import numpy as np

import sessiondata as sd
from sessiondata import _core

MINUTE = 60_000_000_000


def check_installed() -> None:
    """The package comes from site-packages, its kernels are compiled extension modules, its
    stubs and py.typed are beside them, and its version is the distribution's."""
    pkg = Path(sd.__file__).resolve().parent
    if (pkg.parent / "pyproject.toml").exists() or pkg.name != "sessiondata":
        sys.exit(f"smoke: sessiondata imported from the source tree ({pkg}): run it elsewhere")
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for name in ("aggregation", "gaps", "quality", "stream", "validation"):
        module = sys.modules.get(f"sessiondata._core.{name}") or getattr(_core, name, None)
        if module is None:
            module = __import__(f"sessiondata._core.{name}", fromlist=["_"])
        assert module.__file__ is not None and module.__file__.endswith(suffixes), (
            f"sessiondata._core.{name} is not a compiled module: {module.__file__}")
        assert (pkg / "_core" / f"{name}.pyi").is_file(), f"no stub {name}.pyi in the wheel"
    assert (pkg / "py.typed").is_file(), "no py.typed in the wheel"
    version = importlib.metadata.version("sessiondata")
    assert sd.__version__ == version, f"__version__ {sd.__version__} != metadata {version}"
    print(f"smoke: sessiondata {version} from {pkg}")


def check_main_job(out: Path) -> None:
    """The main job on the embedded sample: the README's figures, the counts adding up, and
    the export reading back clean."""
    from sessiondata.export import validate_export

    run = sd.run(None, out=out)
    assert len(run.symbols) == 5 and len(run.sessions) == 6, (run.symbols, run.sessions)
    base = run.intervals[run.base]
    member = run.member
    bars = int(base.bars[member].sum())
    missing = int(base.gap_count.sum())
    # The README's summary of the sample (its first command prints them): change both together.
    assert (bars, len(base.gap_count), missing) == (8_033, 524, 1_507), (
        bars, len(base.gap_count), missing)
    for name, table in run.intervals.items():
        # Every expected slot is present or in a gap, symbol by symbol, session by session.
        per_cell = np.zeros(table.bars.shape, np.int64)
        np.add.at(per_cell, (table.gap_symbol, table.gap_session), table.gap_count)
        assert (table.present + per_cell == table.expected)[member].all(), name
        assert (table.gap_end - table.gap_start > 0).all(), name
    problems = validate_export(out)
    assert not problems, problems
    print(f"smoke: main job on the sample: {bars} bars, {len(base.gap_count)} gaps, "
          f"{missing} missing 1m bars; export valid")


def few_bars() -> tuple[sd.Calendar, sd.Bars, np.ndarray]:
    """One hour of 1m bars on a weekday, minutes 10-12 and 40 missing."""
    cal = sd.Calendar.weekly("UTC", "09:00", "10:00", "Mon-Fri")
    day = cal.session_windows("2024-03-05")
    minutes = np.setdiff1d(np.arange(60), [10, 11, 12, 40])
    ts = int(day.open_ns[0]) + minutes * MINUTE
    close = 100.0 + minutes * 0.25 + np.sin(minutes)
    bars = sd.Bars.from_arrays(ts, close - 0.1, close + 0.5, close - 0.7, close,
                               np.arange(1.0, len(ts) + 1), interval="1m")
    return cal, bars, minutes


def check_kernels() -> None:
    """find_gaps, resample and quality on a few bars, against answers worked out here."""
    cal, bars, minutes = few_bars()
    t0 = int(bars.ts[0])
    gaps = sd.find_gaps(bars, calendar=cal)
    assert len(gaps) == 2, gaps
    assert gaps.start_ns.tolist() == [t0 + 10 * MINUTE, t0 + 40 * MINUTE], gaps
    assert gaps.bar_count.tolist() == [3, 1], gaps
    assert gaps[0].end_time - gaps[0].start_time == np.timedelta64(3, "m").item()

    out = sd.resample(bars, "15m", cal)
    bucket = minutes // 15
    assert out.ts.tolist() == [t0 + 15 * MINUTE * b for b in range(4)], out.ts
    for b in range(4):
        rows = bucket == b
        assert out.open[b] == bars.open[rows][0] and out.close[b] == bars.close[rows][-1]
        assert out.high[b] == bars.high[rows].max() and out.low[b] == bars.low[rows].min()
        assert out.volume[b] == bars.volume[rows].sum()
    assert out.count is not None and out.count.tolist() == [12, 15, 14, 15], out.count
    score = sd.quality(bars, calendar=cal).score
    assert abs(score - 100 * 56 / 60) < 1e-9, score
    print(f"smoke: find_gaps {len(gaps)} gaps, resample {len(out)} 15m bars, quality {score:.2f}")


def check_streaming(out: Path) -> None:
    """A session streamed bar by bar (SessionCoordinator over SessionData.add_bar) equals
    the batch kernels on the same bars."""
    cal, bars, _ = few_bars()
    co = sd.SessionCoordinator(cal, derived_intervals=["5m", "15m"])
    co.start("2024-03-05")
    co.add_symbol("ACME")
    co.mark_loaded("ACME")
    # add_bar returns 0 for a bar stored, -1 for a symbol not in the session (counted only).
    codes = [co.stream("ACME", int(bars.ts[i]), float(bars.open[i]), float(bars.high[i]),
                       float(bars.low[i]), float(bars.close[i]), float(bars.volume[i]))
             for i in range(len(bars))]
    assert codes == [0] * len(bars), sorted(set(codes))
    stored = len(codes)
    assert co.session_data.add_bar("NOPE", int(bars.ts[0]), 1.0, 1.0, 1.0, 1.0, 1.0) == -1
    assert co.session_data.unknown_bars == {"NOPE": 1}, co.session_data.unknown_bars
    summary = co.stop(export_to=out)
    rows = {r["interval"]: r for r in summary.rows if r["symbol"] == "ACME"}
    assert rows["1m"]["bars"] == len(bars) and rows["1m"]["missing"] == 4, rows["1m"]
    assert rows["1m"]["gaps"] == len(sd.find_gaps(bars, calendar=cal)), rows["1m"]
    for name in ("5m", "15m"):
        batch = sd.resample(bars, name, cal)
        assert rows[name]["bars"] == len(batch), (name, rows[name])
        missing = int(sd.find_gaps(batch, calendar=cal).bar_count.sum())
        assert rows[name]["missing"] == missing, (name, rows[name], missing)
    import pyarrow.dataset as ds

    table = ds.dataset(out / "bars" / "interval=15m", format="parquet").to_table()
    batch = sd.resample(bars, "15m", cal)
    assert np.array_equal(table.column("close").to_numpy(), batch.close), "streamed 15m close"
    assert np.array_equal(table.column("volume").to_numpy(), batch.volume), "streamed 15m volume"
    print(f"smoke: streamed {stored} bars; 5m/15m equal the batch kernels")


def main() -> None:
    check_installed()
    # ignore_cleanup_errors: on Windows a file pyarrow still maps cannot be removed yet.
    with tempfile.TemporaryDirectory(prefix="sessiondata-smoke-", ignore_cleanup_errors=True) as tmp:
        check_main_job(Path(tmp) / "sample")
        check_kernels()
        check_streaming(Path(tmp) / "stream")
    print("smoke: all checks passed")


if __name__ == "__main__":
    main()
