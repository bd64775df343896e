"""What train.py runs: build data, model, module and trainer from the config, then fit or evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from detect.analysis.history import plot_history
from detect.checkpoint import AtomicCheckpointIO, read_checkpoint
from detect.config import check_train_config, instantiate_node
from detect.data import DetectionDataModule
from detect.errors import DetectError
from detect.evaluation import CocoEvaluator
from detect.model import build_model, read_detector_weights
from detect.module import DetectionModule, log_images
from detect.preemption import drop_logged_rows_from, newest_checkpoint


@rank_zero_only
def _print_header(cfg: DictConfig, datamodule: DetectionDataModule) -> None:
    train, val = datamodule.train_set, datamodule.val_set
    model = cfg.model
    lines = [
        f"mode {cfg.mode}; output {cfg.output_dir}",
        f"model Faster R-CNN {model.backbone.name}-FPN ({model.backbone.fpn_channels} ch, norm {model.backbone.norm}),"
        f" images resized to short side {model.min_size}, long side <= {model.max_size}",
        f"data {len(datamodule.classes)} classes ({', '.join(datamodule.classes.names[:8])}"
        f"{', ...' if len(datamodule.classes) > 8 else ''}); val {len(val)} images, {val.num_boxes} boxes from "
        f"{datamodule.source('val')}",
    ]
    if train is not None:
        lines.append(f"train {len(train)} images, {train.num_boxes} boxes from {datamodule.source('train')}: "
                     f"{train.num_crowd} crowd boxes kept out of training, {train.num_degenerate} degenerate boxes "
                     f"dropped, {train.num_empty_dropped} images without boxes dropped")
        lines.append(f"steps {cfg.trainer.max_steps} x {datamodule.batch_size} images per device, "
                     f"optimizer {cfg.optim._target_.rsplit('.', 1)[-1]} lr {cfg.optim.lr}, "
                     f"precision {cfg.trainer.precision}")
    for dataset in (val, train):
        if dataset is not None:
            lines += [f"data check: {line}" for line in dataset.report.lines()]
    if cfg.get("demo_note"):
        lines.append(cfg.demo_note)
    print("\n".join(lines), flush=True)


def run(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, float]:
    """Fit (or evaluate, with mode=evaluate) and return the last COCO stats; raises DetectError on bad input.

    `callbacks` join the configured ones in a fit (detect.sweep's pruning callback)."""
    check_train_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.output_dir)
    if cfg.resume:
        with open_dict(cfg):
            cfg.ckpt_path = str(newest_checkpoint(cfg.resume))
        step = read_checkpoint(cfg.ckpt_path).get("global_step", 0)
        drop_logged_rows_from(output_dir / "csv" / "metrics.csv", step)
        rank_zero_only(print)(f"resuming {cfg.resume} from {cfg.ckpt_path} (step {step})")

    datamodule: DetectionDataModule = instantiate_node(cfg.data)
    datamodule.setup("fit" if cfg.mode == "fit" else "validate")
    classes = datamodule.classes
    weights_spec = cfg.ckpt_path if cfg.mode == "evaluate" else cfg.model.weights
    weights = read_detector_weights(weights_spec, cfg.model.backbone.name) if weights_spec else None
    if cfg.mode == "evaluate" and weights.classes is not None and weights.classes != classes:
        raise DetectError(f"ckpt_path={cfg.ckpt_path} was trained on categories {weights.classes.category_ids} "
                          f"but the val set has {classes.category_ids}; evaluate it on its own dataset")
    resuming = cfg.mode == "fit" and cfg.ckpt_path  # the checkpoint brings every weight: no ImageNet download
    model = build_model(cfg.model, num_classes=len(classes) + 1, weights=weights, pretrained_backbone=not resuming)

    module = DetectionModule(
        model, classes, CocoEvaluator(datamodule.val_set.coco, classes),
        optimizer=instantiate(cfg.optim), scheduler=instantiate(cfg.scheduler),
        model_config=OmegaConf.to_container(cfg.model, resolve=True), output_dir=output_dir,
        val_files=datamodule.val_files(), plots=cfg.plots,
    )
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=[*(instantiate(c) for c in cfg.callbacks.values()), *callbacks] if cfg.mode == "fit" else None,
        logger=[instantiate(c) for c in cfg.logger.values()],
        plugins=[AtomicCheckpointIO()],
    )
    _print_header(cfg, datamodule)
    if cfg.mode == "fit":
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        if cfg.plots and trainer.is_global_zero:
            history = plot_history(output_dir / "csv" / "metrics.csv", output_dir / "plots" / "results.png")
            log_images(trainer.loggers, [history] if history else [], trainer.global_step)
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_path:
            rank_zero_only(print)(f"best checkpoint {checkpoint.best_model_path} (val/AP {checkpoint.best_model_score:.4f})"
                                  f"; last {checkpoint.last_model_path}")
    else:
        trainer.validate(module, datamodule=datamodule, verbose=False)
        rank_zero_only(print)(f"wrote {output_dir / 'eval'}/predictions.json, metrics.json and per_class_ap.txt")
    return dict(module.last_evaluation.stats) if module.last_evaluation else {}
