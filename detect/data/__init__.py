"""Detection data: COCO-format datasets and data modules (coco.py, datamodule.py; YOLO and Pascal VOC read into
the same form by yolo.py and voc.py), their checks (checks.py), compact records, samplers, the synthetic demo data
and clip, conversion to COCO json (convert.py), browsing (browse.py), and frame sources for inference (sources/).
Imports detect.utils, detect.structures, detect.config and detect.tracking.

Configs written before the data modules' targets named datamodule.py (`detect.data.CocoDataModule`, in the
`.hydra/config.yaml` of older runs) still resolve through the names below."""

from __future__ import annotations

from typing import Any

OLD_TARGETS = ("CocoDataModule", "DetectionDataModule", "SyntheticDataModule", "VocDataModule", "YoloDataModule")


def __getattr__(name: str) -> Any:
    if name in OLD_TARGETS:
        from detect.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module 'detect.data' has no attribute {name!r}")
