"""The LightningModule: Faster R-CNN losses, per-step warmup schedules, COCO evaluation, checkpoint metadata."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from torch.optim.lr_scheduler import LambdaLR
from torchvision.models.detection import FasterRCNN

from detect.analysis import error_line, write_analysis
from detect.evaluation.coco import CocoEvaluator, write_evaluation
from detect.modeling.checkpoint import detector_metadata
from detect.modeling.half_precision import float32_boxes
from detect.modeling.model import DetectorCall
from detect.structures import Classes


def log_images(loggers: Sequence[Logger], paths: Sequence[str | Path], step: int) -> None:
    """The PNG files among `paths` as images of every TensorBoard logger (tag plots/<file name>)."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for path in (path for path in paths if str(path).endswith(".png")):
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                logger.experiment.add_image(f"plots/{Path(path).stem}", image[..., ::-1], step, dataformats="HWC")


@torch.no_grad()
def validation_losses(model: FasterRCNN, images: list[torch.Tensor], targets: list[dict],
                      seed: int) -> dict[str, torch.Tensor]:
    """The training losses of a val batch, leaving training as it was: torchvision returns losses only in train
    mode, so the model runs in it with its BatchNorm layers in eval mode (running statistics untouched), and on a
    forked RNG seeded with `seed` (the proposal samplers draw from it: the same loss each evaluation, the same
    draws for training after it)."""
    was_training = model.training
    devices = [images[0].device] if images and images[0].is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model.train()
        for layer in model.modules():
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.eval()
        try:
            return model(images, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
        finally:
            model.train(was_training)


class DetectionModule(L.LightningModule):
    """Trains a torchvision FasterRCNN and scores it with COCOeval (`evaluator.backend`) on the validation split.

    `optimizer` and `scheduler` are factories (Hydra `_partial_` configs) called with the trainable
    parameters and the optimizer. Evaluation files go to `output_dir/eval`. With `val_loss` the training losses of
    the val split are logged too (val/loss and its parts).
    """

    def __init__(self, model: FasterRCNN, classes: Classes, evaluator: CocoEvaluator,
                 optimizer: Callable[..., torch.optim.Optimizer] | None = None,
                 scheduler: Callable[..., LambdaLR] | None = None, model_config: dict[str, Any] | None = None,
                 output_dir: str | Path = ".", val_files: dict[str, str] | None = None, plots: bool = True,
                 val_loss: bool = True, augment: DetectorCall | None = None) -> None:
        super().__init__()
        self.model = float32_boxes(model)  # mixed precision autocasts each step: boxes and NMS stay float32
        self.classes = classes
        self.evaluator = evaluator
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.model_config = model_config or {}
        self.output_dir = Path(output_dir)
        self.val_files = val_files or {}  # val_json and val_images, for the plots and `python -m detect analyze`
        self.plots, self.val_loss = plots, val_loss
        self.last_evaluation = None
        self.augment = augment  # evaluation's slicing / test-time augmentation around the model; None: the model

    @staticmethod
    def _to_float(images: list[torch.Tensor]) -> list[torch.Tensor]:
        """uint8 images travel to the device as they are (4x less to copy) and become floats there."""
        return [image.float().div_(255) for image in images]

    def training_step(self, batch: tuple[list[torch.Tensor], list[dict]], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        losses = self.model(self._to_float(images), [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
        loss = sum(losses.values())
        self.log_dict({f"train/{name}": value for name, value in losses.items()}, batch_size=len(images))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images))
        if any("dropped" in t for t in targets):  # boxes cropped away or pasted over (detect.data.augment, copy_paste)
            self.log("train/boxes_dropped", float(sum(t.get("dropped", 0) for t in targets)), batch_size=len(images))
        return loss

    def on_validation_epoch_start(self) -> None:
        self.evaluator.reset()

    def validation_step(self, batch: tuple[list[torch.Tensor], list[dict]], batch_idx: int) -> None:
        images, targets = batch
        images = self._to_float(images)
        outputs = (self.augment or self.model)(images)
        self.evaluator.update(outputs, [t["image_id"] for t in targets])
        if self.val_loss:
            losses = validation_losses(self.model, images, targets, seed=batch_idx)
            self.log_dict({f"val/{name}": value for name, value in losses.items()}, batch_size=len(images),
                          sync_dist=True)
            self.log("val/loss", sum(losses.values()), batch_size=len(images), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        evaluation, results = self.evaluator.compute()  # every rank gets the same numbers
        self.last_evaluation = evaluation
        self.log_dict({f"val/{name}": value for name, value in evaluation.stats.items()}, sync_dist=False)
        if self.trainer.is_global_zero:
            extra = dict(self.val_files)
            if self.plots and evaluation.coco_eval is not None and results:
                images = Path(self.val_files["val_images"]) if "val_images" in self.val_files else None
                analysis = write_analysis(evaluation.coco_eval, results, self.classes, images,
                                          self.output_dir / "plots", backend=self.evaluator.backend)
                extra |= {key: analysis[key] for key in ("best_f1_threshold", "best_f1", "errors")}
                log_images(self.loggers, analysis["plots"], self.global_step)
            write_evaluation(evaluation, results, self.output_dir / "eval", extra)
            print(f"\nCOCO bbox evaluation at step {self.global_step}: {evaluation.num_images} images, "
                  f"{len(results)} detections\n{evaluation.summary}\n\n{evaluation.per_class_table()}\n"
                  + (error_line(extra["errors"]) + "\n" if "errors" in extra else ""))

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Class names, original category ids and the model config travel with the weights (plain types only)."""
        checkpoint.update(detector_metadata(self.classes.names, self.classes.category_ids, self.model_config))
