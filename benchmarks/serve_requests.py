"""Bad requests against the detection server, each answered with a 4xx and one JSON line, then a good request that
must still be answered: the table of issue 29. Against a running server (python -m detect.serve ...):

    uv run python -m benchmarks.serve_requests --url http://127.0.0.1:8000 --max-body-mb 20 --max-pixels 40000000

The tests run the same cases through FastAPI's TestClient and through a real uvicorn server.
"""

from __future__ import annotations

import argparse
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import cv2
import httpx
import numpy as np

Row = tuple[str, int | None, str]  # (the request, the status it got, the error line or the detections)


def sample_jpeg(size: tuple[int, int] = (480, 640)) -> bytes:
    """A JPEG of a few bright shapes on a dark noisy background (the synthetic dataset's kind of picture)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 40, (*size, 3), dtype=np.uint8)
    height, width = size
    cv2.rectangle(image, (width // 8, height // 6), (width // 3, height // 2), (40, 200, 240), -1)
    cv2.circle(image, (2 * width // 3, height // 2), min(size) // 6, (230, 60, 60), -1)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR saying `width` x `height` and a few bytes of pixel data: a decompression bomb's
    header, refused before anything is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def cases(image: bytes, max_body_mb: float, max_pixels: int) -> list[tuple[str, dict[str, Any]]]:
    """(what is sent, httpx's keywords for POST /predict) of each bad request."""
    jpeg = {"content-type": "image/jpeg"}
    over = int(max_body_mb * (1 << 20)) + 1
    side = int(max_pixels ** 0.5) + 1

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server counts the bytes as they come
        for _ in range(over // (1 << 16) + 1):
            yield b"\0" * (1 << 16)
    return [
        ("non-image body (text as image/jpeg)", {"content": b"hello, server", "headers": jpeg}),
        ("truncated JPEG (first half)", {"content": image[:len(image) // 2], "headers": jpeg}),
        ("JPEG without its end marker (last 2 bytes cut)", {"content": image[:-2], "headers": jpeg}),
        ("empty body", {"content": b"", "headers": jpeg}),
        ("wrong content type (text/plain)", {"content": image, "headers": {"content-type": "text/plain"}}),
        ("curl --data-binary default (x-www-form-urlencoded)",
         {"content": image, "headers": {"content-type": "application/x-www-form-urlencoded"}}),
        (f"PNG header {side}x{side} (> max_pixels), {len(png_header(side, side))} bytes",
         {"content": png_header(side, side), "headers": {"content-type": "image/png"}}),
        ("PNG header 30000x30000 (PIL's bomb limit)",
         {"content": png_header(30000, 30000), "headers": {"content-type": "image/png"}}),
        (f"body of {over} bytes (Content-Length > max_body_mb)", {"content": b"\0" * over, "headers": jpeg}),
        (f"chunked body of {over}+ bytes (no Content-Length)", {"content": chunked(), "headers": jpeg}),
        ("multipart form without a file", {"files": {"note": (None, "hello")}}),
        ("unknown option ?colour=red", {"content": image, "headers": jpeg, "params": {"colour": "red"}}),
        ("unknown class ?classes=unicorn", {"content": image, "headers": jpeg, "params": {"classes": "unicorn"}}),
        ("?score_threshold=high", {"content": image, "headers": jpeg, "params": {"score_threshold": "high"}}),
        ("?max_det=0", {"content": image, "headers": jpeg, "params": {"max_det": "0"}}),
        ("?slice=big", {"content": image, "headers": jpeg, "params": {"slice": "big"}}),
    ]


def answer(response: httpx.Response) -> str:
    body = response.json()
    return body["error"] if "error" in body else f"{len(body['scores'])} detections, batch {body['batch_size']}"


def check_bad_requests(client: httpx.Client, image: bytes, max_body_mb: float, max_pixels: int,
                       disconnect: Callable[[], None] | None = None) -> list[Row]:
    """Each bad request's status and line, a client that leaves mid-upload (with `disconnect`), then a good
    request (multipart, with options)."""
    rows: list[Row] = []
    for name, request in cases(image, max_body_mb, max_pixels):
        response = client.post("/predict", **request)
        rows.append((name, response.status_code, answer(response)))
    response = client.get("/predict")
    rows.append(("GET /predict", response.status_code, answer(response)))
    if disconnect is not None:
        disconnect()
        rows.append(("client gone mid-upload (half the body, then closed)", None, "(no one to answer)"))
    response = client.post("/predict", files={"image": ("photo.jpg", image, "image/jpeg")},
                           data={"max_det": "5"})
    rows.append(("good: multipart JPEG, max_det=5", response.status_code, answer(response)))
    return rows


def disconnect_mid_upload(url: str, image: bytes) -> None:
    """POST /predict announcing the whole image, sending half of it, then closing the connection."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(f"POST /predict HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: image/jpeg\r\n"
                           f"Content-Length: {len(image)}\r\n\r\n".encode() + image[:len(image) // 2])


def markdown(rows: list[Row]) -> str:
    lines = ["| request | status | answer |", "|---|---|---|"]
    lines += [f"| {name} | {'-' if status is None else status} | {text.replace('|', '/')} |"
              for name, status, text in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--max-body-mb", type=float, default=20.0, help="the server's max_body_mb")
    parser.add_argument("--max-pixels", type=int, default=40_000_000, help="the server's max_pixels")
    args = parser.parse_args()
    image = sample_jpeg()
    with httpx.Client(base_url=args.url, timeout=60) as client:
        rows = check_bad_requests(client, image, args.max_body_mb, args.max_pixels,
                                  lambda: disconnect_mid_upload(args.url, image))
    print(markdown(rows))


if __name__ == "__main__":
    main()
