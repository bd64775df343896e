"""`python -m detect.serve` as a process on a free loopback port, as benchmarks/serve_load.py runs it: the bad
requests and a client gone mid-upload over real HTTP, then concurrent clients batched, /metrics sane after, and
Ctrl-C ending it cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.serve_load import batch_totals, load, server
from benchmarks.serve_requests import check_bad_requests, disconnect_mid_upload, sample_jpeg


@pytest.mark.slow
def test_the_server_process_refuses_bad_requests_batches_clients_and_stops_on_ctrl_c(tiny_checkpoint: Path) -> None:
    image = sample_jpeg((240, 320))
    with server(str(tiny_checkpoint), "torch", "fp32", 8, 20.0, ["threads=1", "max_pixels=1000000",
                                                                 "max_body_mb=1"]) as (process, url):
        with httpx.Client(base_url=url, timeout=60) as client:
            rows = check_bad_requests(client, image, 1, 1_000_000, lambda: disconnect_mid_upload(url, image))
            assert [status for _, status, _ in rows][-3:] == [405, None, 200]
            assert all(400 <= status < 500 for _, status, _ in rows[:-3])
            latencies, errors = asyncio.run(load(url, image, clients=8, seconds=3.0, max_requests=48))
            assert errors == 0 and len(latencies) >= 8
            images, calls = batch_totals(client)
            assert images == len(latencies) + 1 and calls < images  # some calls ran several images
            samples = {(sample.name, tuple(sample.labels.values())): sample.value for family in
                       text_string_to_metric_families(client.get("/metrics").text) for sample in family.samples}
            assert samples[("detect_errors_total", ("client_disconnected",))] == 1
            assert samples[("detect_requests_total", ("200",))] == images and samples[("detect_queue_length", ())] == 0
            assert 0 < samples[("detect_request_latency_recent_seconds", ("0.5",))] < 60
    assert process.returncode == 0
