"""What benchmarks.gpu runs: the real sizes of the acceptance run, or tiny ones (--smoke) for a CPU."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """What each section runs: the real sizes, or tiny ones (--smoke) that run every line on a CPU in seconds."""

    train_backbone: str
    train_model: list[str]  # `model` keys over configs/model and its backbone (dotted)
    train_data: list[str]
    batches: tuple[int, ...]
    train_steps: tuple[int, int]  # (warm-up, timed)
    infer_backbones: tuple[str, ...]
    infer_size: str
    infer_frames: tuple[int, int]  # (warm-up, timed)
    infer_score_threshold: float  # random weights: tiny inputs score lower
    peak_matmul: int
    compile: bool
    demo: list[str]  # overrides of the demo trained when there is no --weights
    sweep: list[list[str]]  # one bench config's overrides a sweep
    references: dict[tuple[str, str], str]  # (task, backbone) -> the commonly quoted figure


FULL = Plan(
    train_backbone="resnet50", train_model=[], batches=(2, 4, 8), train_steps=(3, 10),
    train_data=["data.image_size=[800,1333]", "data.object_sizes=[32,400]", "data.num_train=32", "data.num_val=8",
                "data.num_workers=8"],
    infer_backbones=("resnet50", "resnet101"), infer_size="800x1333", infer_frames=(5, 30), compile=True, demo=[],
    infer_score_threshold=0.05, peak_matmul=8192,
    sweep=[["task=classifier", "backbone=resnet50", "size=224", "batch=1", "precision=[fp32,fp16]",
            "backend=[eager,channels_last]"],
           ["task=detector", "backbone=resnet50", "size=800x1333", "batch=1", "precision=fp32", "backend=eager"]],
    references={("classifier", "resnet50"): "~200-300 img/s at batch 1 on an RTX 3060 (commonly quoted)",
                ("detector", "resnet50"): "~1.5 GB at 800x1333 (commonly quoted)"})
TINY = ["min_size=96", "max_size=128", "backbone.fpn_channels=32", "roi.representation_size=64",
        "rpn.pre_nms_top_n_test=50", "rpn.post_nms_top_n_test=20", "rpn.pre_nms_top_n_train=100",
        "rpn.post_nms_top_n_train=50"]
SMOKE = Plan(
    train_backbone="resnet18", train_model=TINY, batches=(2,), train_steps=(1, 1), train_data=["data.num_train=4", "data.num_val=4"],
    infer_backbones=("resnet18",), infer_size="96x128", infer_frames=(1, 2), compile=False,
    infer_score_threshold=0.001, peak_matmul=256,
    demo=["model/backbone=resnet18", *(f"model.{key}" for key in TINY), "data.num_train=8", "data.num_val=4", "trainer.max_steps=2",
        "trainer.val_check_interval=2"],
    sweep=[["task=classifier", "backbone=resnet18", "size=32", "batch=1", "precision=[fp32,bf16]", "backend=eager",
            "warmup.min_runs=1", "warmup.min_s=0", "repeats.budget_s=0.05", "repeats.min_runs=2",
            "peak_matmul.cpu=256"]],
    references=FULL.references)
