"""Redraw a run's pictures from its saved files, without the model: eval/predictions.json scored again against the
val annotation file (faster-coco-eval, or pycocotools with --backend pycocotools), the error breakdown added to
eval/metrics.json, the logger's files (csv/metrics.csv or tensorboard/) for results.png. Writes <run dir>/plots/.

    uv run python -m detect analyze outputs/2026-11-22/17-30-00
    uv run python -m detect analyze <run dir> --val-json val.json --val-images images/   # files moved since
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detect.analysis import error_line, write_analysis
from detect.data.coco import load_coco
from detect.evaluation.coco import BACKENDS, evaluate_coco
from detect.evaluation.prediction_checks import check_results
from detect.structures import Classes
from detect.utils.errors import DetectError


def analyze(run_dir: Path, val_json: Path | None = None, val_images: Path | None = None,
            backend: str = "faster") -> dict:
    """Score the run's predictions again, write every plot and the error breakdown into eval/metrics.json; return
    what `write_analysis` returns."""
    metrics_path, predictions_path = run_dir / "eval" / "metrics.json", run_dir / "eval" / "predictions.json"
    for path in (metrics_path, predictions_path):
        if not path.is_file():
            raise DetectError(f"{path} does not exist; pass the folder of a train.py run that has evaluated")
    metrics = json.loads(metrics_path.read_text())
    val_json = val_json or (Path(metrics["val_json"]) if "val_json" in metrics else None)
    if val_json is None:
        raise DetectError(f"{metrics_path} does not name the val annotation file; pass --val-json (for a "
                          "YOLO or Pascal VOC dataset, write one with python -m detect convert)")
    val_images = val_images or (Path(metrics["val_images"]) if "val_images" in metrics else None)
    coco = load_coco(val_json)
    category_ids = sorted(coco.getCatIds())
    classes = Classes([coco.cats[c]["name"] for c in category_ids], category_ids)
    results = json.loads(predictions_path.read_text())
    check_results(coco, results)  # before the image ids are read from the records
    evaluation = evaluate_coco(coco, results, classes, sorted({r["image_id"] for r in results}) or None, backend)
    if evaluation.coco_eval is None:
        raise DetectError(f"{predictions_path} holds no detection; there is nothing to draw")
    images = val_images if val_images is not None and val_images.is_dir() else None
    analysis = write_analysis(evaluation.coco_eval, results, classes, images, run_dir / "plots", run_dir,
                              backend=backend)
    metrics_path.write_text(json.dumps(metrics | {"errors": analysis["errors"]}, indent=2, allow_nan=True))
    return analysis | {"stats": evaluation.stats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--val-json", type=Path, default=None, help="default: the one the run evaluated on")
    parser.add_argument("--val-images", type=Path, default=None, help="default: the one the run evaluated on")
    parser.add_argument("--backend", default="faster", choices=BACKENDS, help="the COCO evaluator (default: faster)")
    args = parser.parse_args()
    try:
        analysis = analyze(args.run_dir, args.val_json, args.val_images, args.backend)
    except DetectError as error:
        sys.exit(f"error: {error}")
    print(f"AP {analysis['stats']['AP']:.3f}, AP50 {analysis['stats']['AP50']:.3f}; best F1 {analysis['best_f1']:.3f} "
          f"at score threshold {analysis['best_f1_threshold']:.2f} (IoU 0.5)")
    print(error_line(analysis["errors"]))
    print("wrote " + ", ".join(analysis["plots"]))


if __name__ == "__main__":
    main()
