"""What train.py runs: build data, model, module and trainer from the config, then fit or evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from detect.analysis.history import plot_history
from detect.config import instantiate_node
from detect.data.datamodule import DetectionDataModule
from detect.data.augment import check_augment
from detect.data.samplers import check_sampling
from detect.engine.checkpoint_io import AtomicCheckpointIO
from detect.engine.console import quiet_lightning
from detect.engine.csv_logger import drop_logged_rows_from
from detect.engine.initial_weights import resolve_initial_weights
from detect.engine.lr_scaling import LrScaling, lr_scaling, scaled_configs
from detect.engine.module import DetectionModule, log_images
from detect.engine.recipe_callbacks import recipe_lines, stop_lines
from detect.engine.preemption import newest_checkpoint
from detect.evaluation.coco import BACKENDS, CocoEvaluator
from detect.modeling.checkpoint import missing_checkpoint, read_checkpoint
from detect.modeling.model import SYNC_BN_NEEDS_GPUS, check_model_config
from detect.modeling.slicing import slicer
from detect.modeling.tta import augmented, tta_spec
from detect.utils.errors import DetectError, check_choice


@rank_zero_only
def _print_header(cfg: DictConfig, datamodule: DetectionDataModule, model: DictConfig, network: torch.nn.Module,
                  weight_lines: list[str], scaling: LrScaling, callbacks: list[L.Callback]) -> None:
    train, val = datamodule.train_set, datamodule.val_set
    parameters = sum(p.numel() for p in network.parameters())
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    lines = [
        f"mode {cfg.mode}; output {cfg.output_dir}",
        f"model Faster R-CNN {model.backbone.name}-FPN ({model.backbone.fpn_channels} ch, norm {model.backbone.norm}),"
        f" {parameters / 1e6:.1f} M parameters ({trainable / 1e6:.1f} M trainable),"
        f" images resized to short side {model.min_size}, long side <= {model.max_size}",
        f"data {len(datamodule.classes)} classes ({', '.join(datamodule.classes.names[:8])}"
        f"{', ...' if len(datamodule.classes) > 8 else ''}); val {len(val)} images, {val.num_boxes} boxes from "
        f"{datamodule.source('val')}",
        *weight_lines,
    ]
    if train is not None:
        lines.append(f"train {len(train)} images, {train.num_boxes} boxes from {datamodule.source('train')}: "
                     f"{train.num_crowd} crowd boxes kept out of training, {train.num_degenerate} degenerate boxes "
                     f"dropped, {train.num_empty_dropped} images without boxes dropped")
        lines += datamodule.recipe_lines()
        lines.append(f"steps {cfg.trainer.max_steps} x {datamodule.batch_size} images per device, "
                     f"optimizer {cfg.optim._target_.rsplit('.', 1)[-1]}, precision {cfg.trainer.precision}")
        lines += [scaling.line(cfg.optim.lr, cfg.scheduler.get("warmup_steps")), *recipe_lines(callbacks)]
    for dataset in (val, train):
        if dataset is not None:
            lines += [f"data check: {line}" for line in dataset.report.lines()]
    if cfg.get("demo_note"):
        lines.append(cfg.demo_note)
    print("\n".join(lines), flush=True)


def run(cfg: DictConfig, callbacks: Sequence[L.Callback] = ()) -> dict[str, float]:
    """Fit (or evaluate, with mode=evaluate) and return the last COCO stats; raises DetectError on bad input.

    `callbacks` join the configured ones in a fit (detect.engine.sweep's pruning callback)."""
    check_train_config(cfg)
    configured = [callback for callback in (instantiate_node(node) for node in cfg.callbacks.values())
                  if callback is not None] if cfg.mode == "fit" else []  # before any data work: bad values fail first
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.output_dir)
    if cfg.resume:
        with open_dict(cfg):
            cfg.ckpt_path = str(newest_checkpoint(cfg.resume))
        step = read_checkpoint(cfg.ckpt_path).get("global_step", 0)
        drop_logged_rows_from(output_dir / "csv" / "metrics.csv", step)
        rank_zero_only(print)(f"resuming {cfg.resume} from {cfg.ckpt_path} (step {step})")

    initial = resolve_initial_weights(cfg)  # before any data work: a missing download or a bad file fails first
    datamodule: DetectionDataModule = instantiate_node(cfg.data)
    datamodule.setup("fit" if cfg.mode == "fit" else "validate")
    classes = datamodule.classes
    trained_on = initial.detector.classes if cfg.mode == "evaluate" else None
    if trained_on is not None and trained_on != classes:
        raise DetectError(f"ckpt_path={cfg.ckpt_path} was trained on categories {trained_on.category_ids} "
                          f"but the val set has {classes.category_ids}; evaluate it on its own dataset")
    model = initial.build(classes)

    scaling = lr_scaling(cfg)
    optimizer, scheduler = scaled_configs(cfg, scaling)
    module = DetectionModule(
        model, classes, CocoEvaluator(datamodule.val_set.coco, classes, cfg.evaluation.backend),
        optimizer=instantiate(optimizer), scheduler=instantiate(scheduler),
        model_config=initial.model_config, output_dir=output_dir, val_files=datamodule.val_files(), plots=cfg.plots,
        val_loss=cfg.evaluation.get("loss", True),
        augment=augmented(model, cfg.evaluation.tta, cfg.evaluation.slice),
    )
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=[*configured, *callbacks] if cfg.mode == "fit" else None,
        logger=[instantiate(c) for c in cfg.logger.values()],
        plugins=[AtomicCheckpointIO()],
    )
    _print_header(cfg, datamodule, OmegaConf.create(initial.model_config), model, initial.lines, scaling,
                  configured)
    if cfg.mode == "fit":
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
        for line in stop_lines(configured, trainer.global_step):
            rank_zero_only(print)(line)
        if cfg.plots and trainer.is_global_zero:
            history = plot_history(output_dir, output_dir / "plots" / "results.png")
            log_images(trainer.loggers, [history] if history else [], trainer.global_step)
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_path:
            rank_zero_only(print)(f"best checkpoint {checkpoint.best_model_path} (val/AP {checkpoint.best_model_score:.4f})"
                                  f"; last {checkpoint.last_model_path}")
    else:
        trainer.validate(module, datamodule=datamodule, verbose=False)
        rank_zero_only(print)(f"wrote {output_dir / 'eval'}/predictions.json, metrics.json and per_class_ap.txt")
    return dict(module.last_evaluation.stats) if module.last_evaluation else {}


