"""Data quality: present over expected slots, derived bars counted by coverage."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

_I64: TypeAlias = npt.NDArray[np.int64]
_F64: TypeAlias = npt.NDArray[np.float64]

def score_quality(ts: _I64, coverage: _F64, g_open: _I64, g_close: _I64, step_ns: int,
                  until_ns: int) -> tuple[int, int, float, int]: ...
def score_groups(ts: _I64, coverage: _F64, group_start: _I64, out_present: _I64,
                 out_covered: _F64, out_partial: _I64) -> None: ...
