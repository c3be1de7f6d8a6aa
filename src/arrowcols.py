"""NumPy columns to and from Arrow without a copy and without pandas.

pyarrow's ``pa.array``, ``Array.to_numpy`` and ``np.asarray(array)`` import pandas the first
time any of them runs, whatever the type (pyarrow checks for pandas objects): about a third of
a second of a command that never needs pandas.  The main job moves fixed-width numbers only
(prices, int64 nanoseconds, dates, dictionary codes) and a few short lists of names, which
these helpers view in place through Arrow buffers.  Anything else falls back to pyarrow.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

# Arrow type names of fixed-width numbers -> NumPy dtype.
_NUMPY_OF = {"int8": "i1", "int16": "i2", "int32": "i4", "int64": "i8", "uint8": "u1",
             "uint16": "u2", "uint32": "u4", "uint64": "u8", "float": "f4", "double": "f8",
             "date32[day]": "i4"}


_STORAGE: dict[Any, np.dtype | None] = {}   # Arrow type -> dtype of its values buffer


def _storage_dtype(typ: Any) -> np.dtype | None:
    """The NumPy dtype of the values buffer of a fixed-width Arrow type (None otherwise)."""
    got = _STORAGE.get(typ, False)
    if got is not False:
        return got  # type: ignore[return-value]
    import pyarrow as pa

    if pa.types.is_timestamp(typ) or pa.types.is_date64(typ) or pa.types.is_duration(typ):
        dt: np.dtype | None = np.dtype(np.int64)
    else:
        name = _NUMPY_OF.get(str(typ))
        dt = None if name is None else np.dtype(name)
    _STORAGE[typ] = dt
    return dt


def to_numpy(arr: Any) -> np.ndarray:
    """An Arrow array (or chunked array) as NumPy: a number column without nulls in one chunk
    is viewed in place (read-only, no copy; timestamps and dates as their integers); anything
    else goes through ``to_numpy``."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    typ = arr.type
    if pa.types.is_timestamp(typ) or pa.types.is_date64(typ) or pa.types.is_duration(typ):
        arr = arr.view(pa.int64())
    dtype = _NUMPY_OF.get(str(arr.type)) if str(arr.type) != "date32[day]" else None
    if dtype is None or arr.null_count:
        return arr.to_numpy(zero_copy_only=False)
    dt = np.dtype(dtype)
    data = arr.buffers()[1]
    if data is None or not len(arr):
        return np.empty(0, dt)
    return np.frombuffer(data, dtype=dt, count=len(arr), offset=arr.offset * dt.itemsize)


def from_numpy(values: np.ndarray, typ: Any, mask: np.ndarray | None = None) -> Any:
    """A fixed-width Arrow array of type ``typ`` over ``values`` (no copy when they are
    contiguous in the type's storage dtype: int64 for timestamps, int32 days for date32);
    ``mask`` marks nulls."""
    import pyarrow as pa

    dtype = _storage_dtype(typ)
    if dtype is None:  # pragma: no cover - a caller's mistake
        raise TypeError(f"from_numpy takes a fixed-width number type, got {typ}")
    v = values if (type(values) is np.ndarray and values.dtype == dtype
                   and values.flags.c_contiguous) else np.ascontiguousarray(values, dtype=dtype)
    validity, nulls = None, 0
    if mask is not None:
        mask = np.asarray(mask, bool)
        nulls = int(mask.sum())
        if nulls:
            validity = pa.py_buffer(np.packbits(~mask, bitorder="little"))
    return pa.Array.from_buffers(typ, len(v), [validity, pa.py_buffer(v)], null_count=nulls)


def strings(values: Sequence[str]) -> Any:
    """An Arrow ``string`` array of Python strings."""
    import pyarrow as pa

    raw = [str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(raw) + 1, np.int32)
    if raw:
        np.cumsum([len(r) for r in raw], out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(raw),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))])


def dictionary(codes: np.ndarray, names: Sequence[str], mask: np.ndarray | None = None) -> Any:
    """A ``dictionary<int32, string>`` array: ``codes`` into ``names``; ``mask`` marks nulls."""
    import pyarrow as pa

    codes = np.asarray(codes)
    if mask is not None:
        codes = np.where(mask, 0, codes)   # a null's slot holds a valid code all the same
    return pa.DictionaryArray.from_arrays(from_numpy(codes, pa.int32(), mask), strings(names))
