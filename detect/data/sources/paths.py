"""What `source=` names: several sources (a list, or a text file with one a line), and the image files of an image,
a folder or a glob, named by their path below the folder or the glob's root."""

from __future__ import annotations

import glob
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detect.utils.errors import DetectError

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
SOURCE_HELP = "pass an image, a folder of images, a glob ('photos/*.jpg'), a video file, a webcam index or a URL"
LIST_SUFFIXES = (".txt", ".list")  # a text file of sources, one a line


def parse_sources(source: str | int | Path | Sequence[Any]) -> list[Any]:
    """The sources `source` names: itself, the items of a list (paths and numbers as text, FrameReaders kept), or
    the lines of a .txt file (blank lines and lines starting with # left out)."""
    if isinstance(source, Sequence) and not isinstance(source, str):
        sources = [str(item) if isinstance(item, (str, int, Path)) else item for item in source]
    elif Path(str(source)).suffix.lower() in LIST_SUFFIXES and Path(str(source)).is_file():
        lines = (line.strip() for line in Path(str(source)).read_text().splitlines())
        sources = [line for line in lines if line and not line.startswith("#")]
    else:
        sources = [str(source)]
    if not sources:
        raise DetectError(f"source={source} names no source; {SOURCE_HELP} (or a list of them, or a .txt file "
                          "with one a line)")
    return sources


def glob_root(pattern: str) -> Path:
    """The folder a glob starts in: its leading components without wildcards ('photos/**/*.jpg' -> photos)."""
    parts = list(itertools.takewhile(lambda part: not glob.has_magic(part), Path(pattern).parts[:-1]))
    return Path(*parts) if parts else Path()


def list_images(source: str) -> tuple[list[Path], Path] | None:
    """The image files `source` names (an image, a folder's images, a glob's), sorted, and the folder their names
    are relative to (two a.jpg of a recursive glob keep apart); None if it names no image."""
    path = Path(source)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DetectError(f"folder {source} holds no images ({', '.join(IMAGE_SUFFIXES)}); {SOURCE_HELP}")
        return images, path
    if glob.has_magic(source):
        images = sorted(Path(p) for p in glob.glob(source, recursive=True) if p.lower().endswith(IMAGE_SUFFIXES))
        if not images:
            raise DetectError(f"no images match {source}; {SOURCE_HELP}")
        return images, glob_root(source)
    return ([path], path.parent) if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() else None
