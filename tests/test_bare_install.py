"""The core runs without its extras (issue 10): pandas, polars and exchange_calendars blocked
in a subprocess, the readers, the weekly calendars in any zone, the embedded sample and the
main job still work, and a feature that needs an extra names it."""

import subprocess
import sys
import textwrap

import pytest

BLOCK = """
import importlib.abc
import sys

BLOCKED = ("pandas", "polars", "exchange_calendars")


class _Blocker(importlib.abc.MetaPathFinder):
    # An import of these fails as if they were not installed.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
"""


def run_py(code: str, tmp_path) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(BLOCK + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)


def test_readers_calendars_and_sample_without_pandas(tmp_path):
    out = run_py(f"""
        import numpy as np, pyarrow as pa, pyarrow.parquet as pq
        from sessiondata import Calendar, find_gaps, resample
        from sessiondata import readers, sample
        root = {str(tmp_path)!r}
        rows = ["timestamp,open,high,low,close,volume"]
        rows += [f"2024-03-{{d:02d}} {{h:02d}}:{{m:02d}}:00,1,2,0.5,1.5,10"
                 for d in (8, 11) for h in (9, 10) for m in range(60) if (h, m) >= (9, 30)]
        open(root + "/ACME.csv", "w").write("\\n".join(rows) + "\\n")
        res = readers.read_bars(root + "/ACME.csv", interval="1m", tz="America/New_York")
        cal = Calendar.weekly("America/New_York", "09:30", "16:00")
        res.check_sessions(cal, "1m")
        bars = res.bars["ACME"]
        assert len(bars) == 2 * 90, len(bars)
        # 2024-03-10 is the spring-forward Sunday: 09:30 EDT on the 11th is 13:30 UTC.
        assert str(bars.ts[-90].astype("datetime64[ns]")) == "2024-03-11T13:30:00.000000000"
        assert len(resample(bars, "5m", calendar=cal)) == 2 * 18
        gaps = find_gaps(bars, "1m", calendar=cal)
        first = gaps[0]          # 11:00 to the 16:00 close of the first day (EST)
        assert (str(first.start_time), first.bar_count) == ("2024-03-08 11:00:00-05:00", 300), \
            (str(first.start_time), first.bar_count)
        t = pa.table({{"timestamp": pa.array(bars.ts, pa.timestamp("ns", "UTC")),
                      "open": bars.open, "high": bars.high, "low": bars.low,
                      "close": bars.close}})
        pq.write_table(t, root + "/FX.parquet")
        fx = readers.read_bars(root + "/FX.parquet", interval="1m").bars["FX"]
        assert not fx.has_volume and np.isnan(fx.volume).all()
        smp = sample.generate()
        assert set(smp.bars) >= {{"ACME", "BOLT", "CRUX"}}
        try:
            Calendar.exchange("XNYS")
        except ImportError as exc:
            assert 'pip install "sessiondata[calendars]"' in str(exc), exc
        else:
            raise AssertionError("exchange_calendars was importable")
        try:
            bars.to_pandas()
        except ImportError as exc:
            assert 'pip install "sessiondata[pandas]"' in str(exc), exc
        for name in BLOCKED:
            assert name not in sys.modules, name
        print("ok")
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cli_main_job_without_pandas(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = ["timestamp,open,high,low,close"]          # FX quotes: no volume
    rows += [f"2024-01-02T{h:02d}:{m:02d}:00Z,1.1,1.2,1.0,1.15" for h in range(3)
             for m in range(60) if (h, m) != (1, 7)]
    (data / "EURUSD.csv").write_text("\n".join(rows) + "\n")
    out = run_py(f"""
        from sessiondata.cli import main
        code = main(["run", {str(data)!r}, "--calendar", "24/7", "--out",
                     {str(tmp_path / 'out')!r}, "--quiet"])
        print(code)
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0", out.stdout + out.stderr


@pytest.mark.parametrize("dep", ["pyarrow", "numpy"])
def test_core_dependencies_are_declared(dep):
    import tomllib
    from pathlib import Path

    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    deps = " ".join(meta["project"]["dependencies"])
    assert dep in deps
    for extra in ("pandas", "polars", "exchange_calendars"):
        assert extra not in deps
