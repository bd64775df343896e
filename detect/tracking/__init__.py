"""Multi-object tracking and counting: trackers by name (trackers), line and polygon zones (zones), the crossing
rule of a line (crossing), the counter of tracks crossing them (counting), and the true crossings of a clip whose
boxes are known (truth). Imports detect.utils, detect.structures and detect.config only."""
