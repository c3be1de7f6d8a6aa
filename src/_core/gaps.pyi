"""Gap finding: expected slots of a grid against the bars present."""

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]

def find_gaps_slots(
    ts: I64, g_open: I64, g_close: I64, step_ns: int, until_ns: int,
    out_start: I64, out_count: I64,
) -> tuple[int, int, int, int, int, int]: ...
