"""Many videos video by video, split into shards: which files a shard gets, bad shards as one line, and shards that
merge into the detections of one run over all the files (on SLURM: test_slurm.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import BrightSquare, compose_infer, write_clip

from detect.inference import Detector
from detect.inference.backends import Backend
from detect.inference.merge import merge_runs
from detect.inference.shards import infer_files, list_videos, shard_files
from detect.structures import Classes
from detect.utils.errors import DetectError


def test_shards_take_every_nth_sorted_video_and_bad_shards_are_one_line(tmp_path: Path) -> None:
    for name in ("d.mp4", "a.avi", "b.avi", "c.MKV", "notes.txt", "sub/e.avi"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    root, videos = list_videos(str(tmp_path))
    assert root == tmp_path and [v.name for v in videos] == ["a.avi", "b.avi", "c.MKV", "d.mp4"]
    assert [v.name for v in shard_files(str(tmp_path), "0/2")[1]] == ["a.avi", "c.MKV"]
    assert [v.name for v in shard_files(str(tmp_path), "1/2")[1]] == ["b.avi", "d.mp4"]
    root, videos = list_videos(f"{tmp_path}/**/*.avi")  # recursive: named by their path under the glob's root
    assert root == tmp_path and [v.relative_to(root).as_posix() for v in videos] == ["a.avi", "b.avi", "sub/e.avi"]
    assert list_videos(str(tmp_path / "a.avi")) is None  # one video: the usual single-source run
    for shard in ("2/2", "1-2", "x/y", "0/0"):
        with pytest.raises(DetectError, match=f"^shard={shard} must be i/n with 0 <= i < n"):
            shard_files(str(tmp_path), shard)
    with pytest.raises(DetectError, match="^shard=0/2 splits a folder or glob of videos .* source=.*/none names none"):
        shard_files(str(tmp_path / "sub" / "none"), "0/2")
    (tmp_path / "sub" / "e.jpg").write_bytes(b"")
    with pytest.raises(DetectError, match="^source=.*sub holds both videos and images; pass a glob of one kind"):
        list_videos(str(tmp_path / "sub"))


def test_shards_merge_into_the_detections_of_one_run(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, frames in (("a", 12), ("b", 11), ("c", 4)):  # the square's centre is right of x=64 from frame 8
        write_clip(videos / f"{name}.avi", frames=frames)
    detector = Detector(Backend(BrightSquare(), Classes(["square"], [1]), "bright square"))
    out = tmp_path / "out"
    counting = ["tracker=bytetrack", "+zones={lines: {middle: {start: [64, 0], end: [64, 96]}}}"]
    single = infer_files(compose_infer([f"source={videos}", *counting], out / "single"), detector)
    for shard in ("0/2", "1/2"):
        infer_files(compose_infer([f"source={videos}", f"shard={shard}", *counting], out / shard[0]), detector)
    merged = merge_runs([out / "0", out / "1"], out / "merged")

    assert [row["source"] for row in merged["rows"]] == ["a.avi", "b.avi", "c.avi"]
    assert [row["frames"] for row in merged["rows"]] == [12, 11, 4] and merged["shards"] == 2
    assert json.loads((out / "0" / "files.json").read_text())["files"] == ["a.avi", "c.avi"]
    assert (out / "1" / "b.avi" / "b.mp4").is_file()  # each video's own outputs
    records = json.loads((out / "merged" / "detections.json").read_text())
    assert records == json.loads((out / "single" / "detections.json").read_text())
    assert len(records) == 27 and {r["source"] for r in records} == {"a.avi", "b.avi", "c.avi"}
    assert merged["total"] == {**single["total"], "total_wall_s": merged["total"]["total_wall_s"]}
    assert merged["total"]["zones"] == {"middle": {"in": 2, "out": 0}}
    events = [json.loads(line) for line in (out / "merged" / "events.jsonl").read_text().splitlines()]
    assert [(e["source"], e["frame"], e["direction"]) for e in events] == [("a.avi", 8, "in"), ("b.avi", 8, "in")]
    with pytest.raises(DetectError, match=r"^the runs to merge are shards 0/2 of .*missing \['1/2'\], repeated none"):
        merge_runs([out / "0"], out / "partial")
    with pytest.raises(DetectError, match="^track_gt=.* scores one video"):
        infer_files(compose_infer([f"source={videos}", f"track_gt={videos / 'a.avi'}", "tracker=sort"], out / "x"))
