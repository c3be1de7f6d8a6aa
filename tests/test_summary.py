"""The one summary of a run: what the CLI, the coordinator and the backtest read."""

import zoneinfo

import numpy as np

from sessiondata.summary import gap_times

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")


def ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


def test_an_overnight_gap_says_its_day():
    """Issue 19: a CME session dated 2024-01-05 starts at 17:00 Chicago on the 4th; a gap
    there printed as a bare 22:22 read as the evening of the 5th."""
    assert gap_times(ns("2024-01-05T04:22"), ns("2024-01-05T04:25"), "2024-01-05",
                     CHICAGO) == "Thu 22:22-Thu 22:25"
    assert gap_times(ns("2024-01-05T05:58"), ns("2024-01-05T06:02"), "2024-01-05",
                     CHICAGO) == "Thu 23:58-00:02"
    assert gap_times(ns("2024-01-05T18:43"), ns("2024-01-05T18:49"), "2024-01-05",
                     CHICAGO) == "12:43-12:49"
