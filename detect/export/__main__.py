"""`python -m detect.export`: a network to ONNX or OpenVINO IR, checked against PyTorch (configs/export.yaml).

    uv run python -m detect.export weights=outputs/.../checkpoints/best.ckpt
    uv run python -m detect.export format=openvino precision=int8 weights=outputs/.../checkpoints/best.ckpt
    uv run python -m detect.export task=classifier model/backbone=resnet18

The detector is checked on real images where it detects something (the checkpoint's val images, or
`parity_images`); the check fails when no detection was compared. An int8 model is not expected to match PyTorch
box for box: its accuracy is measured by `python -m detect.bench formats`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from detect.config import hydra_main
from detect.utils.errors import exit_on_error


@hydra_main("export")
def main(cfg: DictConfig) -> None:
    from detect.export.command import run  # torch, ONNX, OpenVINO (~10 s): once the command line is right

    exit_on_error(run, cfg)


if __name__ == "__main__":
    main()
