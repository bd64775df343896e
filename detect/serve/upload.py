"""A POST /predict request's image and options, checked: the content type, the body's size (Content-Length, then
the bytes counted as they arrive: never an unbounded read), the image's width x height from its header before it
is decoded (decompression bombs), a truncated file, and the options. Each refusal is a `RequestError`: an HTTP
status, a reason (the metrics' label) and one line for the client."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from detect.data.sources.reader import Frame
from detect.inference.detector import Detector
from detect.utils.errors import DetectError

RAW_TYPES = ("application/octet-stream", "image/")  # a body that is the image itself (image/jpeg, image/png, ...)
MULTIPART = "multipart/form-data"
OPTIONS = ("score_threshold", "classes", "max_det", "slice")
MB = 1 << 20


class RequestError(Exception):
    """A request refused: `status` (4xx), `reason` (a short label for the metrics) and the client's one line."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass(frozen=True)
class Upload:
    """An image's bytes and the request's options (query parameters and multipart fields), unchecked."""

    data: bytes
    options: list[tuple[str, str]]


@dataclass(frozen=True)
class Options:
    """A request's filters, over the server's own: a score threshold at or above the server's, the labels kept
    (None: every served class) and the detections kept at most."""

    score_threshold: float
    labels: set[int] | None = None
    max_det: int | None = None
    slice_size: tuple[int, int] | None = None  # run as overlapping slices of this (height, width) and the whole image


async def read_upload(request: Request, max_bytes: int) -> Upload:
    """The image of a raw body (image/*, application/octet-stream, or no content type) or of a multipart form's
    one file, at most `max_bytes` read."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    options = list(request.query_params.multi_items())
    if content_type == MULTIPART:
        try:
            form = await MultiPartParser(request.headers, _limited(request, max_bytes), max_files=1,
                                         max_fields=len(OPTIONS)).parse()
        except MultiPartException as error:
            raise RequestError(400, "bad_multipart", f"multipart body: {error.message}") from None
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise RequestError(400, "no_file", "the multipart form has no file: send the image as a file field "
                                               "(curl -F image=@photo.jpg)")
        fields = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
        try:
            return Upload(await files[0].read(), options + fields)
        finally:
            await form.close()
    if content_type and not content_type.startswith(RAW_TYPES):
        raise RequestError(415, "content_type", f"content type {content_type} is not an image: send the image "
                                                "as a multipart file (curl -F image=@photo.jpg) or as the body with "
                                                "Content-Type image/jpeg, image/png, ... or application/octet-stream "
                                                "(curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg')")
    return Upload(b"".join([chunk async for chunk in _limited(request, max_bytes)]), options)


async def _limited(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks, refused (413) once its Content-Length or the bytes received pass `max_bytes`."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit()):
        raise RequestError(400, "content_length", f"Content-Length {length!r} is not a number of bytes")
    too_large = RequestError(413, "body_too_large", f"the body is over the limit of {max_bytes / MB:g} MB "
                                                    "(max_body_mb); send a smaller image")
    if length is not None and int(length) > max_bytes:
        raise too_large
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise too_large
        yield chunk


def decode_image(data: bytes, max_pixels: int) -> Frame:
    """The image as a BGR frame (oriented by its EXIF tag, as OpenCV reads files); refused when empty, not an image,
    over `max_pixels` by its header (before decoding) or truncated."""
    if not data:
        raise RequestError(400, "empty_body", "the body is empty: send an image (JPEG, PNG, ...)")
    started = time.perf_counter()
    try:
        image = Image.open(io.BytesIO(data))  # the header only; PIL refuses more than twice its MAX_IMAGE_PIXELS
    except UnidentifiedImageError:
        raise RequestError(400, "not_an_image", f"the body ({len(data)} bytes) is not an image PIL reads: send a "
                                                "JPEG, PNG, BMP, WebP, TIFF or GIF file") from None
    except Image.DecompressionBombError:
        raise RequestError(413, "too_many_pixels", f"the image has too many pixels (PIL's limit); the server takes "
                                                   f"at most {max_pixels} (max_pixels)") from None
    width, height = image.size
    if width * height > max_pixels:
        raise RequestError(413, "too_many_pixels", f"the image is {width}x{height} = {width * height} pixels, over "
                                                   f"the limit of {max_pixels} (max_pixels); send a smaller image")
    if width * height == 0:
        raise RequestError(400, "bad_image", f"the image is {width}x{height}: it has no pixels")
    try:
        image.load()  # PIL's LOAD_TRUNCATED_IMAGES is False: a truncated file raises here
        rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise RequestError(400, "bad_image", f"the {image.format} image does not decode ({error}): the file is "
                                             "truncated or corrupt") from None
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return Frame(0, "upload", pixels, (time.perf_counter() - started) * 1000.0)


def parse_options(items: Iterable[tuple[str, str]], detector: Detector) -> Options:
    """The request's score_threshold, classes (names or category ids, comma-separated or repeated) and max_det;
    an unknown option, a value of the wrong type or range, or an unknown class is one line (400)."""
    values: dict[str, list[str]] = {}
    for key, value in items:
        if key not in OPTIONS:
            raise RequestError(400, "unknown_option", f"{key} is not an option of /predict; the options are "
                                                      f"{', '.join(OPTIONS)}")
        values.setdefault(key, []).extend(part.strip() for part in value.split(",") if part.strip())
    for key in ("score_threshold", "max_det", "slice"):
        if len(values.get(key, [])) > 1:
            raise RequestError(400, "bad_option", f"{key} is given {len(values[key])} times; give it once")
    threshold = _number(values, "score_threshold", float)
    threshold = detector.score_threshold if threshold is None else threshold
    max_det = _number(values, "max_det", int)
    if not detector.score_threshold <= threshold < 1.0:
        raise RequestError(400, "bad_option", f"score_threshold={threshold} must be in [{detector.score_threshold}, "
                                              "1): the server's own threshold is its lowest")
    if max_det is not None and max_det < 1:
        raise RequestError(400, "bad_option", f"max_det={max_det} must be >= 1")
    classes = values.get("classes")
    try:
        labels = detector.labels_of([int(name) if name.isdigit() else name for name in classes]) if classes else None
    except DetectError as error:
        raise RequestError(400, "unknown_class", str(error)) from None
    return Options(threshold, labels, max_det, _slice_size(values))


def _slice_size(values: dict[str, list[str]]) -> tuple[int, int] | None:
    """?slice=512 (square slices) or ?slice=512x640 (height x width), in image pixels; None without."""
    if "slice" not in values:
        return None
    text = values["slice"][0]
    sides = text.lower().split("x")
    if not (1 <= len(sides) <= 2 and all(side.isdigit() and int(side) >= 32 for side in sides)):
        raise RequestError(400, "bad_option", f"slice={text!r} must be a slice size in pixels, >= 32: 512 (square) or "
                                              "512x640 (height x width)")
    return int(sides[0]), int(sides[-1])


def _number(values: dict[str, list[str]], key: str, kind: type[int] | type[float]) -> Any:
    """The option `key` as an int or a float (None when not given), or one line."""
    if key not in values:
        return None
    try:
        return kind(values[key][0])
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise RequestError(400, "bad_option", f"{key}={values[key][0]!r} is not {expected}") from None
