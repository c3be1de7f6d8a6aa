"""Data quality: present over expected slots, derived bars counted by coverage."""

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

def score_quality(ts: I64, coverage: F64, g_open: I64, g_close: I64, step_ns: int,
                  until_ns: int) -> tuple[int, int, float, int]: ...
def score_groups(ts: I64, coverage: F64, group_start: I64, out_present: I64,
                 out_covered: F64, out_partial: I64) -> None: ...
