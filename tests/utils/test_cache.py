"""Cached folders (synthetic data, exported models): written atomically, never read half-written, put under the
cache directory when the weights' folder is read-only; no import circles among detect's modules."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from detect.utils.cache import cached_folder


def test_a_failed_write_leaves_nothing_that_is_reused(tmp_path: Path) -> None:
    def crash(folder: Path) -> None:
        (folder / "model.xml").write_text("<net")  # the first file of two, then the converter dies
        raise RuntimeError("killed while writing")

    def write(folder: Path) -> None:
        (folder / "model.bin").write_bytes(b"weights")
        (folder / "model.xml").write_text("<net/>")

    with pytest.raises(RuntimeError, match="killed"):
        cached_folder(tmp_path, "openvino", {"k": 1}, "model.xml", crash)
    assert list((tmp_path / "openvino").iterdir()) == []  # no final folder, no temporary one left
    folder = cached_folder(tmp_path, "openvino", {"k": 1}, "model.xml", write)
    assert (folder / "model.xml").read_text() == "<net/>" and (folder / "model.bin").is_file()
    assert cached_folder(tmp_path, "openvino", {"k": 1}, "model.xml", crash) == folder  # written once


def test_a_read_only_weights_folder_puts_the_export_under_the_cache_directory(tmp_path: Path) -> None:
    weights = tmp_path / "models" / "best.ckpt"
    weights.parent.mkdir()
    weights.write_bytes(b"checkpoint")
    weights.parent.chmod(0o555)
    code = ("import sys; from pathlib import Path; from detect.utils.cache import cached_beside; "
            "print(cached_beside(Path(sys.argv[1]), 'onnx', {'w': sys.argv[1]}, 'model.onnx', "
            "lambda f: (f / 'model.onnx').write_bytes(b'graph')))")
    command = [sys.executable, "-c", code, str(weights)]
    if os.geteuid() == 0:  # root writes anywhere: drop that capability for the child
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: a read-only folder cannot be made")
        command = ["setpriv", "--bounding-set", "-dac_override", *command]
    env = {**os.environ, "DETECT_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    finally:
        weights.parent.chmod(0o755)
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder.parent == tmp_path / "cache" / "onnx" and (folder / "model.onnx").read_bytes() == b"graph"
    assert sorted(p.name for p in weights.parent.iterdir()) == ["best.ckpt"]


def module_imports() -> dict[str, set[str]]:
    """detect's modules (package __init__ files aside: they re-export) and the detect modules each imports, in
    functions too."""
    files = {".".join(path.relative_to(ROOT).with_suffix("").parts): path for path in (ROOT / "detect").rglob("*.py")
             if path.name != "__init__.py"}
    graph = {}
    for name, path in files.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("detect"):
                imported |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                             for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        graph[name] = imported & set(files) - {name}
    return graph


def test_no_import_circles() -> None:
    graph, circles = module_imports(), []

    def walk(path: list[str]) -> None:
        for name in sorted(graph[path[-1]]):
            if name == path[0]:
                circles.append(" -> ".join([*path, name]))
            elif name not in path and name > path[0]:  # each circle once, from its smallest module
                walk([*path, name])

    for start in sorted(graph):
        walk([start])
    assert circles == []
