"""The server tests' fixtures: the tiny detector (random weights, classes cat and dog) and a client of an app served
by a real uvicorn on loopback (tests/serve/loopback.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from loopback import serving

from detect import Detector

@pytest.fixture(scope="session")
def tiny_detector(tiny_checkpoint: Path) -> Detector:
    return Detector.load(tiny_checkpoint, score_threshold=0.01, threads=1)  # random weights: low scores


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], httpx.Client]]:
    """serve(app): a client of `app` served over real HTTP for the test."""
    with ExitStack() as stack:
        def start(app: FastAPI) -> httpx.Client:
            url = stack.enter_context(serving(app))
            return stack.enter_context(httpx.Client(base_url=url, timeout=60))
        yield start
