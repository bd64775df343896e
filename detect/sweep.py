"""Moved: `python -m detect sweep` (this name says so in one line)."""

import sys

sys.exit("python -m detect.sweep is now: python -m detect sweep " + " ".join(sys.argv[1:]))
