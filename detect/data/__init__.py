"""Detection data: COCO-format datasets and data modules (YOLO and Pascal VOC read into the same form), their
checks, compact records, samplers, the synthetic demo data. The names below are re-exported so that config targets
such as `detect.data.CocoDataModule` work."""

from detect.data.coco import CocoDetection, index_coco, load_coco, read_checked, read_coco, read_image, train_transforms
from detect.data.datamodule import (CocoDataModule, DetectionDataModule, SyntheticDataModule, VocDataModule,
                                    YoloDataModule)

__all__ = ["CocoDataModule", "CocoDetection", "DetectionDataModule", "SyntheticDataModule", "VocDataModule",
           "YoloDataModule", "index_coco", "load_coco", "read_checked", "read_coco", "read_image", "train_transforms"]
