"""The server's Prometheus metrics (GET /metrics), in a registry of its own: requests by status, errors by reason,
the latency histogram and its recent percentiles, the batch sizes of the model calls and the queue's length."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_WINDOW = 1000  # the latest requests the percentile gauges are computed over
QUANTILES = (0.5, 0.9, 0.99)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class RecentLatency(Collector):
    """detect_request_latency_recent_seconds{quantile=...}: percentiles of the latest `LATENCY_WINDOW` requests."""

    def __init__(self) -> None:
        self._seconds: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds.append(seconds)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("detect_request_latency_recent_seconds", f"POST /predict latency percentiles "
                                   f"over the latest {LATENCY_WINDOW} images answered", labels=["quantile"])
        with self._lock:
            seconds = np.array(self._seconds)
        if len(seconds):
            for quantile, value in zip(QUANTILES, np.quantile(seconds, QUANTILES)):
                family.add_metric([str(quantile)], float(value))
        yield family


class QueueLength(Collector):
    """detect_queue_length: the requests waiting for the model, read when scraped."""

    def __init__(self, length: Callable[[], int]) -> None:
        self._length = length

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("detect_queue_length", "requests waiting for the model", value=self._length())


class ServerMetrics:
    """What /metrics shows; `record` after each POST /predict (the latency of those answered with detections),
    `batch` after each model call."""

    def __init__(self, queue_length: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter("detect_requests", "POST /predict requests answered, by HTTP status", ["status"],
                                 registry=self.registry)
        self._errors = Counter("detect_errors", "POST /predict requests refused or failed, by reason", ["reason"],
                               registry=self.registry)
        self._latency = Histogram("detect_request_latency_seconds", "POST /predict latency of the images answered, "
                                  "request to response", buckets=LATENCY_BUCKETS, registry=self.registry)
        self._batch_size = Histogram("detect_batch_size", "images per model call", buckets=BATCH_BUCKETS,
                                     registry=self.registry)
        self._recent = RecentLatency()
        self.registry.register(self._recent)
        self.registry.register(QueueLength(queue_length))

    def record(self, status: int, seconds: float, error: str | None = None) -> None:
        self._requests.labels(str(status)).inc()
        if error is not None:
            self._errors.labels(error).inc()
        if status == 200:
            self._latency.observe(seconds)
            self._recent.add(seconds)

    def batch(self, size: int) -> None:
        self._batch_size.observe(size)

    def text(self) -> bytes:
        return generate_latest(self.registry)
