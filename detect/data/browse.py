"""Look at a dataset before training on it: training samples after the transforms with their boxes and names,
label statistics (instances per class, box sizes and aspect ratios, box centres) and a text report.

    uv run python -m detect.data.browse                                  # the demo data
    uv run python -m detect.data.browse data=coco data.root=/data/coco num_images=32
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from detect.config import hydra_main, instantiate_node
from detect.data.coco import CocoDetection
from detect.data.datamodule import DetectionDataModule
from detect.utils.drawing import draw_detections
from detect.utils.errors import exit_on_error
from detect.utils.plotting import plt, save_figure


def plot_samples(dataset: CocoDetection, count: int, seed: int, path: Path) -> Path:
    """`count` random training samples as the model gets them (after flips and colour jitter), boxes drawn."""
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(dataset), generator=generator)[:count].tolist()
    columns = min(4, len(indices))
    lines = math.ceil(len(indices) / columns)
    figure, axes = plt.subplots(lines, columns, figsize=(3.2 * columns, 3 * lines), squeeze=False,
                                layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, indices):
        image, target = dataset[index]
        canvas = np.ascontiguousarray(image.permute(1, 2, 0).numpy()[..., ::-1])  # RGB -> BGR for OpenCV
        labels = target["labels"].tolist()
        draw_detections(canvas, target["boxes"].numpy(), labels, None, dataset.classes.names)
        ax.imshow(canvas[..., ::-1])
        ax.set_title(f"image {target['image_id']}: {len(labels)} boxes", fontsize=8)
    figure.suptitle("training samples after the transforms")
    return save_figure(figure, path)


def plot_labels(dataset: CocoDetection, path: Path) -> Path:
    """Instances per class, box width / height and aspect-ratio histograms, box centres (relative to the image)."""
    boxes = np.concatenate([boxes for boxes, _ in dataset.targets]) if dataset.targets else np.zeros((0, 4))
    labels = np.concatenate([labels for _, labels in dataset.targets]) if dataset.targets else np.zeros(0, int)
    sizes = np.repeat(dataset.records.sizes, np.diff(dataset.records.box_offsets), axis=0)  # each box's image size
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    figure, axes = plt.subplots(1, 4, figsize=(18, 4), layout="constrained")
    counts = np.bincount(labels, minlength=len(dataset.classes) + 1)[1:]
    axes[0].bar(range(len(counts)), counts)
    axes[0].set_xticks(range(len(counts)), dataset.classes.names, rotation=45 if len(counts) > 5 else 0, ha="right")
    axes[0].set(title="instances per class", ylabel="boxes")
    axes[1].hist([widths, heights], bins=40, label=["width", "height"])
    axes[1].set(title="box width and height", xlabel="pixels")
    axes[1].legend()
    axes[2].hist(np.log2(widths / np.maximum(heights, 1e-6)), bins=40)
    axes[2].set(title="box aspect ratio", xlabel="log2(width / height)")
    centers = ((boxes[:, :2] + boxes[:, 2:]) / 2) / np.maximum(sizes, 1)
    axes[3].scatter(centers[:, 0], centers[:, 1], s=2, alpha=0.3)
    axes[3].set(title="box centres", xlim=(0, 1), ylim=(1, 0), xlabel="x / width", ylabel="y / height")
    return save_figure(figure, path)


def report(datamodule: DetectionDataModule) -> str:
    """Images, boxes, empty images, crowd and dropped boxes and the data checks' findings per split."""
    lines = []
    for split, dataset in (("train", datamodule.train_set), ("val", datamodule.val_set)):
        empty = sum(len(labels) == 0 for _, labels in dataset.targets)
        lines.append(f"{split}: {len(dataset)} images, {dataset.num_boxes} boxes, {empty} images without boxes, "
                     f"{dataset.num_crowd} crowd boxes, {dataset.num_degenerate} degenerate boxes dropped, "
                     f"{dataset.num_empty_dropped} empty images dropped ({datamodule.source(split)})")
        lines += [f"  data check: {line}" for line in dataset.report.lines()]
    names = ", ".join(datamodule.classes.names[:20]) + (", ..." if len(datamodule.classes) > 20 else "")
    return "\n".join([f"{len(datamodule.classes)} classes: {names}", *lines])


def browse(cfg: DictConfig) -> None:
    output_dir = Path(cfg.output_dir)
    datamodule: DetectionDataModule = instantiate_node(cfg.data)
    datamodule.setup("fit")
    text = report(datamodule)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "report.txt").write_text(text + "\n")
    files = [plot_samples(datamodule.train_set, cfg.num_images, cfg.seed, output_dir / "samples.png"),
             plot_labels(datamodule.train_set, output_dir / "labels.png"), output_dir / "report.txt"]
    print(text + "\nwrote " + ", ".join(map(str, files)))


@hydra_main("browse")
def main(cfg: DictConfig) -> None:
    exit_on_error(browse, cfg)


if __name__ == "__main__":
    main()
