"""The live view's routes: GET / (the page), /live/sources (states and counts), /live/<i>.mjpg (each source's
annotated frames as MJPEG), /events (the counting events as server-sent events). A viewer that goes away leaves
the decoding, the model and the other viewers as they were: it held only its own generator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, StreamingResponse

from detect.serve.live import LiveHub

BOUNDARY = "frame"
KEEPALIVE_S = 2.0  # /events sends a comment this often when no event comes: a gone client is noticed then


def live_router(hub: LiveHub, max_fps: float = 15.0) -> APIRouter:
    """The routes of the live view of `hub`; each viewer gets at most `max_fps` frames a second."""
    router = APIRouter()
    page = resources.files("detect.serve").joinpath("page.html").read_text()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def live_page() -> str:
        return page

    @router.get("/live/sources", summary="Each live source's name, state, last frame and counts")
    def live_sources() -> list[dict[str, Any]]:
        return hub.status()

    @router.get("/live/{index}.mjpg", summary="A live source's annotated frames (multipart/x-mixed-replace JPEG)")
    def live_frames(index: int) -> StreamingResponse:
        if not 0 <= index < len(hub.views):
            raise HTTPException(404, f"no live source {index}; there are {len(hub.views)} (GET /live/sources)")
        return StreamingResponse(_mjpeg(hub, index, 1.0 / max_fps),
                                 media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                 headers={"Cache-Control": "no-store"})

    @router.get("/events", summary="Counting events (line crossings, zone entries and exits) as server-sent events")
    def events() -> StreamingResponse:
        return StreamingResponse(_events(hub), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return router


async def _mjpeg(hub: LiveHub, index: int, interval: float) -> AsyncIterator[bytes]:
    """The source's picture each time it changes, at most once per `interval` s, until its source has ended."""
    sent = None
    while True:
        key, jpeg = hub.frame(index)
        if jpeg is not None and key != sent:
            sent = key
            yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                   + jpeg + b"\r\n")
        elif key[1] in ("ended", "failed"):
            return
        await asyncio.sleep(interval)


async def _events(hub: LiveHub) -> AsyncIterator[str]:
    recent, events = hub.subscribe()
    try:
        yield ": counting events of the live sources\n\n"
        for event in recent:
            yield f"data: {json.dumps(event)}\n\n"
        while True:
            try:
                event = await asyncio.wait_for(events.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield f"data: {json.dumps(event)}\n\n"
    finally:
        hub.unsubscribe(events)
