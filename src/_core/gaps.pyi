"""Gap finding: expected slots of a grid against the bars present."""

from typing import TypeAlias

import numpy as np
import numpy.typing as npt

_I64: TypeAlias = npt.NDArray[np.int64]

def find_gaps_slots(
    ts: _I64, g_open: _I64, g_close: _I64, step_ns: int, until_ns: int,
    out_start: _I64, out_count: _I64,
) -> tuple[int, int, int, int, int, int]: ...
