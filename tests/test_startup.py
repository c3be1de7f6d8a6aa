"""The command's start-up (issue 18, "fixed cost"): what ``sessiondata run`` imports before
and while it runs the main job on Parquet and CSV files.

pandas (which pyarrow's ``pa.array``/``to_numpy`` import on first use), pyarrow.compute,
pyarrow.csv, importlib.metadata and the modules of the other commands cost a few tenths of a
second at every start; the main job needs none of them.  Each check runs in a fresh
interpreter (the test process has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

MINUTE = 60_000_000_000
PROBE = """
import json, sys
from sessiondata import cli
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _bars(n: int = 390) -> "pa.Table":
    start = int(np.datetime64("2024-01-02T14:30", "ns").astype(np.int64))
    ts = start + MINUTE * np.arange(n, dtype=np.int64)
    close = 100.0 + np.cumsum(np.full(n, 0.01))
    return pa.table({"timestamp": pa.array(ts, pa.timestamp("ns", tz="UTC")),
                     "open": close, "high": close + 0.1, "low": close - 0.1,
                     "close": close, "volume": np.full(n, 10.0)})


def _modules(tmp_path: Path, *args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    assert doc["code"] == 0
    return set(doc["modules"])


# Modules the main job must not import: pandas and what only other commands use.
NOT_NEEDED = ("pandas", "pyarrow.compute", "pyarrow.csv", "pyarrow.dataset",
              "importlib.metadata", "exchange_calendars", "sessiondata.session",
              "sessiondata.coordinator", "sessiondata.inspection", "sessiondata.report",
              "sessiondata.distributed", "sessiondata.api", "sessiondata.processing")


def test_run_on_parquet_imports_none_of_what_it_does_not_need(tmp_path):
    pq.write_table(_bars(), tmp_path / "AAA.parquet")
    mods = _modules(tmp_path, "run", str(tmp_path / "AAA.parquet"), "--calendar", "24/7",
                    "--out", str(tmp_path / "out"), "-q")
    assert "sessiondata.engine" in mods and "pyarrow.parquet" in mods
    assert sorted(m for m in NOT_NEEDED if m in mods) == []


def test_run_on_csv_imports_no_pandas(tmp_path):
    t = _bars()
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{np.datetime_as_string(np.datetime64(int(v), 'ns'), unit='s')}Z,{o},{h},{lo},{c},"
        f"{vol}\n" for v, o, h, lo, c, vol in zip(
            t.column("timestamp").cast(pa.int64()).to_pylist(), *(
                t.column(n).to_pylist() for n in ("open", "high", "low", "close",
                                                   "volume"))))
    (tmp_path / "AAA.csv").write_text(text)
    mods = _modules(tmp_path, "run", str(tmp_path / "AAA.csv"), "--calendar", "24/7",
                    "--out", str(tmp_path / "out"), "-q", "--bars", "csv")
    assert "pandas" not in mods and "importlib.metadata" not in mods


def test_lazy_public_names_are_the_modules_objects():
    done = subprocess.run([sys.executable, "-c", (
        "import sys, sessiondata\n"
        "assert 'sessiondata.session' not in sys.modules\n"
        "from sessiondata import cli\n"
        "from sessiondata.check import FORMATS\n"          # the submodule named as a function
        "from sessiondata.session import SessionData\n"
        "assert sessiondata.SessionData is SessionData\n"
        "assert callable(sessiondata.check) and callable(sessiondata.diff)\n"
        "assert sessiondata.run.__module__ == 'sessiondata.job'\n"
        "assert set(sessiondata.__all__) <= set(dir(sessiondata))\n"
        "try:\n    sessiondata.no_such_name\nexcept AttributeError as e:\n    print(e)\n")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "no attribute 'no_such_name'" in done.stdout


def test_installed_version_reads_as_importlib_metadata():
    from importlib import metadata

    from sessiondata.versions import installed_version

    for dist in ("numpy", "pyarrow"):
        assert installed_version(dist) == metadata.version(dist)
    assert installed_version("no_such_distribution_here") is None
