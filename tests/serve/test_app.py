"""The server's app over real HTTP (uvicorn in a thread): answers, per-request filters, every bad request as one JSON line
with the server still serving, a failing model, /health, /metrics, the OpenAPI docs, and serve.yaml's checks."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from helpers import compose_config
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.serve_requests import check_bad_requests, disconnect_mid_upload, sample_jpeg
from detect import Detector
from detect.serve.__main__ import check_serve_config
from detect.serve.app import ServeSettings, create_app
from detect.utils.errors import DetectError

SETTINGS = ServeSettings(max_batch=4, max_wait_ms=2, max_body_mb=0.5, max_pixels=500_000)
IMAGE = sample_jpeg((120, 160))


@pytest.fixture
def client(tiny_detector: Detector, serve: Callable[[FastAPI], httpx.Client]) -> httpx.Client:
    return serve(create_app(tiny_detector, SETTINGS))


def metrics(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, labels): value}."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(client.get("/metrics").text) for sample in family.samples}


def test_predict_answers_boxes_scores_names_ids_and_stage_times_raw_or_multipart(client: httpx.Client) -> None:
    raw = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"})
    multipart = client.post("/predict", files={"image": ("a.jpg", IMAGE, "image/jpeg")})
    assert raw.status_code == multipart.status_code == 200
    body = raw.json()
    assert body == multipart.json() | {"ms": body["ms"]}  # the same detections either way
    assert (body["width"], body["height"], body["batch_size"]) == (160, 120, 1)
    assert len(body["boxes"]) == len(body["scores"]) == len(body["names"]) == len(body["category_ids"]) > 0
    assert set(body["names"]) <= {"cat", "dog"} and set(body["category_ids"]) <= {17, 42}
    assert all(0 <= x1 <= x2 <= 160 and 0 <= y1 <= y2 <= 120 for x1, y1, x2, y2 in body["boxes"])
    assert {"decode", "queue", "preprocess", "model", "postprocess"} <= set(body["ms"])


def test_request_filters_narrow_the_servers(client: httpx.Client) -> None:
    every = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"}).json()
    threshold, name, category = float(np.median(every["scores"])), every["names"][0], every["category_ids"][0]
    kept = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"},
                       params={"classes": str(category), "score_threshold": threshold}).json()
    assert kept["scores"] == [s for s, n in zip(every["scores"], every["names"]) if n == name and s >= threshold]
    assert kept["scores"] and set(kept["names"]) == {name}
    top = client.post("/predict", files={"image": ("a.jpg", IMAGE, "image/jpeg")},
                      data={"max_det": "2", "classes": "cat,dog"}).json()
    assert top["scores"] == sorted(every["scores"], reverse=True)[:2]


def test_slice_runs_the_request_as_slices_as_the_detector_would(client: httpx.Client, tiny_detector: Detector) -> None:
    sliced = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"}, params={"slice": "64x96"})
    assert sliced.status_code == 200 and "slice" in sliced.json()["ms"]
    direct = tiny_detector.sliced({"size": [64, 96]}).predict(cv2.imdecode(np.frombuffer(IMAGE, np.uint8), 1))
    assert np.allclose(sliced.json()["boxes"], direct.boxes, atol=0.01) and len(direct.boxes) > 0
    plain = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"}).json()
    assert "slice" not in plain["ms"] and plain["boxes"] != sliced.json()["boxes"]
    bad = client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"}, params={"slice": "big"})
    assert bad.status_code == 400 and "slice='big' must be a slice size" in bad.json()["error"]


def test_each_bad_request_is_one_json_line_and_the_next_good_one_is_answered(client: httpx.Client) -> None:
    rows = check_bad_requests(client, IMAGE, SETTINGS.max_body_mb, SETTINGS.max_pixels,
                              lambda: disconnect_mid_upload(str(client.base_url), IMAGE))
    statuses = [status for _, status, _ in rows]
    assert statuses == [400, 400, 400, 400, 415, 415, 413, 413, 413, 413, 400, 400, 400, 400, 400, 400, 405, None, 200]
    assert all(text and "\n" not in text and "Traceback" not in text for _, _, text in rows)
    assert "max_pixels" in rows[6][2] and "max_body_mb" in rows[8][2] and "unicorn" in rows[12][2]
    deadline = time.monotonic() + 10
    while ("detect_errors_total", (("reason", "client_disconnected"),)) not in metrics(client):
        assert time.monotonic() < deadline, "the server did not see the client leave"
        time.sleep(0.05)
    counted = metrics(client)
    assert counted[("detect_requests_total", (("status", "400"),))] == 10
    assert counted[("detect_errors_total", (("reason", "body_too_large"),))] == 2
    assert counted[("detect_requests_total", (("status", "200"),))] == 1
    assert counted[("detect_queue_length", ())] == 0


def test_a_failing_model_is_a_500_line_and_the_server_goes_on(client: httpx.Client, tiny_detector: Detector,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    predict = tiny_detector.predict_frames
    monkeypatch.setattr(tiny_detector, "predict_frames", lambda frames: 1 / 0)
    failed = client.post("/predict", content=IMAGE, headers={"content-type": "image/png"})
    monkeypatch.setattr(tiny_detector, "predict_frames", predict)
    assert (failed.status_code, failed.json()) == (500, {"error": "the model failed on this image: "
                                                                  "ZeroDivisionError: division by zero"})
    assert client.post("/predict", content=IMAGE, headers={"content-type": "image/png"}).status_code == 200


def test_health_metrics_and_openapi_docs(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["classes"] == ["cat", "dog"] and health["max_batch"] == 4
    client.post("/predict", content=IMAGE, headers={"content-type": "image/jpeg"})
    counted = metrics(client)
    assert counted[("detect_batch_size_count", ())] == 1 and counted[("detect_queue_length", ())] == 0
    assert counted[("detect_request_latency_seconds_count", ())] == 1
    assert ("detect_request_latency_recent_seconds", (("quantile", "0.99"),)) in counted
    predict = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    assert {"image/jpeg", "multipart/form-data"} <= set(predict["requestBody"]["content"])
    assert {parameter["name"] for parameter in predict["parameters"]} == {"score_threshold", "classes", "max_det",
                                                                          "slice"}
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(("overrides", "message"), [
    (["max_batch=0"], "max_batch=0"), (["max_body_mb=0"], "max_body_mb=0"), (["port=70000"], "port=70000"),
    (["zones=synthetic"], "add a tracker"), (["precision=int8"], "precision=int8"), (["score_threshold=1.5"], "[0, 1)"),
])
def test_serve_config_is_checked_before_the_model_loads(overrides: list[str], message: str, tmp_path: Path) -> None:
    with pytest.raises(DetectError, match=re.escape(message)):
        check_serve_config(compose_config("serve", overrides, tmp_path))


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = compose_config("serve", [f"port={taken.getsockname()[1]}"], tmp_path)
        with pytest.raises(DetectError, match="cannot listen on 127.0.0.1"):
            check_serve_config(cfg)
    assert check_serve_config(compose_config("serve", ["port=0"], tmp_path)) == ServeSettings()
