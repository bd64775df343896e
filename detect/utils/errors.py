"""The one exception type the entry scripts turn into a readable message instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any


class DetectError(Exception):
    """Bad input or configuration: the message names the thing and what to do about it."""


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
