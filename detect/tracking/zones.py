"""Counting zones as configured (configs/zones/<name>.yaml, or the same keys inline): lines, whose crossings are
counted in and out, and polygons, whose occupancy, entries, exits and time inside are measured. Coordinates are
pixels of the source's frames; a zone is checked against the frame size at the first frame."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import supervision as sv
from omegaconf import DictConfig, OmegaConf

from detect.config import CONFIG_DIR
from detect.utils.errors import DetectError, first_line

ZONES_HELP = ("lines: {<name>: {start: [x, y], end: [x, y]}}, polygons: {<name>: {points: [[x, y], ...]}} in frame "
              "pixels (see configs/zones/synthetic.yaml)")
ANCHORS = {position.value.lower(): position for position in sv.Position}  # a polygon's anchor: center, bottom_center..

Point = tuple[float, float]
LINE_SETTINGS = {"anchor": lambda value: str(value).lower(), "min_frames": int, "band": float, "window_s": float,
                 "bridge_s": float}  # a line's optional keys, as LineZoneSpec's fields


@dataclass(frozen=True)
class LineZoneSpec:
    """A counting segment from `start` to `end`: a track whose `anchor` point steps through it onto its left (as
    drawn, y down) is counted "in", onto its right "out" (detect.tracking.crossing), once more than `band` pixels
    past the line for `min_frames` frames; at most once per direction within `window_s`; a lost track recovered
    under a new id within `bridge_s` keeps its side."""

    name: str
    start: Point
    end: Point
    anchor: str = "center"
    min_frames: int = 1
    band: float = 0.0
    window_s: float = 1.0
    bridge_s: float = 1.0


@dataclass(frozen=True)
class PolygonZoneSpec:
    """A polygon; a box is inside when its `anchor` point is, and has left once seen outside `min_frames` frames in
    a row (a box that jitters on the border stays one visit)."""

    name: str
    points: tuple[Point, ...]
    anchor: str = "bottom_center"
    min_frames: int = 3


@dataclass(frozen=True)
class ZonesSpec:
    """The lines and polygons of one source; a track inside a polygon that is not seen for `exit_after_s` seconds
    has left it (at the last frame it was seen)."""

    name: str
    lines: tuple[LineZoneSpec, ...]
    polygons: tuple[PolygonZoneSpec, ...]
    exit_after_s: float = 1.0

    def points(self) -> dict[str, tuple[Point, ...]]:
        """Every zone's points by name."""
        return {**{line.name: (line.start, line.end) for line in self.lines},
                **{polygon.name: polygon.points for polygon in self.polygons}}


