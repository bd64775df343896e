"""Live streams and several sources in one run, against a loopback HTTP MJPEG server (tests/mjpeg_server.py) that
drops and comes back: reconnect with backoff, one continuous output, gaps counted; three sources in one process."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import cv2
import pytest
from helpers import compose_infer, write_clip
from mjpeg_server import MjpegServer, Session

from detect.data.sources.capture import backoff
from detect.inference.pipeline import infer


def video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    return frames


def test_backoff_doubles_up_to_its_cap() -> None:
    assert list(itertools.islice(backoff(10.0), 6)) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.mark.slow  # the stream's own time: 0.5 s up, ~3 s down (one refused attempt at 1 s, back at 3 s), 0.5 s up
def test_stream_that_drops_is_reopened_into_one_continuous_video(tmp_path: Path) -> None:
    server = MjpegServer([Session(15, down_s=1.5), Session(15, size=(120, 160))])  # back at another resolution
    try:
        summary = infer(compose_infer([f"source={server.url}", "reconnect=6", "read_timeout=2", "queue_size=64",
                                       "max_frames=30", "score_threshold=0.0"], tmp_path))
    finally:
        server.close()
    assert summary["source_kind"] == "stream" and summary["frames"] == 30 and summary["dropped_frames"] == 0
    assert summary["gaps"] == 1 and 2.5 < summary["seconds_lost"] < 4.5  # attempts at 1 s (refused) and 3 s
    assert summary["frames_lost"] > 0 and summary["resized_frames"] == 15 and summary["stopped_by"] == "max_frames"
    assert [p.name for p in tmp_path.glob("*.mp4")] == ["cam.mp4"] and video_frames(tmp_path / "cam.mp4") == 30
    records = json.loads((tmp_path / "detections.json").read_text())
    assert {r["frame"] for r in records} <= set(range(30)) and max(r["frame"] for r in records) >= 15
    assert len((tmp_path / "frames.csv").read_text().splitlines()) == 1 + 30


def test_reconnect_0_ends_at_the_drop_and_a_hanging_read_is_abandoned(tmp_path: Path) -> None:
    server = MjpegServer([Session(10, down_s=10.0)])  # close() ends the wait
    try:
        started = time.monotonic()
        summary = infer(compose_infer([f"source={server.url}", "reconnect=0", "queue_size=64"], tmp_path / "drop"))
        assert time.monotonic() - started < 6.0  # not waiting for the server to come back
    finally:
        server.close()
    assert summary["frames"] == 10 and summary["gaps"] == 0 and summary["stopped_by"] == "stream closed"
    assert video_frames(tmp_path / "drop" / "cam.mp4") == 10

    server = MjpegServer([Session(5, hang=10.0)])  # the connection stays open, silent
    try:
        started = time.monotonic()
        summary = infer(compose_infer([f"source={server.url}", "reconnect=0", "read_timeout=0.5", "queue_size=64"],
                                      tmp_path / "hang"))
        assert time.monotonic() - started < 6.0 and summary["frames"] == 5
        deadline = time.monotonic() + 3.0  # the abandoned read returns (FFmpeg's read timeout) and is released
        while any(t.name == "capture-read" for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.name == "capture-read" for t in threading.enumerate())
    finally:
        server.close()


def test_three_sources_in_one_run_and_one_that_never_opens(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_clip(tmp_path / "a" / "clip.avi", frames=10)
    second = write_clip(tmp_path / "b" / "clip.avi", frames=6, size=(120, 160))
    missing = tmp_path / "missing.mp4"
    server = MjpegServer([Session(12, down_s=5.0)])
    try:
        listing = tmp_path / "sources.txt"
        listing.write_text(f"{first}\n# a comment\n{server.url}\n\n{missing}\n{second}\n")
        summary = infer(compose_infer([f"source={listing}", "reconnect=0", "queue_size=64", "tracker=sort",
                                       "score_threshold=0.0"], tmp_path / "out"))
    finally:
        server.close()
    rows = {Path(row["outputs"]["summary"]).parent.name: row for row in summary["sources"]}
    assert sorted(rows) == ["cam", "clip", "clip-2"]
    assert rows["clip"]["frames"] == 10 and rows["clip-2"]["frames"] == 6 and rows["cam"]["frames"] == 12
    assert rows["clip"]["stopped_by"] == "end of input" and rows["cam"]["stopped_by"] == "stream closed"
    assert rows["clip-2"]["frame_size"] == [120, 160] and rows["clip"]["frame_size"] == [96, 128]
    assert summary["failed"] == [{"source": str(missing), "error": summary["failed"][0]["error"]}]
    assert "does not exist" in summary["failed"][0]["error"]
    assert summary["total"]["frames"] == 28 and summary["total"]["failed"] == 1 and summary["total"]["running"] == 3
    for name, row in rows.items():
        folder = tmp_path / "out" / name
        assert json.loads((folder / "summary.json").read_text()) == row
        assert video_frames(next(folder.glob("*.mp4"))) == row["frames"]
        assert len((folder / "frames.csv").read_text().splitlines()) == 1 + row["frames"]
        records = json.loads((folder / "detections.json").read_text())
        assert len(records) == row["detections"] and {r["source"] for r in records} <= {"clip.avi", "cam.mjpg"}
        tracks = (folder / "tracks.txt").read_text().splitlines()  # each source's own tracker: frames of its own
        assert {int(line.split(",")[0]) for line in tracks} <= set(range(1, row["frames"] + 1))
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
    err = capsys.readouterr().err
    assert sum(f"source {missing} does not exist" in line for line in err.splitlines()) == 1
