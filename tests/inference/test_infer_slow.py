"""infer.py as a user runs it (a subprocess): Ctrl-C mid-video leaves a playable video and a summary; bad input is
one line, no traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from helpers import ROOT, TINY_INFER, VIDEO, needs_video, write_clip


def start_infer(args: list[str], run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "infer.py"), *TINY_INFER, *args, f"hydra.run.dir={run_dir}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@needs_video
@pytest.mark.slow
def test_ctrl_c_finalizes_the_video_and_writes_the_summary(tmp_path: Path) -> None:
    process = start_infer([f"source={VIDEO}", "warmup_frames=0", "score_threshold=0.0"], tmp_path)
    frames_csv = tmp_path / "frames.csv"
    deadline = time.monotonic() + 240
    while not (frames_csv.is_file() and len(frames_csv.read_text().splitlines()) > 3):  # header + 3 frames
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no frames written in time"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped_by"] == "interrupted" and 3 <= summary["frames"] < 682
    assert "stopped: interrupted" in stdout
    rows = frames_csv.read_text().splitlines()[1:]
    assert len(rows) == summary["frames"]
    capture = cv2.VideoCapture(str(tmp_path / "vtest.mp4"))
    assert capture.isOpened()
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == summary["frames"]  # every processed frame is in the finalized video
    json.loads((tmp_path / "detections.json").read_text())  # a complete JSON list


@pytest.mark.slow
def test_unopenable_source_is_one_line_and_a_nonzero_exit(tmp_path: Path) -> None:
    source = tmp_path / "clip.avi"  # the other unreadable sources are checked in-process (test_infer.py)
    source.write_text("not a video")
    process = start_infer([f"source={source}"], tmp_path / "run")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    assert "Traceback" not in stderr
    error_lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and error_lines[0].startswith(f"error: video {source} could not be opened")


@pytest.mark.slow
def test_inline_zones_from_the_command_line_as_the_readme_shows(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=4, size=(360, 640))  # the README's line: y = 300, 640 wide
    process = start_infer([f"source={clip}", "weights=null", "tracker=bytetrack",
                           "+zones={lines: {door: {start: [0, 300], end: [640, 300]}}}"], tmp_path / "run")
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "counting    door in 0 out 0" in stdout  # the square moves along y = 30..60: no crossing
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["zones"]["lines"]["door"]["in"] == summary["zones"]["lines"]["door"]["out"] == 0
    assert summary["zones"]["config"] == "inline"
