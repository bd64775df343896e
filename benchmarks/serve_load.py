"""The detection server under load on loopback: each configuration (torch fp32, OpenVINO int8; batching on and
off) is started as `python -m detect.serve` in a process of its own, then 1, 4, 16 and 64 concurrent clients
(httpx, asyncio) post the same JPEG for a fixed time each, bounded in requests too. Per level: requests/s, p50 /
p99 latency, errors (must be 0), the mean batch the server ran (from its /metrics) and its RSS before and after.
The first server also answers the bad-request table (benchmarks/serve_requests.py). Prints markdown.

    uv run python -m benchmarks.serve_load --weights outputs/.../checkpoints/best.ckpt
    uv run python -m benchmarks.serve_load --weights best.ckpt --configs torch:fp32 --clients 1 16 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.serve_requests import check_bad_requests, disconnect_mid_upload, markdown, sample_jpeg

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
BAD_REQUEST_LIMITS = 20.0, 40_000_000  # serve.yaml's max_body_mb and max_pixels, which the servers keep


@dataclass
class Level:
    """One load level's figures."""

    clients: int
    requests: int
    errors: int
    wall_s: float
    latencies_ms: list[float]
    mean_batch: float
    rss_mb: tuple[float, float]

    def row(self, config: str, batching: str) -> str:
        p50, p99 = np.percentile(self.latencies_ms, [50, 99]) if self.latencies_ms else (float("nan"),) * 2
        return (f"| {config} | {batching} | {self.clients} | {self.requests} | {self.requests / self.wall_s:.1f} | "
                f"{p50:.0f} | {p99:.0f} | {self.errors} | {self.mean_batch:.1f} | "
                f"{self.rss_mb[0]:.0f} -> {self.rss_mb[1]:.0f} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="a checkpoint of train.py (int8 calibrates on its images)")
    parser.add_argument("--configs", nargs="+", default=["torch:fp32", "openvino:int8"], metavar="BACKEND:PRECISION")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per level (default: %(default)s)")
    parser.add_argument("--max-requests", type=int, default=5000, help="requests per level at most")
    parser.add_argument("--max-batch", type=int, default=16, help="the server's max_batch with batching on")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="the server's max_wait_ms with batching on")
    parser.add_argument("--size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"), help="the JPEG's size")
    parser.add_argument("--server", nargs="*", default=[], metavar="KEY=VALUE", help="more serve.yaml overrides")
    return parser.parse_args()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def batch_totals(client: httpx.Client) -> tuple[float, float]:
    """(images, model calls) the server has run, from its /metrics."""
    samples = {sample.name: sample.value for family in text_string_to_metric_families(client.get("/metrics").text)
               for sample in family.samples if not sample.labels}
    return samples.get("detect_batch_size_sum", 0.0), samples.get("detect_batch_size_count", 0.0)


@contextmanager
def server(weights: str, backend: str, precision: str, max_batch: int, max_wait_ms: float,
           overrides: list[str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """`python -m detect.serve` on a free loopback port, up once /health answers; stopped with Ctrl-C after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as run_dir:
        command = [sys.executable, "-m", "detect.serve", f"weights={weights}", f"backend={backend}",
                   f"precision={precision}", f"max_batch={max_batch}", f"max_wait_ms={max_wait_ms}", f"port={port}",
                   f"hydra.run.dir={run_dir}", *overrides]
        process = subprocess.Popen(command)
        try:
            deadline = time.monotonic() + 900  # int8: the first load calibrates and checks
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"error: the server ended ({process.returncode}): {' '.join(command)}")
                try:
                    httpx.get(f"{url}/health", timeout=2).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"error: no /health from {' '.join(command)}") from None
                    time.sleep(0.5)
            yield process, url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def load(url: str, image: bytes, clients: int, seconds: float, max_requests: int) -> tuple[list[float], int]:
    """`clients` concurrent clients posting `image` until `seconds` pass or `max_requests` are sent: (latencies of
    the answered requests in ms, errors)."""
    latencies, errors, sent = [], 0, 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(session: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while time.perf_counter() < deadline and sent < max_requests:
            sent += 1
            started = time.perf_counter()
            try:
                response = await session.post("/predict", content=image, headers={"content-type": "image/jpeg"})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000.0)
            else:
                errors += 1
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return latencies, errors


def measure(url: str, pid: int, image: bytes, args: argparse.Namespace) -> list[Level]:
    """A warm-up, then each level of clients."""
    with httpx.Client(base_url=url, timeout=120) as client:
        asyncio.run(load(url, image, max(args.clients), 2.0, 2 * max(args.clients)))  # warm-up: every batch size
        levels = []
        for clients in args.clients:
            images, calls, rss_before = *batch_totals(client), rss_mb(pid)
            started = time.perf_counter()
            latencies, errors = asyncio.run(load(url, image, clients, args.seconds, args.max_requests))
            wall_s = time.perf_counter() - started
            images_after, calls_after = batch_totals(client)
            mean_batch = (images_after - images) / max(calls_after - calls, 1)
            levels.append(Level(clients, len(latencies) + errors, errors, wall_s, latencies, mean_batch,
                                (rss_before, rss_mb(pid))))
    return levels


def cpu_line() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.processor() or "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(flag for flag in CPU_FLAGS if flag in flags) or '-'}"


def main() -> None:
    args = parse_args()
    image = sample_jpeg(tuple(args.size))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load_before = os.getloadavg()
    rows, throughput, bad_requests = [], {}, None
    for config in args.configs:
        backend, _, precision = config.partition(":")
        for batching, max_batch in ((f"max_batch={args.max_batch}", args.max_batch), ("off (max_batch=1)", 1)):
            with server(args.weights, backend, precision, max_batch, args.max_wait_ms, args.server) as (process, url):
                if bad_requests is None:
                    with httpx.Client(base_url=url, timeout=120) as client:
                        bad_requests = check_bad_requests(client, image, *BAD_REQUEST_LIMITS,
                                                          lambda: disconnect_mid_upload(url, image))
                for level in measure(url, process.pid, image, args):
                    rows.append(level.row(config, batching))
                    throughput[config, max_batch, level.clients] = level.requests / level.wall_s
                    print(rows[-1], flush=True)
    load_after = os.getloadavg()
    print(f"\n{time.strftime('%Y-%m-%d')}, commit {commit}, {cpu_line()}")
    print(f"load average (1/5/15 min) before {' '.join(f'{x:.2f}' for x in load_before)}, after "
          f"{' '.join(f'{x:.2f}' for x in load_after)}")
    print(f"command: python -m benchmarks.serve_load {' '.join(sys.argv[1:])}; JPEG {args.size[1]}x{args.size[0]}, "
          f"{args.seconds:g} s a level, at most {args.max_requests} requests\n")
    print("| backend | batching | clients | requests | req/s | p50 ms | p99 ms | errors | mean batch | RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    gain_at = 16 if 16 in args.clients else max(args.clients)
    for config in args.configs:
        on, off = throughput[config, args.max_batch, gain_at], throughput[config, 1, gain_at]
        print(f"\n{config}: batching at {gain_at} clients {on:.1f} vs {off:.1f} req/s one at a time: x{on / off:.2f}")
    print("\n" + markdown(bad_requests or []))


if __name__ == "__main__":
    main()
