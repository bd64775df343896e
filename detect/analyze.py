"""Moved: `python -m detect analyze` (this name says so in one line)."""

import sys

sys.exit("python -m detect.analyze is now: python -m detect analyze " + " ".join(sys.argv[1:]))
