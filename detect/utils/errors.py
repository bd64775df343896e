"""The one exception type the entry scripts turn into a readable message instead of a traceback."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from typing import Any


class DetectError(Exception):
    """Bad input or configuration: the message names the thing and what to do about it."""


# Where a library's message gets to the point: torch's weights-only text after its paragraphs of advice.
REASON_MARKER = "WeightsUnpickler error:"
FIRST_LINE_LIMIT = 200  # characters of a library's line kept in a message


def first_line(error: BaseException, typed: bool = True) -> str:
    """The first meaningful line of a library's error as `Type: line` (unless not `typed`): torch's weights-only
    advice, OpenVINO's `Exception from src/...` locations, empty lines and headers ending in ':' (load_state_dict's)
    skipped; a YAML error gives its line and column. A line over `FIRST_LINE_LIMIT` characters keeps its first
    sentence, cut at the limit if still longer."""
    text = str(error).split(REASON_MARKER)[-1]
    mark = getattr(error, "problem_mark", None)  # yaml's MarkedYAMLError
    if getattr(error, "problem", None) and mark is not None:
        text = f"{error.problem} (line {mark.line + 1}, column {mark.column + 1})"
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith("Exception from ")]
    lines = [line for line in lines if not line.endswith(":")] or lines
    line = lines[0] if lines else ""
    if len(line) > FIRST_LINE_LIMIT:  # its first sentence, or its beginning
        line = re.split(r"(?<=\.)\s", line, maxsplit=1)[0]
    if len(line) > FIRST_LINE_LIMIT:
        line = line[:FIRST_LINE_LIMIT - 3].rstrip() + "..."
    name = type(error).__name__
    return (f"{name}: {line}" if typed else line) if line else name


def check_choice(key: str, value: object, allowed: Iterable[object]) -> None:
    """Raise a DetectError naming `key` and the allowed values unless `value` is one of them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise DetectError(f"{key}={value!r} is not allowed; choose one of {', '.join(map(str, allowed))}")


def exit_on_error(run: Callable[[Any], Any], arg: Any) -> None:
    """Call `run(arg)` (an entry point's run on its config); a DetectError ends the process with its one line (no
    traceback), exit 1."""
    try:
        run(arg)
    except DetectError as error:
        sys.exit(f"error: {error}")
