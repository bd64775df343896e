"""The crossing rule of one counting line, meant to give a person's count on real, jittery tracks: a track has
crossed when its anchor point steps from its side through the segment (not the infinite line) to beyond a
hysteresis band on the other side and stays there `min_frames` frames; one count per track and direction within
`window_s`; a track lost and recovered under a new id (appearing near where an old id was heading when it vanished,
away from the frame's border, within `bridge_s`) keeps the old one's side, so the switch neither loses nor doubles a
crossing. A box further than JUMP box sizes from where its track was heading is another object's (the tracker gave
the id to another box): the track starts afresh there, uncounted. A track that
vanishes (or a stream that ends: `finish`) past the line but not yet past the band or `min_frames` has crossed.

supervision gives the anchors (Detections.get_anchors_coordinates); its LineZone is not used: it tests the anchor's
side within the band perpendicular to the segment (not the step through it), puts a point on the line on one side,
and has no band, window or recovery of lost ids, which is what loses and doubles crossings on real tracks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from detect.tracking.zones import LineZoneSpec

FORGET_S = 10.0  # a track unseen this long is forgotten (a tracker rarely keeps an id across a longer gap)
EDGE_PX = 1.0  # a box this close to the frame's border may be leaving or entering it: not bridged
JUMP = 1.0  # an anchor further than this many box sizes from where its track was heading is another object's


@dataclass
class TrackSide:
    """One track's state on one line."""

    side: int  # +1 on the "in" side (left of start -> end as drawn), -1 on the other, 0 none yet (born on the line)
    before: np.ndarray  # its last anchor on `side` or on the line: where a crossing starts from
    last: np.ndarray  # its last anchor
    last_frame: int
    reach: float  # its last box's larger side: JUMP times it is how far from its heading a box may be
    at_edge: bool  # its last box touched the frame's border
    name: str  # its class
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # its anchor's pixels a frame, smoothed
    beyond: np.ndarray | None = None  # its first anchor past the band on the other side, while it stays there
    frames_beyond: int = 0
    counted: dict[str, int] = field(default_factory=dict)  # direction -> frame of its last count


