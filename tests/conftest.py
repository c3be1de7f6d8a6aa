"""Test settings: hypothesis profiles (200 examples by default, 100,000 with SESSIONDATA_LONG=1,
or SESSIONDATA_EXAMPLES=n) and the ``slow`` marker, which runs only in the long mode."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

LONG = os.environ.get("SESSIONDATA_LONG", "0") not in ("", "0", "false", "False")

# The exchange calendars' on-disk cache of this test session, not the user's: a stored
# calendar keeps the widest range any earlier process asked for (tests widen it by a year at
# a time), so tests that widen it would depend on what ran on this machine before, and would
# grow the user's cache.  Tests of the cache itself set their own folder.
if "SESSIONDATA_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["SESSIONDATA_CACHE"] = tempfile.mkdtemp(prefix="sessiondata-test-cache-")
    atexit.register(shutil.rmtree, os.environ["SESSIONDATA_CACHE"], ignore_errors=True)

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
# SESSIONDATA_EXAMPLES overrides the number of examples of either mode.
_EXAMPLES = os.environ.get("SESSIONDATA_EXAMPLES")
settings.register_profile("sessiondata-short", max_examples=int(_EXAMPLES or 200), **_COMMON)
settings.register_profile("sessiondata-long", max_examples=int(_EXAMPLES or 100_000), **_COMMON)
settings.load_profile("sessiondata-long" if LONG else "sessiondata-short")


def pytest_collection_modifyitems(config, items):
    if LONG:
        return
    skip = pytest.mark.skip(reason="long mode only: set SESSIONDATA_LONG=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
