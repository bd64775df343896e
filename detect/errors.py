"""The one exception type the entry scripts turn into a readable message instead of a traceback."""


class DetectError(Exception):
    """Bad input or configuration: the message names the thing and what to do about it."""
