"""Every config composes, and bad values fail before any work with a message naming the key."""

from __future__ import annotations

import pytest
from helpers import compose_train

from detect.config import check_overrides
from detect.engine.training import check_train_config
from detect.modeling.model import BACKBONES
from detect.utils.errors import DetectError

EXPECTED_CHANNELS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048, "resnet152": 2048}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_backbone_composes_with_real_defaults_on_coco(backbone: str, tmp_path) -> None:
    cfg = compose_train(["data=coco", f"data.root={tmp_path}", f"model/backbone={backbone}"])
    assert cfg.model.backbone.name == backbone
    assert (cfg.model.min_size, cfg.model.max_size) == (800, 1333)  # none of the demo's shrinking leaks
    assert cfg.model.backbone.norm == "frozen_bn" and cfg.model.backbone.fpn_channels == 256
    assert cfg.model.roi.representation_size == 1024 and cfg.model.rpn.post_nms_top_n_train == 2000
    assert cfg.data._target_ == "detect.data.datamodule.CocoDataModule"


def test_default_is_the_scaled_down_demo() -> None:
    cfg = compose_train([])
    assert cfg.data._target_ == "detect.data.datamodule.SyntheticDataModule"
    assert cfg.model.backbone.name == "resnet18" and cfg.model.min_size == 128
    assert "demo" in cfg.demo_note
    # a backbone chosen on the command line wins over the demo's choice
    assert compose_train(["model/backbone=resnet50"]).model.backbone.name == "resnet50"


def test_experiments_follow_detectron2_recipes(tmp_path) -> None:
    r50 = compose_train(["experiment=coco_r50_1x", f"data.root={tmp_path}"])
    assert r50.model.backbone.name == "resnet50" and r50.data.batch_size * r50.trainer.devices == 16
    assert (r50.optim.lr, r50.trainer.max_steps, list(r50.scheduler.milestones)) == (0.02, 90000, [60000, 80000])
    assert r50.scheduler.warmup_steps == 1000 and list(r50.model.min_size)[0] == 640
    r101 = compose_train(["experiment=coco_r101_3x", f"data.root={tmp_path}"])
    assert r101.model.backbone.name == "resnet101" and r101.trainer.max_steps == 270000
    assert list(r101.scheduler.milestones) == [210000, 250000] and r101.optim.lr == 0.02


def test_unknown_backbone_group_lists_the_options() -> None:
    with pytest.raises(DetectError) as error:
        compose_train(["model/backbone=resnet42"])
    assert "resnet42" in str(error.value) and "resnet101" in str(error.value)


