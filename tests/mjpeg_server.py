"""A loopback HTTP MJPEG stream for the reconnect tests: up for a session of frames, down for a while (nothing
listens), up again on the same port, possibly at another size; bounded in time, on 127.0.0.1 only."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

BOUNDARY = b"frame"


@dataclass
class Session:
    """One connection's worth of stream: `frames` JPEG frames of `size` (HxW) at `fps`, then the connection closes
    (or, with `hang`, stays open and silent for `hang` seconds) and the server is down for `down_s`."""

    frames: int
    size: tuple[int, int] = (96, 128)
    fps: float = 30.0
    down_s: float = 0.0
    hang: float = 0.0


def jpeg(index: int, size: tuple[int, int]) -> bytes:
    """A frame with a bright square that moves with `index` over a dark background."""
    image = np.full((*size, 3), 30, dtype=np.uint8)
    x = (5 + 4 * index) % max(1, size[1] - 30)
    image[30:60, x:x + 30] = (40, 200, 240)
    return cv2.imencode(".jpg", image)[1].tobytes()


class MjpegServer:
    """Serves `sessions` one after another at http://127.0.0.1:<port>/cam.mjpg on a background thread."""

    def __init__(self, sessions: list[Session]) -> None:
        self.sessions, self.served = sessions, 0
        self._stop = threading.Event()
        self._server = self._listen(0)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/cam.mjpg"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _listen(self, port: int) -> http.server.ThreadingHTTPServer:
        server = self
        session_done = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                session = server.sessions[server._session]
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
                self.end_headers()
                try:
                    for index in range(session.frames):
                        data = jpeg(server.served, session.size)
                        self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                        server.served += 1
                        time.sleep(1.0 / session.fps)
                    server._stop.wait(session.hang)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    session_done.set()

        listener = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        listener.daemon_threads = True
        listener.session_done = session_done
        return listener

    def _run(self) -> None:
        port = self._server.server_address[1]
        for self._session, session in enumerate(self.sessions):
            if self._session:
                self._server = self._listen(port)
            serving = threading.Thread(target=self._server.serve_forever, daemon=True)
            serving.start()
            self._server.session_done.wait(timeout=60)
            self._server.shutdown()
            self._server.server_close()
            if self._stop.wait(session.down_s):
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
