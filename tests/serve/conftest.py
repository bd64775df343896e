"""The server tests' fixtures: the tiny detector (random weights, classes cat and dog) and a real uvicorn server
on a free loopback port in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from helpers import compose_infer, write_checkpoint

from detect import Detector
from detect.structures import Classes

CLASSES = Classes(["cat", "dog"], [17, 42])


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny inference model's checkpoint, random weights, classes cat=17 and dog=42."""
    path = tmp_path_factory.mktemp("serve-ckpt") / "tiny.ckpt"
    write_checkpoint(path, compose_infer(["source=x"], path.parent).model, CLASSES)
    return path


@pytest.fixture(scope="session")
def tiny_detector(tiny_checkpoint: Path) -> Detector:
    return Detector.load(tiny_checkpoint, score_threshold=0.01, threads=1)  # random weights: low scores


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """`app` served by uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL, stops it after."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        listening.close()


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], httpx.Client]]:
    """serve(app): a client of `app` served over real HTTP for the test."""
    with ExitStack() as stack:
        def start(app: FastAPI) -> httpx.Client:
            url = stack.enter_context(serving(app))
            return stack.enter_context(httpx.Client(base_url=url, timeout=60))
        yield start
