"""Release metadata: the version lives in one place (src/_version.py), read by the build and
by the package.  The wheel itself is built, repaired, listed and smoke-tested by .ci/run."""

import importlib.metadata
from pathlib import Path

import pytest

import sessiondata
from sessiondata import _version

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_the_distributions():
    assert sessiondata.__version__ == _version.__version__
    assert sessiondata.__version__ == importlib.metadata.version("sessiondata")


def test_pyproject_reads_the_version_module():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"]
    assert "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "sessiondata._version.__version__"}
    # One place: no other module of the package spells the version out.
    spelled = [p.name for p in (ROOT / "src").glob("*.py")
               if f'"{_version.__version__}"' in p.read_text() and p.name != "_version.py"]
    assert not spelled, spelled
