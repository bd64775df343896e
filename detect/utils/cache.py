"""Folders written once and reused by later runs (synthetic data, exported models): each appears by an atomic rename
of a complete temporary folder, so no reader ever finds one half-written, and parallel writers (DDP ranks) may ask
for the same folder at once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def default_cache_dir() -> Path:
    """`$DETECT_CACHE` or `~/.cache/detect`."""
    return Path(os.environ.get("DETECT_CACHE", Path.home() / ".cache" / "detect"))


def cached_folder(cache_dir: str | Path | None, kind: str, params: dict, done_file: str,
                  write: Callable[[Path], None]) -> Path:
    """`<cache>/<kind>/<hash of params>/`, written once by `write(folder)` into a temporary folder beside it that is
    then renamed into place (with `done_file` in it)."""
    digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = cache_dir / kind / digest
    if not (folder / done_file).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{digest}."))
        try:
            write(tmp)
            os.rename(tmp, folder)
        except OSError:
            if not (folder / done_file).is_file():  # not a parallel writer that got there first
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def writable(folder: Path) -> bool:
    """Whether this process can create files in `folder`."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def cached_beside(source: Path, kind: str, params: dict, done_file: str, write: Callable[[Path], None]) -> Path:
    """`cached_folder` under `<source stem>_<kind>/` beside `source`, or under `<cache>/<kind>/` when the source's
    folder is read-only (`params` must then tell sources apart: their full path)."""
    if writable(source.parent):
        return cached_folder(source.parent, f"{source.stem}_{kind}", params, done_file, write)
    return cached_folder(None, kind, params, done_file, write)
