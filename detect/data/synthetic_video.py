"""A synthetic tracking video with MOTChallenge ground truth: the demo's shapes moving across a textured background,
crossing and occluding each other, entering and leaving. Deterministic by seed, written once into the cache.

    uv run python -m detect.data.synthetic_video      # writes it and prints the tracking demo command
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detect.data.synthetic import CATEGORIES, draw_shape, shape_color, textured_background
from detect.tracking.truth import COUNTS_FILE, true_counts
from detect.tracking.zones import check_zones_in_frame, load_zones
from detect.utils.cache import cached_folder
from detect.utils.errors import DetectError

VIDEO_NAME = "synthetic_tracking.avi"
MIN_VISIBLE = 0.4  # a shape less visible than this (occluded or outside the frame) is marked "ignore" in the gt
ZONES = "synthetic"  # configs/zones/synthetic.yaml: its lines' true crossings go beside the gt (gt/counts.json)


@dataclass
class MovingShape:
    """One object: its class, size and colour, where it is at its first frame and how many pixels a frame it moves."""

    track_id: int
    name: str
    size: int
    color: tuple[int, ...]
    first_frame: int
    x: float
    y: float
    dx: float
    dy: float

    def position(self, frame: int) -> tuple[int, int]:
        steps = frame - self.first_frame
        return round(self.x + self.dx * steps), round(self.y + self.dy * steps)


def _shapes(rng: np.random.Generator, count: int, frames: int, width: int, height: int,
            sizes: tuple[int, int]) -> list[MovingShape]:
    """Shapes that enter from a random edge (the first few start inside) and cross the frame at 1-2.5 px a frame."""
    shapes = []
    for track_id in range(1, count + 1):
        name = CATEGORIES[int(rng.integers(len(CATEGORIES)))]["name"]
        size = int(rng.integers(sizes[0], sizes[1] + 1))
        speed = float(rng.uniform(1.0, 2.5))
        angle = float(rng.uniform(-0.5, 0.5))
        horizontal = rng.random() < 0.6
        forward = rng.random() < 0.5
        dx, dy = speed * np.cos(angle), speed * np.sin(angle)
        if not horizontal:
            dx, dy = dy, dx
        if not forward:
            dx, dy = -dx, -dy
        if track_id <= 3:  # on screen from the first frame
            first, x, y = 0, rng.uniform(0, width - size), rng.uniform(0, height - size)
        else:
            first = int(rng.integers(0, max(1, frames - 40)))
            x = (-size if dx > 0 else width) if horizontal else rng.uniform(0, width - size)
            y = rng.uniform(0, height - size) if horizontal else (-size if dy > 0 else height)
        shapes.append(MovingShape(track_id, name, size, shape_color(rng, name), first, float(x), float(y), dx, dy))
    return shapes


def _render(background: np.ndarray, shapes: list[MovingShape], frame: int,
            rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """One frame (shapes drawn in id order, later ones on top) and its gt lines."""
    height, width = background.shape[:2]
    image = np.clip(background + rng.normal(0, 3, background.shape), 0, 255).astype(np.uint8)
    owner = np.zeros((height, width), dtype=np.int32)  # which shape each pixel shows (0: background)
    boxes = {}
    for shape in shapes:
        if frame < shape.first_frame:
            continue
        x, y = shape.position(frame)
        if x >= width or y >= height or x + shape.size <= 0 or y + shape.size <= 0:
            continue
        mask = np.zeros((height, width), dtype=np.uint8)
        draw_shape(mask, shape.name, x, y, shape.size, (1,))
        draw_shape(image, shape.name, x, y, shape.size, shape.color)
        owner[mask > 0] = shape.track_id
        boxes[shape.track_id] = (x, y, int(cv2.countNonZero(mask)), shape)
    lines = []
    for track_id, (x, y, drawn_pixels, shape) in boxes.items():
        full_pixels = _shape_pixels(shape)
        visible = float((owner == track_id).sum()) / full_pixels
        x1, y1 = max(x, 0), max(y, 0)
        x2, y2 = min(x + shape.size, width), min(y + shape.size, height)
        consider = int(visible >= MIN_VISIBLE and drawn_pixels > 0)
        lines.append(f"{frame + 1},{track_id},{x1},{y1},{x2 - x1},{y2 - y1},{consider},1,{visible:.3f}")
    return image, lines


def _shape_pixels(shape: MovingShape) -> int:
    mask = np.zeros((shape.size + 2, shape.size + 2), dtype=np.uint8)
    draw_shape(mask, shape.name, 1, 1, shape.size, (1,))
    return int(cv2.countNonZero(mask))


def _counted_lines(size: tuple[int, int]) -> dict[str, list] | None:
    """The lines of configs/zones/ZONES by name (start, end), or None if they do not fit the frame."""
    spec = load_zones(ZONES)
    try:
        check_zones_in_frame(spec, size[1], size[0], VIDEO_NAME)
    except DetectError:
        return None
    return {line.name: [list(line.start), list(line.end)] for line in spec.lines}


def gt_frames(gt_path: str | Path, frames: int, visible_only: bool = False
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Each of the first `frames` frames (from 0) of a gt.txt as (frame, xyxy boxes, ids); `visible_only`: the
    boxes of the shapes at least MIN_VISIBLE visible (consider = 1), what a perfect detector would see."""
    rows = np.loadtxt(gt_path, delimiter=",", ndmin=2).reshape(-1, 9)
    if visible_only:
        rows = rows[rows[:, 6] == 1]
    for frame in range(frames):
        mine = rows[rows[:, 0] == frame + 1]
        boxes = np.concatenate([mine[:, 2:4], mine[:, 2:4] + mine[:, 4:6]], axis=1)
        yield frame, boxes, mine[:, 1].astype(np.int64)


