"""Bars that are there but not real: the anomaly kinds (issue 22).

Placeholder for the kinds' names and codes; the detectors follow.
"""

from __future__ import annotations

#: The anomaly kinds, by code (the code is the index).
KINDS = ("filled", "stale", "spike", "jump", "volume_shift", "clock_shift",
         "duplicate_session")
FILLED, STALE, SPIKE, JUMP, VOLUME_SHIFT, CLOCK_SHIFT, DUPLICATE_SESSION = range(7)
