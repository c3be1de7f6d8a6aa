"""Compare two exports of ``sessiondata run`` (a speed change must not move a byte).

    python benchmarks/compare_exports.py OLD_EXPORT NEW_EXPORT

The session documents (``sessions/*.json``) must be byte for byte the same; the bar, gap and
anomaly datasets the same rows (their files may be split differently: rows are sorted by
their keys, NaN compared as equal); the manifests the same but for ``provenance`` and times.
Exits 1 and names what differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _table(files: list[Path]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    read = pacsv.read_csv if files[0].suffix == ".csv" else pq.read_table
    return pa.concat_tables([read(f) for f in files])


def _comparable(table: Any) -> Any:
    """Dictionary columns as text, NaN as a sentinel, rows sorted by their keys."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.cast(pa.schema([pa.field(f.name, pa.string()
                                           if pa.types.is_dictionary(f.type) else f.type)
                                  for f in table.schema]))
    for i, f in enumerate(table.schema):
        if pa.types.is_floating(f.type):
            col = table.column(i)
            table = table.set_column(i, f.name, pc.if_else(pc.is_nan(col), -1.5e300, col))
    keys = [(c, "ascending") for c in table.column_names
            if c in ("symbol", "session", "ts", "start", "kind")]
    return table.sort_by(keys)


def _nullable(schema: Any) -> Any:
    """``schema`` with every field nullable (its metadata dropped)."""
    import pyarrow as pa

    return pa.schema([f.with_nullable(True) for f in schema])


def _strip(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _strip(v) for k, v in doc.items()
                if k != "provenance" and "second" not in k}
    if isinstance(doc, list):
        return [_strip(v) for v in doc]
    return doc


def compare(old: Path, new: Path) -> list[str]:
    """What differs between two exports (empty when nothing does)."""
    problems = []
    a = sorted(p.name for p in (old / "sessions").glob("*.json"))
    b = sorted(p.name for p in (new / "sessions").glob("*.json"))
    if a != b:
        problems.append(f"session documents: {len(a)} vs {len(b)} files")
    for name in sorted(set(a) & set(b)):
        if (old / "sessions" / name).read_bytes() != (new / "sessions" / name).read_bytes():
            problems.append(f"sessions/{name} differs")
    for what in ("bars", "gaps", "anomalies"):
        parts = sorted({p.name for p in (old / what).glob("interval=*")}
                       | {p.name for p in (new / what).glob("interval=*")})
        for part in parts:
            fa = sorted((old / what / part).glob("part-*"))
            fb = sorted((new / what / part).glob("part-*"))
            if not fa or not fb:
                problems.append(f"{what}/{part}: in one export only")
                continue
            ta, tb = _table(fa), _table(fb)
            if ta.schema != tb.schema:
                if not _nullable(ta.schema).equals(_nullable(tb.schema)):
                    problems.append(f"{what}/{part}: schemas differ")
                    continue
                # Only nullability differs (the bar columns became REQUIRED): said, and
                # the rows still compared.
                problems.append(f"{what}/{part}: schemas differ in nullability only")
                ta, tb = ta.cast(_nullable(ta.schema)), tb.cast(_nullable(tb.schema))
            if not _comparable(ta).equals(_comparable(tb)):
                problems.append(f"{what}/{part}: rows differ ({ta.num_rows} vs {tb.num_rows})")
    ma = json.loads((old / "manifest.json").read_text())
    mb = json.loads((new / "manifest.json").read_text())
    if _strip(ma) != _strip(mb):
        keys = [k for k in sorted(set(ma) | set(mb))
                if k != "provenance" and _strip(ma.get(k)) != _strip(mb.get(k))]
        problems.append(f"manifest differs in {keys}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    old, new = Path(argv[1]), Path(argv[2])
    problems = compare(old, new)
    for p in problems:
        print(p)
    print(f"{old} vs {new}: {'the same' if not problems else f'{len(problems)} differences'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