class LineCrossings:
    """Counts one line's crossings in and out (and per class) over one source's frames."""

    def __init__(self, spec: LineZoneSpec, frames_per_s: float) -> None:
        self.spec = spec
        self._start, self._end = np.array(spec.start), np.array(spec.end)
        self._vector = self._end - self._start
        self._length = float(np.hypot(*self._vector))
        self._window = spec.window_s * frames_per_s
        self._bridge = spec.bridge_s * frames_per_s
        self._forget = max(FORGET_S * frames_per_s, self._bridge, self._window)
        self.tracks: dict[int, TrackSide] = {}
        self._previous = -1  # the frame of the last update
        self.counts: dict[str, Counter[str]] = {"in": Counter(), "out": Counter()}

    def _distance(self, point: np.ndarray) -> float:
        """Signed distance from the line: positive on the "in" side (y down: the cross product's sign flips)."""
        offset = point - self._start
        return float(offset[0] * self._vector[1] - offset[1] * self._vector[0]) / self._length

    def _through_segment(self, before: np.ndarray, after: np.ndarray) -> bool:
        """The step before -> after (on the line's two sides, or from it) passes within the segment's ends."""
        d_before, d_after = self._distance(before), self._distance(after)
        point = before + (after - before) * d_before / (d_before - d_after)
        along = float(np.dot(point - self._start, self._vector)) / self._length ** 2
        return 0.0 <= along <= 1.0

    def update(self, frame: int, ids: np.ndarray, anchors: np.ndarray, boxes: np.ndarray,
               size: tuple[int, int], names: list[str]) -> list[tuple[int, str, str]]:
        """This frame's crossings as (track id, class, "in" | "out") of the confirmed tracks `ids` with their
        `anchors`, xyxy `boxes` and class `names` in a width x height frame, and of the tracks that vanished."""
        width, height = size
        at_edge = ((boxes[:, :2] <= EDGE_PX).any(axis=1) | (boxes[:, 2] >= width - EDGE_PX)
                   | (boxes[:, 3] >= height - EDGE_PX))
        reach = (boxes[:, 2:] - boxes[:, :2]).max(axis=1, initial=0.0)
        present = set(ids.tolist())
        crossings = []
        for index, (track_id, anchor) in enumerate(zip(ids.tolist(), anchors)):
            track = self.tracks.get(track_id) or self._recovered(track_id, anchor, frame, bool(at_edge[index]),
                                                                 present)
            if track is None:
                distance = self._distance(anchor)
                self.tracks[track_id] = TrackSide(int(np.sign(distance)), anchor, anchor, frame, float(reach[index]),
                                                  bool(at_edge[index]), names[index])
                continue
            if self._heading(track, anchor, frame) > JUMP * track.reach:  # the id went to another object
                track.side, track.before, track.beyond, track.frames_beyond = 0, anchor, None, 0
            crossings += self._counted(track_id, track, self._step(track, anchor, frame))
            gap = frame - track.last_frame
            track.velocity = (track.velocity + (anchor - track.last) / gap) / 2 if gap > 0 else track.velocity
            track.last, track.last_frame = anchor, frame
            track.reach, track.at_edge, track.name = float(reach[index]), bool(at_edge[index]), names[index]
        for track_id, track in list(self.tracks.items()):
            if track.last_frame == self._previous:  # vanished: a crossing it had begun is done
                crossings += self._counted(track_id, track, self._settle(track, frame))
            elif frame - track.last_frame > self._forget:
                del self.tracks[track_id]
        self._previous = frame
        return crossings

    def finish(self, frame: int) -> list[tuple[int, str, str]]:
        """The crossings that the tracks still seen at the stream's end had begun, as `update` gives them."""
        return [crossing for track_id, track in self.tracks.items()
                for crossing in self._counted(track_id, track, self._settle(track, frame))]

    def _counted(self, track_id: int, track: TrackSide, direction: str | None) -> list[tuple[int, str, str]]:
        if direction is None:
            return []
        self.counts[direction][track.name] += 1
        return [(track_id, track.name, direction)]

    def _settle(self, track: TrackSide, frame: int) -> str | None:
        """Count `track` as crossed if it was last seen past the line (but not yet past the band or min_frames)."""
        if track.side == 0 or self._distance(track.last) * track.side >= 0:
            return None
        track.beyond = track.beyond if track.beyond is not None else track.last
        return self._flip(track, track.last, frame)

    def _recovered(self, track_id: int, anchor: np.ndarray, frame: int, at_edge: bool,
                   present: set[int]) -> TrackSide | None:
        """The state of the lost track that a new id, seen away from the border, most likely continues: of those
        that vanished away from the border within bridge_s, the one heading nearest `anchor`, within JUMP times its
        size of it."""
        if at_edge or self._bridge <= 0:
            return None
        candidates = [(self._heading(track, anchor, frame), old_id) for old_id, track in self.tracks.items()
                      if old_id not in present and not track.at_edge and 0 < frame - track.last_frame <= self._bridge
                      and self._heading(track, anchor, frame) <= JUMP * track.reach]
        if not candidates:
            return None
        track = self.tracks.pop(min(candidates)[1])
        self.tracks[track_id] = track
        return track

    @staticmethod
    def _heading(track: TrackSide, anchor: np.ndarray, frame: int) -> float:
        """How far `anchor` is from where `track` was heading at `frame` (its last anchor moved at its velocity)."""
        return float(np.hypot(*(anchor - track.last - track.velocity * (frame - track.last_frame))))

    def _step(self, track: TrackSide, anchor: np.ndarray, frame: int) -> str | None:
        """Move `track` to `anchor`; the direction of the crossing it completes there, if any."""
        distance = self._distance(anchor)
        if track.side == 0:  # born on the line: its first side is where it goes, not a crossing
            track.side, track.before = int(np.sign(distance)), anchor
            return None
        if distance * -track.side <= self.spec.band:  # on its side, on the line or in the band
            track.beyond, track.frames_beyond = None, 0
            if distance * track.side >= 0:
                track.before = anchor
            return None
        if track.beyond is None:
            track.beyond = anchor
        track.frames_beyond += 1
        if track.frames_beyond < self.spec.min_frames:
            return None
        return self._flip(track, anchor, frame)

    def _flip(self, track: TrackSide, anchor: np.ndarray, frame: int) -> str | None:
        """Put `track` on its other side, now at `anchor`; the direction, if its step went through the segment and it
        was not counted so within the window."""
        through = self._through_segment(track.before, track.beyond)
        track.side, track.before, track.beyond, track.frames_beyond = -track.side, anchor, None, 0
        direction = "in" if track.side > 0 else "out"
        if not through or frame - track.counted.get(direction, -np.inf) <= self._window:
            return None
        track.counted[direction] = frame
        return direction