MODES = ("fit", "evaluate")


TRAINER_PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")  # Lightning's


def check_train_config(cfg: DictConfig) -> None:
    """Everything train.py can check without reading data: unset keys, names, ranges, files named in the config."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise DetectError(f"{', '.join(missing)} must be set (they are ??? in the config), e.g. {missing[0]}=...")
    check_choice("mode", cfg.mode, MODES)
    check_model_config(cfg.model)
    if cfg.optim.lr <= 0:
        raise DetectError(f"optim.lr={cfg.optim.lr} must be > 0")
    lr_scaling(cfg)
    if cfg.optim.get("weight_decay", 0) < 0:
        raise DetectError(f"optim.weight_decay={cfg.optim.weight_decay} must be >= 0")
    if list(cfg.scheduler.get("milestones", [])) != sorted(cfg.scheduler.get("milestones", [])):
        raise DetectError(f"scheduler.milestones={list(cfg.scheduler.milestones)} must be increasing")
    check_choice("trainer.precision", str(cfg.trainer.precision), TRAINER_PRECISIONS)
    on_cpu = cfg.trainer.accelerator == "cpu" or (cfg.trainer.accelerator == "auto" and not torch.cuda.is_available())
    if cfg.mode == "fit" and cfg.model.backbone.norm == "sync_bn" and on_cpu:
        raise DetectError(f"{SYNC_BN_NEEDS_GPUS}, and this run trains on the CPU (trainer.accelerator="
                          f"{cfg.trainer.accelerator}); use model.backbone.norm=bn")
    check_choice("evaluation.backend", cfg.evaluation.backend, BACKENDS)
    if not isinstance(cfg.evaluation.get("loss", True), bool):
        raise DetectError(f"evaluation.loss={cfg.evaluation.loss} must be true or false")
    check_sampling(**{key: cfg.data[key] for key in ("sampler", "repeat_threshold", "repeat_sqrt") if key in cfg.data})
    if "augment" in cfg.data:
        check_augment(cfg.data.augment, cfg.data.get("crop_size"), cfg.data.get("copy_paste", False),
                      cfg.model.max_size)
    slicer(cfg.evaluation.slice)
    tta_spec(cfg.evaluation.tta)
    if cfg.mode == "evaluate" and not cfg.ckpt_path:
        raise DetectError("mode=evaluate needs ckpt_path=<a checkpoint of train.py or a detector state_dict>")
    if cfg.resume and (cfg.ckpt_path or cfg.mode != "fit"):
        raise DetectError(f"resume={cfg.resume} continues a training run: use it alone (no ckpt_path, mode=fit)")
    if cfg.ckpt_path and not Path(cfg.ckpt_path).is_file():
        raise DetectError(f"ckpt_path={cfg.ckpt_path} {missing_checkpoint(Path(cfg.ckpt_path))}")