def _whole_boxes(shapes: list[MovingShape], gt_path: Path, frames: int
                 ) -> Iterator[tuple[int, np.ndarray, np.ndarray, list[str]]]:
    """Each frame's shapes in the gt (occluded ones too) with their whole boxes (not clipped to the frame), ids and
    class names."""
    by_id = {shape.track_id: shape for shape in shapes}
    for frame, _, ids in gt_frames(gt_path, frames):
        mine = [by_id[int(track_id)] for track_id in ids]
        boxes = np.array([[x, y, x + shape.size, y + shape.size] for shape in mine for x, y in [shape.position(frame)]],
                         dtype=np.float64).reshape(-1, 4)
        yield frame, boxes, ids, [shape.name for shape in mine]


def _write_counts(folder: Path, shapes: list[MovingShape], frames: int, size: tuple[int, int]) -> None:
    """gt/counts.json: the true crossings of ZONES' lines by the centres of every shape in the frame (occluded ones
    too), those that only a shape's part in view makes optional (detect.tracking.truth); frames counted from 0 as in
    infer.py's events.jsonl."""
    counts = true_counts(ZONES, _whole_boxes(shapes, folder / "gt" / "gt.txt", frames), (size[1], size[0]))
    (folder / "gt" / COUNTS_FILE).write_text(json.dumps(counts, indent=1) + "\n")


def write_tracking_video(cache_dir: str | Path | None = None, seed: int = 0, frames: int = 200,
                         size: tuple[int, int] = (120, 160), objects: int = 10, fps: float = 25.0,
                         object_sizes: tuple[int, int] = (20, 40)) -> dict[str, Path]:
    """Write (once) the video and its gt; return {"video": ..avi, "gt": ../gt/gt.txt, "counts": ../gt/counts.json
    (None when the lines of configs/zones/ZONES do not fit the frame)}.

    gt.txt is MOTChallenge's: frame (from 1), id, x, y, w, h (clipped to the frame), consider (0 for a shape less
    than MIN_VISIBLE visible), class 1, visibility. counts.json has the true crossings of ZONES' lines (those by
    shapes whose centre is past the border optional).
    """
    height, width = size
    counted_lines = _counted_lines(size)
    params = dict(seed=seed, frames=frames, size=list(size), objects=objects, fps=fps,
                  object_sizes=list(object_sizes), counted_lines=counted_lines, version=4)

    def write(folder: Path) -> None:
        rng = np.random.default_rng(seed)
        background = textured_background(rng, width, height).astype(np.float64)
        shapes = _shapes(rng, objects, frames, width, height, object_sizes)
        writer = cv2.VideoWriter(str(folder / VIDEO_NAME), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
        (folder / "gt").mkdir()
        gt_lines = []
        for frame in range(frames):
            image, lines = _render(background, shapes, frame, rng)
            writer.write(image)
            gt_lines += lines
        writer.release()
        (folder / "gt" / "gt.txt").write_text("".join(line + "\n" for line in gt_lines))
        if counted_lines is not None:
            _write_counts(folder, shapes, frames, size)

    folder = cached_folder(cache_dir, "tracking", params, VIDEO_NAME, write)
    return {"video": folder / VIDEO_NAME, "gt": folder / "gt" / "gt.txt",
            "counts": folder / "gt" / COUNTS_FILE if counted_lines is not None else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $DETECT_CACHE or ~/.cache/detect")
    args = parser.parse_args()
    paths = write_tracking_video(args.cache_dir, args.seed, args.frames)
    print(f"video {paths['video']}\ngt    {paths['gt']}\ncounts {paths['counts']}\n"
          f"track and count it with the demo detector:\n"
          f"  uv run infer.py source={paths['video']} weights=outputs/<demo run>/checkpoints/best.ckpt "
          f"tracker=bytetrack track_gt={paths['gt']}" + (f" zones={ZONES}" if paths["counts"] else ""))


if __name__ == "__main__":
    main()