def _point(zone: str, value: Any) -> Point:
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DetectError(f"zone {zone!r}: {value!r} is not a point [x, y]; {ZONES_HELP}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise DetectError(f"zone {zone!r}: point {value!r} is not finite")
    return x, y


def _line(name: str, settings: Mapping[str, Any]) -> LineZoneSpec:
    unknown = set(settings) - set(LINE_SETTINGS) - {"start", "end"}
    if unknown or "start" not in settings or "end" not in settings:
        raise DetectError(f"line {name!r} needs start and end (and optionally {', '.join(LINE_SETTINGS)}), got "
                          f"{sorted(settings)}; {ZONES_HELP}")
    try:
        options = {key: kind(settings[key]) for key, kind in LINE_SETTINGS.items() if key in settings}
    except (TypeError, ValueError) as error:
        raise DetectError(f"line {name!r}: {first_line(error, typed=False)}") from None
    line = LineZoneSpec(name, _point(name, settings["start"]), _point(name, settings["end"]), **options)
    if line.start == line.end:
        raise DetectError(f"line {name!r} has zero length (start = end = {list(line.start)}); give it two "
                          "different points")
    if line.anchor not in ANCHORS:
        raise DetectError(f"line {name!r}: anchor={line.anchor!r} is not one of {', '.join(ANCHORS)}")
    if line.min_frames < 1:
        raise DetectError(f"line {name!r}: min_frames={line.min_frames} must be >= 1")
    for key in ("band", "window_s", "bridge_s"):
        if not getattr(line, key) >= 0:
            raise DetectError(f"line {name!r}: {key}={getattr(line, key)} must be >= 0")
    return line


def _polygon(name: str, settings: Mapping[str, Any]) -> PolygonZoneSpec:
    unknown = set(settings) - {"points", "anchor", "min_frames"}
    if unknown or "points" not in settings:
        raise DetectError(f"polygon {name!r} needs points (and optionally anchor, min_frames), got "
                          f"{sorted(settings)}; {ZONES_HELP}")
    points = tuple(_point(name, point) for point in settings["points"])
    if len(points) < 3 or len(set(points)) < 3:
        raise DetectError(f"polygon {name!r} has {len(set(points))} distinct points; it needs at least 3")
    anchor = str(settings.get("anchor", "bottom_center")).lower()
    if anchor not in ANCHORS:
        raise DetectError(f"polygon {name!r}: anchor={anchor!r} is not one of {', '.join(ANCHORS)}")
    min_frames = settings.get("min_frames", PolygonZoneSpec.min_frames)
    if not isinstance(min_frames, int) or min_frames < 1:
        raise DetectError(f"polygon {name!r}: min_frames={min_frames!r} must be a whole number >= 1")
    return PolygonZoneSpec(name, points, anchor, min_frames)


def load_zones(zones: str | Mapping[str, Any] | DictConfig | ZonesSpec) -> ZonesSpec:
    """The zones of a name of configs/zones, a mapping of the same keys (an inline config), or a ZonesSpec."""
    if isinstance(zones, ZonesSpec):
        return zones
    if isinstance(zones, str):
        path = CONFIG_DIR / "zones" / f"{zones}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (CONFIG_DIR / "zones").glob("*.yaml"))
            raise DetectError(f"zones={zones!r} is not in configs/zones ({', '.join(known)}); or pass the zones "
                              f"inline: {ZONES_HELP}")
        settings: Any = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        settings.setdefault("name", zones)
    else:
        settings = OmegaConf.to_container(zones, resolve=True) if isinstance(zones, DictConfig) else dict(zones)
    unknown = set(settings) - {"name", "lines", "polygons", "exit_after_s"}
    lines, polygons = settings.get("lines") or {}, settings.get("polygons") or {}
    if unknown:
        raise DetectError(f"zones: unknown keys {sorted(unknown)}; {ZONES_HELP}")
    if not isinstance(lines, Mapping) or not isinstance(polygons, Mapping) or not (lines or polygons):
        raise DetectError(f"zones: no line or polygon by name; {ZONES_HELP}")
    for name, zone in {**lines, **polygons}.items():
        if not isinstance(zone, Mapping):
            raise DetectError(f"zone {name!r}: {zone!r} is not a map of settings; {ZONES_HELP}")
    if set(lines) & set(polygons):
        raise DetectError(f"zones {sorted(set(lines) & set(polygons))} are both a line and a polygon; rename one")
    spec = ZonesSpec(str(settings.get("name", "inline")), tuple(_line(str(k), v) for k, v in lines.items()),
                     tuple(_polygon(str(k), v) for k, v in polygons.items()), float(settings.get("exit_after_s", 1.0)))
    if spec.exit_after_s < 0:
        raise DetectError(f"zones: exit_after_s={spec.exit_after_s} must be >= 0")
    return spec


def check_zones_in_frame(spec: ZonesSpec, width: int, height: int, source: str) -> None:
    """Every point of every zone inside the width x height frame of `source` (edges included), or one line naming
    the zone."""
    for name, points in spec.points().items():
        for x, y in points:
            if not (0 <= x <= width and 0 <= y <= height):
                raise DetectError(f"zone {name!r}: point [{x:g}, {y:g}] is outside the {width}x{height} frame of "
                                  f"{source}; give points within 0..{width} x 0..{height}")