@pytest.mark.parametrize(("override", "message"), [
    ("model.backbone.name=resnet42", "model.backbone.name='resnet42' is not allowed; choose one of resnet18"),
    ("optim.lr=-0.1", "optim.lr=-0.1 must be > 0"),
    ("model.backbone.norm=group", "model.backbone.norm='group' is not allowed"),
    ("trainer.precision=8-mixed", "trainer.precision='8-mixed' is not allowed"),
    ("evaluation.backend=fast", "evaluation.backend='fast' is not allowed; choose one of faster, pycocotools"),
    ("evaluation.loss=maybe", "evaluation.loss=maybe must be true or false"),
    ("data.sampler=balanced", "data.sampler='balanced' is not allowed; choose one of uniform, repeat_factor"),
    ("data.repeat_threshold=0", "data.repeat_threshold=0 must be in (0, 1]"),
    ("data.repeat_threshold=1.01", "data.repeat_threshold=1.01 must be in (0, 1]"),
    ("data.repeat_sqrt=sometimes", "data.repeat_sqrt=sometimes must be true or false"),
    ("mode=evaluate", "mode=evaluate needs ckpt_path"),
    ("ckpt_path=/nonexistent/last.ckpt", "ckpt_path=/nonexistent/last.ckpt does not exist"),
])
def test_bad_values_fail_with_the_key(override: str, message: str) -> None:
    cfg = compose_train([override])
    with pytest.raises(DetectError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        check_train_config(cfg)


def test_unset_custom_paths_are_named() -> None:
    cfg = compose_train(["data=custom"])
    with pytest.raises(DetectError, match="data.train_images, data.train_json, data.val_images, data.val_json must"):
        check_train_config(cfg)


def test_sync_bn_on_the_cpu_stops_at_start() -> None:
    """SyncBatchNorm refuses CPU tensors at the first DDP step: say so before any work, naming the key."""
    cfg = compose_train(["trainer=ddp", "trainer.accelerator=cpu", "model.backbone.norm=sync_bn"])
    with pytest.raises(DetectError, match=r"^model\.backbone\.norm=sync_bn needs GPUs: .* use model\.backbone\.norm=bn$"):
        check_train_config(cfg)


@pytest.mark.parametrize(("config", "arguments", "message"), [
    ("train", ["trainer.max_step=3"], "trainer.max_step is not a key of the train config; did you mean "
                                      "trainer.max_steps?"),
    ("train", ["max_steps=3"], "max_steps is not a key of the train config; did you mean trainer.max_steps?"),
    ("train", ["model/backbone=resnet50", "model.backbone.fpn_chanels=64"],
     "model.backbone.fpn_chanels is not a key of the train config; did you mean model.backbone.fpn_channels?"),
    ("train", ["-m", "optim.lr=0.1,0.01", "optim.lrr=3"],
     "optim.lrr is not a key of the train config; did you mean optim.lr?"),
    ("train", ["hydra.run.dirr=x"], "hydra.run.dirr is not a key of the train config; did you mean hydra.run.dir?"),
    ("train", ["zzz=1"], "zzz is not a key of the train config; see configs/train.yaml"),
    ("train", ["+trainer.max_steps=3"], "train override: Could not append to config. An item is already at "
                                        "'trainer.max_steps'."),
    ("infer", ["scor_thresh=0.5"], "scor_thresh is not a key of the infer config; did you mean score_threshold or "
                                   "model.roi.score_thresh?"),
    ("infer", ["tracker.track_thresh=0.3"], "tracker.track_thresh is not a key of the infer config: tracker is unset; "
                                            "choose one with tracker=<botsort|bytetrack|ocsort|sort>"),
    ("infer", ["zones.lines.door.start=[0,300]"],
     "zones.lines.door.start is not a key of the infer config: zones is unset; choose one with zones=<synthetic> or "
     "write its keys: +zones.lines.door.start=[0,300]"),
    ("infer", ["zones=synthetic", "zones.lines.vertical.anchr=center"],
     "zones.lines.vertical.anchr is not a key of the infer config; did you mean zones.lines.vertical.anchor? (zones "
     "takes new keys with +: +zones.lines.vertical.anchr=center)"),
    ("export", ["weigths=x.ckpt"], "weigths is not a key of the export config; did you mean weights?"),
    ("bench", ["warmup.min_run=3"], "warmup.min_run is not a key of the bench config; did you mean warmup.min_runs?"),
])
def test_a_mistyped_override_is_one_line_with_the_closest_keys(config: str, arguments: list[str], message: str) -> None:
    with pytest.raises(DetectError) as error:
        check_overrides(config, arguments)
    assert str(error.value) == message


@pytest.mark.parametrize(("config", "arguments"), [
    ("train", ["-m", "hydra/launcher=slurm", "trainer=slurm", "trainer.devices=4", "optim.lr=0.1,0.01",
               "model/backbone=resnet18,resnet34", "hydra.launcher.signal_delay_s=120"]),
    ("infer", ["-m", "source=videos/", "hydra/launcher=slurm", "shard=0/2,1/2", "hydra.launcher.timeout_min=10"]),
    ("infer", ["source=x", "tracker=bytetrack", "+zones={lines: {door: {start: [0, 300], end: [640, 300]}}}"]),
    ("infer", ["source=x", "+zones.lines.door.start=[0,300]", "+zones.lines.door.end=[640,300]"]),
    ("train", ["--cfg", "job", "trainer.max_step=3"]),  # Hydra's own options: Hydra answers
])
def test_command_lines_hydra_takes_pass_the_check(config: str, arguments: list[str]) -> None:
    check_overrides(config, arguments)
