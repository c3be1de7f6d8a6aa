"""The import-graph check of CI (.ci/import_graph.py): it finds cycles and arrows into the model."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / ".ci" / "import_graph.py")
assert _spec is not None and _spec.loader is not None
graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph)


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def test_the_package_has_no_cycle_and_a_clean_model():
    assert graph.main(["x", str(ROOT / "src")]) == 0


def test_a_lazy_import_back_is_a_cycle(tmp_path, capsys):
    src = _write(tmp_path, {"a.py": "from .b import x\n",
                            "b.py": "def f():\n    from .a import y\n"})
    assert graph.cycles(graph.graph(src)) == [["a", "b"]]
    assert graph.main(["x", str(src)]) == 1
    assert "import cycle: a <-> b" in capsys.readouterr().out


def test_type_checking_imports_do_not_count(tmp_path):
    src = _write(tmp_path, {"a.py": "from .b import x\n",
                            "b.py": "from typing import TYPE_CHECKING\n"
                                    "if TYPE_CHECKING:\n    from .a import y\n"})
    assert graph.cycles(graph.graph(src)) == []


def test_the_model_importing_a_reader_fails(tmp_path, capsys):
    src = _write(tmp_path, {"results.py": "def f():\n    from .documents import d\n",
                            "documents.py": "X = 1\n"})
    assert graph.main(["x", str(src)]) == 1
    assert "the results model imports documents" in capsys.readouterr().out


def test_a_package_is_one_node(tmp_path):
    src = _write(tmp_path, {"readers/__init__.py": "from .formats import f\n",
                            "readers/formats.py": "from ..bars import Bars\n",
                            "bars.py": "X = 1\n"})
    assert graph.graph(src)["readers"] == {"bars"}
