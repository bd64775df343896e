"""The FastAPI app: POST /predict, GET /health, GET /metrics, and the OpenAPI docs (/docs, /openapi.json).

`create_app` takes more routers and lifespan contexts (the live view of sources starts and stops with the app);
they find the detector, the batcher and the metrics on `app.state`. Every refusal or failure is one JSON line,
{"error": "..."}, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from detect.inference.detector import Detector
from detect.serve.batching import Batcher
from detect.serve.upload import MB, OPTIONS, RequestError, decode_image, parse_options, read_upload
from detect.structures import Result
from detect.utils.errors import first_line

AppContext = Callable[[FastAPI], AbstractAsyncContextManager[None]]
DECODE_THREADS = 2  # images decoded at once; more only adds memory on a CPU the model already fills
DISCONNECTED = 499  # the metrics' status of a request whose client left before its body arrived (nginx's code)
IMAGE_TYPES = ("image/jpeg", "image/png", "application/octet-stream")


@dataclass(frozen=True)
class ServeSettings:
    """serve.yaml's batching and request limits."""

    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 256
    max_body_mb: float = 20.0
    max_pixels: int = 40_000_000


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def result_json(result: Result, batch_size: int) -> dict[str, Any]:
    """A result as /predict answers it: xyxy boxes in the image's pixels, scores, names, category ids, the image's
    size, each stage's ms and the size of the batch it ran in."""
    height, width = result.image.shape[:2]
    return {"boxes": result.boxes.round(2).tolist(), "scores": result.scores.round(4).tolist(),
            "names": result.names, "category_ids": result.category_ids, "width": width, "height": height,
            "ms": {stage: round(ms, 3) for stage, ms in result.ms.items()}, "batch_size": batch_size}


def predict_router(settings: ServeSettings) -> APIRouter:
    router = APIRouter()
    option_docs = {"score_threshold": ("number", "keep scores at or above this (the server's threshold at least)"),
                   "classes": ("string", "keep these classes: names or category ids, comma-separated"),
                   "max_det": ("integer", "keep at most this many detections, the highest scores"),
                   "slice": ("string", "small objects: run as overlapping slices of this size (512, or 512x640 for "
                                       "height x width) and the whole image, merged")}
    binary = {"schema": {"type": "string", "format": "binary"}}
    openapi = {
        "parameters": [{"name": name, "in": "query", "required": False, "description": text,
                        "schema": {"type": kind}} for name, (kind, text) in option_docs.items()],
        "requestBody": {"required": True, "content": {
            **{kind: binary for kind in IMAGE_TYPES},
            "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
                "image": {"type": "string", "format": "binary"},
                **{name: {"type": kind, "description": text} for name, (kind, text) in option_docs.items()}}}}}},
    }

    description = ("The image as the body (image/jpeg, image/png, ... or application/octet-stream) or as a "
                   f"multipart file; the options ({', '.join(OPTIONS)}) as query parameters or form fields.")

    @router.post("/predict", openapi_extra=openapi, summary="Detect objects on one image", description=description)
    async def predict(request: Request) -> Response:
        batcher: Batcher = request.app.state.batcher
        started, status, reason = time.perf_counter(), 200, None
        try:
            upload = await read_upload(request, int(settings.max_body_mb * MB))
            options = parse_options(upload.options, batcher.detector)
            frame = await asyncio.get_running_loop().run_in_executor(request.app.state.decoders, decode_image,
                                                                     upload.data, settings.max_pixels)
            result, batch_size = await batcher.submit(frame, options)
            return JSONResponse(result_json(result, batch_size))
        except RequestError as error:
            status, reason = error.status, error.reason
            return error_response(status, error.message)
        except ClientDisconnect:
            status, reason = DISCONNECTED, "client_disconnected"
            return Response(status_code=400)  # nobody reads it
        except Exception as error:
            status, reason = 500, "internal"
            return error_response(status, f"the model failed on this image: {first_line(error)}")
        finally:
            batcher.metrics.record(status, time.perf_counter() - started, reason)

    return router


def service_router() -> APIRouter:
    router = APIRouter()

    @router.get("/health", summary="The model served and the queue")
    async def health(request: Request) -> dict[str, Any]:
        batcher: Batcher = request.app.state.batcher
        backend = batcher.detector.backend
        return {"status": "ok", "model": backend.description, "backend": backend.name,
                "precision": backend.precision, "classes": batcher.detector.classes,
                "queue_length": batcher.queue_length(), "max_batch": batcher.max_batch}

    @router.get("/metrics", summary="Prometheus metrics")
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.batcher.metrics.text(), media_type="text/plain; version=0.0.4")

    return router


def create_app(detector: Detector, settings: ServeSettings, routers: Sequence[APIRouter] = (),
               contexts: Sequence[AppContext] = ()) -> FastAPI:
    """The server's app: /predict, /health, /metrics and `routers`; the batcher's worker and each of `contexts`
    run for the app's lifespan."""
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = Batcher(detector, settings.max_batch, settings.max_wait_ms, settings.max_queue)
        app.state.detector, app.state.batcher = detector, batcher
        # a few decoding threads, not Starlette's 40: each thread that decodes keeps a malloc arena (RSS grows)
        app.state.decoders = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")
        batcher.start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                for context in contexts:
                    await stack.enter_async_context(context(app))
                yield
        finally:
            batcher.stop()
            app.state.decoders.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="detect", summary="Faster R-CNN object detection", lifespan=lifespan)
    for router in (predict_router(settings), service_router(), *routers):
        app.include_router(router)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}" for problem in error.errors())
        return error_response(422, problems)

    return app
