"""The report (``sessiondata report``): a self-contained page, drawn in a real headless browser.

The browser tests need Chromium (``.ci/run`` installs Debian's package when it is absent);
outside CI they are skipped when no browser is found, in CI they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("plotly")

import sessiondata  # noqa: E402
from sessiondata.cli import main  # noqa: E402
from sessiondata.report import write_report  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def sample_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    sessiondata.run(out=out)
    return out


def test_the_page_is_self_contained(sample_export):
    path = write_report(sample_export)
    assert path == sample_export / "report.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # Nothing is fetched: no script or stylesheet by address, plotly's code is in the page.
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*\bhref=", page)
    assert "Plotly" in page and len(page) > 1_000_000
    # The heatmap holds every symbol and session; the timeline the kinds; the summary both
    # scores.
    for label in ("ACME", "BOLT", "CRUX", "2024-11-27", "completeness", "data quality",
                  "no_trade", "outage", "Worst sessions", "Worst symbols"):
        assert label in page, label
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_report_command_and_run_report(sample_export, tmp_path, capsys):
    assert main(["report", str(sample_export), "--output", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size > 1_000_000
    out = tmp_path / "run-out"
    assert main(["run", "--out", str(out), "--report", "-q"]) == 0
    assert (out / "report.html").exists()
    assert main(["run", "--no-export", "--report", "-q"]) == 2
    assert "--report draws the export" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CME = DATA / "6EH4.XCME_1min_bars_20240101_20240131.csv.gz"


@pytest.mark.parametrize("case", ["sample", "sample-no-anomalies", "cme"])
def test_the_run_draws_the_page_the_export_draws(case, tmp_path, monkeypatch):
    """``run --report`` draws the page from the run's columns and reads nothing of the
    export back; ``report DIR`` reads the export: the same page, byte for byte."""
    args = ["--anomalies", "none"] if case == "sample-no-anomalies" else []
    if case == "cme":
        if not CME.exists():
            pytest.skip(f"{CME} is not here")
        args = [str(CME), "--calendar", "CME_GLOBEX", "--stamp", "end"]
    import sessiondata.report as report

    def no_reading(*_a, **_k):
        raise AssertionError("the report of a run read the export back")

    out = tmp_path / "out"
    with monkeypatch.context() as m:
        for name in ("read_session_docs", "read_dataset", "read_manifest"):
            m.setattr(report, name, no_reading)
        assert main(["run", *args, "--out", str(out), "--report", "-q"]) == 0
    assert main(["report", str(out), "--output", str(tmp_path / "again.html")]) == 0
    page = (out / "report.html").read_bytes()
    assert page == (tmp_path / "again.html").read_bytes()
    assert b"Worst sessions" in page


# -- in a browser -------------------------------------------------------------------------


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("no headless browser in CI: .ci/run installs Debian's chromium")
    pytest.skip("no Chromium found (apt-get install chromium)")


def load_in_browser(page: Path, shot: Path, size: str = "1400,1800") -> list[str]:
    """Load a page in headless Chromium, screenshot it; return the console errors."""
    proc = subprocess.run(
        [_browser(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000",
         f"--window-size={size}", f"--screenshot={shot}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return console_errors(proc.stderr)


def console_errors(stderr: str) -> list[str]:
    """The page's console messages and uncaught exceptions in Chromium's log (lines like
    ``[...:INFO:CONSOLE:1] "Uncaught ReferenceError: ...", source: ...``).  Chromium logs
    every console message at one level, so any message counts: the report logs none."""
    return [line for line in stderr.splitlines()
            if re.search(r":CONSOLE[:(]", line) or "Uncaught" in line]


def read_png(path: Path) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG (as Chromium writes them) as an array [h, w, channels]."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    assert header is not None
    w, h, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    ch = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * ch)
    img = np.zeros((h, w * ch), np.int32)
    prev = np.zeros(w * ch, np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        cur = np.zeros(w * ch, np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:
            for x in range(w * ch):
                a = cur[x - ch] if x >= ch else 0
                b = prev[x]
                c = prev[x - ch] if x >= ch else 0
                if f == 1:
                    p = a
                elif f == 3:
                    p = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + p) & 255
        img[y] = cur
        prev = cur
    return img.reshape(h, w, ch)[..., :3].astype(np.uint8)


def test_console_errors_are_found(tmp_path):
    """The check can fail: a page that throws is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('boom');"
                    "undefined_function();</script></body></html>")
    errors = load_in_browser(page, tmp_path / "bad.png", "400,300")
    assert any("boom" in e for e in errors) and any("Uncaught" in e for e in errors), errors


def test_the_page_loads_without_errors_and_shows_the_heatmap(sample_export, tmp_path):
    page = write_report(sample_export, tmp_path / "report.html")
    shot = tmp_path / "report.png"
    errors = load_in_browser(page, shot)
    assert errors == []
    img = read_png(shot)
    # The heatmap's complete cells: RdYlGn's dark green (0, 104, 55) over a large area, and
    # the cell of BOLT's lost 37 minutes on 2024-11-27 in the red-orange end of the scale.
    green = (np.abs(img.astype(int) - (0, 104, 55)).sum(axis=-1) < 40).sum()
    assert green > 100_000, green
    reddish = ((img[..., 0] > 150) & (img[..., 1] < 120) & (img[..., 2] < 90)).sum()
    assert reddish > 2_000, reddish
