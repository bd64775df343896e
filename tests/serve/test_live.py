"""The live view on a real uvicorn on loopback: a clip decoded and detected once for any number of viewers, its
crossing counted and streamed as an event, viewers that leave freeing only themselves, a stream that drops shown
as reconnecting and then live again."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from helpers import BrightSquare, compose_config, write_clip
from loopback import serving
from mjpeg_server import MjpegServer, Session

from detect.inference.backends import Backend
from detect.inference.detector import Detector
from detect.serve.__main__ import live_hub
from detect.serve.live import LiveHub
from detect.serve.live_routes import BOUNDARY, live_router
from detect.structures import Classes
from detect.utils.errors import DetectError

DOOR = {"lines": {"door": {"start": [64, 0], "end": [64, 96]}}}  # write_clip's square crosses it once, left to right


def live_app(hub: LiveHub) -> FastAPI:
    app = FastAPI()
    app.include_router(live_router(hub, max_fps=50.0))
    return app


def square_detector(backend: BrightSquare) -> Detector:
    return Detector(Backend(backend, Classes(["square"], [1]), "bright square"))


def square_hub(source: str, **options: object) -> LiveHub:
    hub = LiveHub(source, tracker="bytetrack", zones=DOOR, **options)
    hub.open()
    return hub


def read_frames(client: httpx.Client, url: str, count: int) -> list[bytes]:
    """The first `count` JPEGs of an MJPEG stream (the connection closed after)."""
    frames, buffer = [], b""
    with client.stream("GET", url) as response:
        assert response.headers["content-type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        for chunk in response.iter_bytes():
            buffer += chunk
            while (end := buffer.find(b"\xff\xd9")) >= 0 and len(frames) < count:
                start = buffer.find(b"\xff\xd8")
                frames.append(buffer[start:end + 2])
                buffer = buffer[end + 2:]
            if len(frames) >= count:
                return frames
    return frames


def wait_for(condition, timeout: float = 10.0) -> None:  # noqa: ANN001 - a test's predicate
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_one_decode_for_every_viewer_the_crossing_counted_and_streamed(tmp_path: Path) -> None:
    backend = BrightSquare()
    clip = write_clip(tmp_path / "clip.avi", frames=30, fps=15.0)  # 2 s at its frame rate
    hub = square_hub(str(clip))
    try:
        with serving(live_app(hub)) as url, httpx.Client(base_url=url, timeout=10.0) as client:
            events: list[dict] = []

            def listen() -> None:
                with client.stream("GET", "/events") as response:
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            events.append(json.loads(line[6:]))
                            return

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            wait_for(lambda: hub.subscribers == 1)
            hub.start(square_detector(backend))
            viewers = [threading.Thread(target=lambda: read_frames(client, "/live/0.mjpg", 5)) for _ in range(3)]
            for viewer in viewers:
                viewer.start()
            assert "/live/sources" in client.get("/").text  # the page
            for viewer in viewers:
                viewer.join(timeout=10.0)
            listener.join(timeout=10.0)
            wait_for(lambda: client.get("/live/sources").json()[0]["state"] == "ended")
            status = client.get("/live/sources").json()[0]
            assert client.get("/live/1.mjpg").status_code == 404
    finally:
        hub.close()
    assert sum(backend.calls) == 30  # each frame detected once, whatever the number of viewers
    assert status["name"] == "clip.avi" and status["frame"] == 29
    assert status["counts"]["lines"]["door"] == {"in": 0, "out": 1} or status["counts"]["lines"]["door"] == {
        "in": 1, "out": 0}
    assert len(events) == 1 and events[0]["zone"] == "door" and events[0]["class"] == "square"


def test_viewers_that_leave_free_only_themselves(tmp_path: Path) -> None:
    hub = square_hub(str(write_clip(tmp_path / "clip.avi", frames=150, fps=30.0)))
    hub.start(square_detector(BrightSquare()))
    try:
        with serving(live_app(hub)) as url, httpx.Client(base_url=url, timeout=10.0) as client:
            with client.stream("GET", "/events") as response:  # a subscriber, then gone mid-stream
                lines = response.iter_lines()  # kept: a dropped iterator closes the connection
                next(lines)
                assert hub.subscribers == 1
            assert len(read_frames(client, "/live/0.mjpg", 2)) == 2  # a viewer that leaves after two frames
            wait_for(lambda: hub.subscribers == 0)
            frames = read_frames(client, "/live/0.mjpg", 3)  # the next viewer is served as the first was
            assert len(frames) == 3 and len(set(frames)) == 3
            with client.stream("GET", "/events") as response:  # a late client gets the recent events first
                lines = response.iter_lines()
                assert json.loads(next(line for line in lines if line.startswith("data: "))[6:])["zone"] == "door"
    finally:
        hub.close()


def test_the_live_sources_open_before_the_model_loads(tmp_path: Path) -> None:
    """serve() opens them first: one that does not open is named in one line; of several, the others are shown."""
    missing = tmp_path / "missing.mp4"
    with pytest.raises(DetectError, match="missing.mp4 does not exist"):
        live_hub(compose_config("serve", [f"sources=[{missing}]"], tmp_path))
    clip = write_clip(tmp_path / "clip.avi", frames=3)
    hub = live_hub(compose_config("serve", [f"sources=[{clip},{missing}]"], tmp_path))
    try:
        assert [source["state"] for source in hub.status()] == ["starting", "failed"]
        assert "missing.mp4 does not exist" in hub.status()[1]["error"]
    finally:
        hub.close()


@pytest.mark.slow  # the stream's own time: 1 s up, 3 s down, then up again
def test_a_stream_that_drops_shows_reconnecting_then_live_again() -> None:
    server = MjpegServer([Session(30, down_s=3.0), Session(300)])
    hub = square_hub(server.url, reconnect=20.0, read_timeout=1.0)
    hub.start(square_detector(BrightSquare()))
    states = []
    try:
        with serving(live_app(hub)) as url, httpx.Client(base_url=url, timeout=10.0) as client:
            def state() -> str:
                states.append(client.get("/live/sources").json()[0]["state"])
                return states[-1]

            wait_for(lambda: state() == "reconnecting")
            notice = read_frames(client, "/live/0.mjpg", 1)[0]  # the last frame, dimmed, "reconnecting" on it
            wait_for(lambda: state() == "live")
            frame = read_frames(client, "/live/0.mjpg", 1)[0]
    finally:
        hub.close()
        server.close()
    assert "live" in states and notice != frame
