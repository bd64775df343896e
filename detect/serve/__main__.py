"""`python -m detect.serve` (or `detect serve`): the detection server on configs/serve.yaml.

    uv run python -m detect.serve weights=outputs/.../checkpoints/best.ckpt
    uv run python -m detect.serve weights=outputs/.../best.ckpt backend=openvino precision=int8 max_batch=16 port=8080
    curl -F image=@photo.jpg 'http://127.0.0.1:8000/predict?score_threshold=0.6&max_det=10'
"""

from __future__ import annotations

import socket

import torch
import uvicorn
from omegaconf import DictConfig, OmegaConf

from detect.config import hydra_main
from detect.data.sources.capture import check_reconnect
from detect.inference.pipeline import check_detector_config, load_detector
from detect.serve.app import ServeSettings, create_app
from detect.serve.live import LiveHub, live_context
from detect.serve.live_routes import live_router
from detect.tracking.counting import zone_counter
from detect.utils.errors import DetectError, exit_on_error


def settings_of(cfg: DictConfig) -> ServeSettings:
    """serve.yaml's batching and limits, or one line naming the key out of range."""
    settings = ServeSettings(cfg.max_batch, cfg.max_wait_ms, cfg.max_queue, cfg.max_body_mb, cfg.max_pixels)
    if settings.max_batch < 1 or settings.max_wait_ms < 0 or settings.max_queue < 1:
        raise DetectError(f"max_batch={cfg.max_batch} and max_queue={cfg.max_queue} must be >= 1, "
                          f"max_wait_ms={cfg.max_wait_ms} >= 0")
    if settings.max_body_mb <= 0 or settings.max_pixels < 1:
        raise DetectError(f"max_body_mb={cfg.max_body_mb} must be > 0 and max_pixels={cfg.max_pixels} >= 1")
    return settings


def check_serve_config(cfg: DictConfig) -> ServeSettings:
    """The whole config before the model loads: the detector's keys, the server's, and a free port."""
    check_detector_config(cfg)
    check_reconnect(cfg.reconnect, cfg.read_timeout)
    zone_counter(cfg.get("zones"), cfg.get("tracker"), 0.0)
    settings = settings_of(cfg)
    if not 0 <= cfg.port <= 65535:
        raise DetectError(f"port={cfg.port} must be in 0..65535 (0: any free port)")
    with socket.socket() as probe:
        try:
            probe.bind((cfg.host, cfg.port))
        except OSError as error:
            raise DetectError(f"cannot listen on {cfg.host}:{cfg.port} ({error.strerror}): pass another port=... "
                              "or host=...") from None
    return settings


def live_hub(cfg: DictConfig) -> LiveHub | None:
    """The live view of `cfg.sources` with its tracker and zones, its sources opened; None without sources."""
    if not cfg.sources:
        return None
    tracker = OmegaConf.to_container(cfg.tracker) if cfg.get("tracker") else None
    hub = LiveHub(list(cfg.sources), tracker, cfg.get("zones"), cfg.reconnect, cfg.read_timeout, cfg.jpeg_quality)
    hub.open()
    return hub


def serve(cfg: DictConfig) -> None:
    """Open the live sources, load the detector, then serve until Ctrl-C."""
    settings = check_serve_config(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    hub = live_hub(cfg)  # before the model: a source that does not open fails first
    try:
        detector = load_detector(cfg)
    except BaseException:
        if hub is not None:
            hub.close()
        raise
    backend = detector.backend
    live = f", live view of {len(hub.views)} source(s) at /" if hub else ""
    print(f"serving {backend.description} ({backend.name} {backend.precision}, {len(detector.classes)} classes, "
          f"max_batch={settings.max_batch}) on http://{cfg.host}:{cfg.port} (docs: /docs, metrics: /metrics{live})",
          flush=True)
    routers, contexts = ([live_router(hub, cfg.max_fps)], [live_context(hub)]) if hub else ((), ())
    uvicorn.run(create_app(detector, settings, routers, contexts), host=cfg.host, port=cfg.port, log_level="warning")


@hydra_main("serve")
def _serve(cfg: DictConfig) -> None:
    exit_on_error(serve, cfg)


def main() -> None:
    _serve()


if __name__ == "__main__":
    main()
