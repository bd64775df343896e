"""The one exception type the entry scripts turn into a readable message instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig


class DetectError(Exception):
    """Bad input or configuration: the message names the thing and what to do about it."""


def exit_on_error(run: Callable[[DictConfig], Any], cfg: DictConfig) -> None:
    """Call an entry point's `run(cfg)`; a DetectError ends the process with its one line (no traceback), exit 1."""
    try:
        run(cfg)
    except DetectError as error:
        sys.exit(f"error: {error}")
