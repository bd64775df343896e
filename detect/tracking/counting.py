"""Counting on tracked results: line crossings in / out per class (detect.tracking.crossing's rule) and who is
inside polygons (supervision's PolygonZone): `ZoneCounter.update(result)` sets `result.counts` (totals so far) and `result.events` (this frame's
crossings, entries and exits), one counter per source. Only confirmed tracks (id >= 0) count."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import supervision as sv

from detect.structures import Result
from detect.tracking.crossing import LineCrossings
from detect.tracking.zones import ANCHORS, ZonesSpec, check_zones_in_frame, load_zones
from detect.utils.errors import DetectError

ASSUMED_FPS = 30.0  # a source that reports no frame rate (some streams): its frame numbers as 30 per second
LINE_COLOR, POLYGON_COLOR = (255, 255, 255), (0, 215, 255)  # BGR


@dataclass
class Visit:
    """A track inside a polygon: the frame it entered, the last frame it was seen inside, and since when it has been
    seen outside (None: it has not, since then)."""

    entered: int
    last_seen: int
    class_name: str
    outside_since: int | None = None
    frames_outside: int = 0


@dataclass
class PolygonState:
    zone: sv.PolygonZone
    min_frames: int  # frames seen outside in a row that end a visit
    inside: dict[int, Visit] = field(default_factory=dict)
    entries: Counter[str] = field(default_factory=Counter)
    exits: int = 0
    durations_s: list[float] = field(default_factory=list)
    occupancy_sum: int = 0
    max_occupancy: int = 0


class ZoneCounter:
    """The lines and polygons of `zones` over one source's tracked results; `fps` is the source's (frame index /
    fps is an event's time in seconds)."""

    def __init__(self, zones: str | Mapping[str, Any] | ZonesSpec, fps: float = 0.0) -> None:
        self.spec = load_zones(zones)
        self.fps = fps
        self._frames_per_s = fps if fps > 0 else ASSUMED_FPS  # for durations; event times stay None without fps
        self._exit_after_frames = self.spec.exit_after_s * self._frames_per_s
        self._lines = {line.name: LineCrossings(line, self._frames_per_s) for line in self.spec.lines}
        self._polygons = {polygon.name: PolygonState(sv.PolygonZone(np.array(polygon.points),
                                                                    (ANCHORS[polygon.anchor],)), polygon.min_frames)
                          for polygon in self.spec.polygons}
        self._checked_size: tuple[int, int] | None = None
        self._last: Result | None = None
        self.frames = 0

    def _time(self, frame: int) -> float | None:
        return round(frame / self.fps, 3) if self.fps > 0 else None

    def _event(self, result: Result, frame: int, track_id: int, class_name: str, zone: str,
               direction: str, **extra: Any) -> dict[str, Any]:
        return {"source": result.source, "frame": frame, "time": self._time(frame), "track_id": track_id,
                "class": class_name, "zone": zone, "direction": direction,
                "wall": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"), **extra}

    def update(self, result: Result) -> Result:
        """Count `result` (which needs `track_ids`); set `result.counts` and `result.events`; return `result`."""
        if result.track_ids is None:
            raise DetectError("zones count tracks: give the stream a tracker (tracker=bytetrack)")
        height, width = result.image.shape[:2]
        if self._checked_size != (width, height):
            check_zones_in_frame(self.spec, width, height, result.source)
            self._checked_size = (width, height)
        confirmed = result.track_ids >= 0
        names = np.array(result.names, dtype=object)[confirmed]
        detections = sv.Detections(xyxy=result.boxes.reshape(-1, 4)[confirmed].astype(np.float64),
                                   class_id=result.labels[confirmed].astype(int),
                                   tracker_id=result.track_ids[confirmed].astype(int))
        events: list[dict[str, Any]] = []
        for name, line in self._lines.items():
            anchors = detections.get_anchors_coordinates(ANCHORS[line.spec.anchor])
            for track_id, class_name, direction in line.update(result.frame, detections.tracker_id, anchors,
                                                               detections.xyxy, (width, height), list(names)):
                events.append(self._event(result, result.frame, track_id, class_name, name, direction))
        for name, state in self._polygons.items():
            events += self._update_polygon(result, name, state, detections, names)
        self.frames += 1
        self._last = result
        result.counts = self.counts()
        result.events = events
        return result

    def finish(self) -> list[dict[str, Any]]:
        """At the stream's end: the crossings that its tracks had begun (past the line, not yet past a band or
        min_frames), dated at the last frame and added to the counts."""
        if self._last is None:
            return []
        return [self._event(self._last, self._last.frame, track_id, class_name, name, direction)
                for name, line in self._lines.items()
                for track_id, class_name, direction in line.finish(self._last.frame)]

    def _update_polygon(self, result: Result, name: str, state: PolygonState, detections: sv.Detections,
                        names: np.ndarray) -> list[dict[str, Any]]:
        """Entries of tracks seen inside, exits of tracks seen outside `min_frames` frames in a row (at the first) or
        unseen for exit_after_s (at the last seen inside); the occupancy is the tracks inside after them (one
        outside or unseen for less still counts)."""
        inside = state.zone.trigger(detections)
        events, frame = [], result.frame
        seen = {int(track_id): bool(flag) for track_id, flag in zip(detections.tracker_id, inside)}
        for index, track_id in enumerate(detections.tracker_id.tolist()):
            if seen[track_id] and track_id not in state.inside:
                state.inside[track_id] = Visit(frame, frame, names[index])
                state.entries[names[index]] += 1
                events.append(self._event(result, frame, track_id, names[index], name, "enter"))
            elif seen[track_id]:
                state.inside[track_id].last_seen = frame
                state.inside[track_id].outside_since, state.inside[track_id].frames_outside = None, 0
        for track_id, visit in list(state.inside.items()):
            if seen.get(track_id) is False:
                visit.outside_since = frame if visit.outside_since is None else visit.outside_since
                visit.frames_outside += 1
            left = visit.frames_outside >= state.min_frames
            if left or frame - visit.last_seen > self._exit_after_frames:
                exit_frame = visit.outside_since if left else visit.last_seen
                duration = (exit_frame - visit.entered) / self._frames_per_s
                state.exits += 1
                state.durations_s.append(duration)
                del state.inside[track_id]
                events.append(self._event(result, exit_frame, track_id, visit.class_name, name, "exit",
                                          seconds_inside=round(duration, 3)))
        state.occupancy_sum += len(state.inside)
        state.max_occupancy = max(state.max_occupancy, len(state.inside))
        return events

    def counts(self) -> dict[str, Any]:
        """Each line's in / out so far and each polygon's occupancy (tracks inside now) and entries so far."""
        return {"lines": {name: {direction: sum(line.counts[direction].values()) for direction in ("in", "out")}
                          for name, line in self._lines.items()},
                "polygons": {name: {"occupancy": len(state.inside), "entries": sum(state.entries.values())}
                             for name, state in self._polygons.items()}}

    def summary(self) -> dict[str, Any]:
        """summary.json's `zones`: per line in / out (and per class); per polygon entries, exits, occupancy and time
        inside (of the visits that ended; `inside_at_end` are still in)."""
        polygons = {}
        for name, state in self._polygons.items():
            durations = state.durations_s
            polygons[name] = {
                "entries": sum(state.entries.values()), "exits": state.exits, "inside_at_end": len(state.inside),
                "entries_per_class": dict(sorted(state.entries.items())), "max_occupancy": state.max_occupancy,
                "mean_occupancy": state.occupancy_sum / self.frames if self.frames else None,
                "mean_seconds_inside": float(np.mean(durations)) if durations else None,
                "max_seconds_inside": max(durations) if durations else None}
        lines = {name: {**counts, **{f"{direction}_per_class": dict(sorted(self._lines[name].counts[direction].items()))
                                     for direction in ("in", "out")}}
                 for name, counts in self.counts()["lines"].items()}
        return {"config": self.spec.name, "lines": lines, "polygons": polygons}

    def draw(self, image: np.ndarray, counts: Mapping[str, Any]) -> None:
        """The lines with their in / out and the polygons with their occupancy, in place."""
        thickness = max(1, round(min(image.shape[:2]) / 400))
        scale = max(0.35, min(image.shape[:2]) / 1200)
        for line in self.spec.lines:
            start, end = np.round(line.start).astype(int), np.round(line.end).astype(int)
            cv2.line(image, tuple(start.tolist()), tuple(end.tolist()), LINE_COLOR, thickness, cv2.LINE_AA)
            value = counts["lines"][line.name]
            label_at = start + (end - start) / 4  # off the middle, where lines often cross
            _text(image, f"{line.name} in {value['in']} out {value['out']}", label_at, scale)
        for polygon in self.spec.polygons:
            points = np.round(polygon.points).astype(np.int32)
            cv2.polylines(image, [points], True, POLYGON_COLOR, thickness, cv2.LINE_AA)
            occupancy = counts["polygons"][polygon.name]["occupancy"]
            _text(image, f"{polygon.name} {occupancy}", points.mean(axis=0), scale)


def _text(image: np.ndarray, text: str, center: np.ndarray, scale: float) -> None:
    sv.draw_text(image, text, sv.Point(float(center[0]), float(center[1])), text_scale=scale, text_padding=2,
                 background_color=sv.Color.WHITE)


ZonesInput = str | Mapping[str, Any] | ZoneCounter | Sequence[ZoneCounter | None] | None


def zone_counter(zones: str | Mapping[str, Any] | ZoneCounter | None, tracker: object | None,
                 fps: float) -> ZoneCounter | None:
    """A ZoneCounter for `zones` (None without), which needs `tracker`: counting follows track ids."""
    if zones is None:
        return None
    if tracker is None:
        raise DetectError("zones count tracks: add a tracker (tracker=bytetrack, or sort, ocsort, botsort)")
    return zones if isinstance(zones, ZoneCounter) else ZoneCounter(zones, fps)


def zone_counters(zones: ZonesInput, trackers: Sequence[object | None],
                  readers: Sequence[Any]) -> list[ZoneCounter | None]:
    """One counter per source (a FrameReader, None where it did not open), each with its source's tracker: `zones`
    itself for one source, a new one per source from a name or settings, or the list given."""
    if isinstance(zones, Sequence) and not isinstance(zones, str):
        if len(zones) != len(readers):
            raise DetectError(f"{len(zones)} zone counters for {len(readers)} sources: pass one per source, or a name")
        return [zone_counter(counter, tracker, 0.0) for counter, tracker in zip(zones, trackers)]
    if isinstance(zones, ZoneCounter) and len(readers) > 1:
        raise DetectError("one ZoneCounter for several sources: pass a zones name (one counter each) or a list")
    return [zone_counter(zones, tracker, reader.fps) if reader is not None else None
            for tracker, reader in zip(trackers, readers)]


def format_counts(zones: Mapping[str, Any], errors: Mapping[str, Any] | None = None) -> str:
    """One line: each line's in / out (with the true ones when known), each polygon's entries and peak occupancy."""
    parts = []
    for name, line in zones["lines"].items():
        truth = (errors or {}).get(name, {})
        true = ""
        if "true_in" in truth:
            optional = truth["optional_in"] or truth["optional_out"]
            true = f" (true {truth['true_in']} / {truth['true_out']}" + (
                f", {truth['optional_in']} / {truth['optional_out']} optional at the border)" if optional else ")")
        parts.append(f"{name} in {line['in']} out {line['out']}{true}")
    parts += [f"{name} {polygon['entries']} entries, at most {polygon['max_occupancy']} inside"
              for name, polygon in zones["polygons"].items()]
    return "; ".join(parts)
