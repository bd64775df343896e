"""Detection data: COCO-format datasets and data modules, their checks, compact records, samplers, the synthetic
demo data. The names below are re-exported so that config targets such as `detect.data.CocoDataModule` work."""

from detect.data.coco import CocoDetection, index_coco, load_coco, read_checked, read_coco, read_image, train_transforms
from detect.data.datamodule import CocoDataModule, SyntheticDataModule

__all__ = ["CocoDataModule", "CocoDetection", "SyntheticDataModule", "index_coco", "load_coco", "read_checked",
           "read_coco", "read_image", "train_transforms"]
