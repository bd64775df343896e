"""Moved: `python -m detect convert` (this name says so in one line)."""

import sys

sys.exit("python -m detect.convert is now: python -m detect convert " + " ".join(sys.argv[1:]))
