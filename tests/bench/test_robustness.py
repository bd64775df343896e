"""The robustness benchmark: every corruption runs and is the same for the same seed; a tiny table on the trained
fixture (clean AP as the plain evaluation's, severity-5 contrast costs AP, the files written); bad keys in one line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from helpers import compose_config

from detect import Detector
from detect.bench.corruptions import ALL_CORRUPTIONS, corrupt_bgr, corruption_names
from detect.bench.robustness import run_robustness
from detect.data.coco import index_coco
from detect.evaluation.coco import evaluate_coco
from detect.export.images import run_split
from detect.structures import to_coco_results
from detect.utils.errors import DetectError


@pytest.mark.slow  # numba compiles glass_blur on its first call (~3 s)
def test_every_corruption_runs_and_repeats_with_its_seed() -> None:
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for name in ALL_CORRUPTIONS:
        first, again = corrupt_bgr(image, name, 3, seed=7), corrupt_bgr(image, name, 3, seed=7)
        assert first.shape == image.shape and first.dtype == np.uint8, name
        assert np.array_equal(first, again), f"{name}: the same seed gave other pixels"
        assert not np.array_equal(first, image), f"{name} left the image as it was"
    noisy = [corrupt_bgr(image, "impulse_noise", 3, seed) for seed in (1, 2)]  # the seed reaches scikit-image's noise
    assert not np.array_equal(*noisy)


@pytest.mark.slow  # the trained fixture, 3 settings x 2 formats x 16 images and an OpenVINO conversion
def test_robustness_table_on_a_trained_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    checkpoint = trained_run / "checkpoints" / "best.ckpt"
    cfg = compose_config("robustness", [f"weights={checkpoint}", "corruptions=[contrast]", "severities=[5,1]",
                                        "threads=1", "progress=false", "formats=[torch/fp32,openvino/fp32]"], tmp_path)
    rows = run_robustness(cfg)
    settings = (("clean", 0), ("contrast", 1), ("contrast", 5))
    assert [(r["format"], r["corruption"], r["severity"]) for r in rows] == [(f, *s) for s in settings
                                                                             for f in ("torch", "openvino")]
    ap = {(r["format"], r["corruption"], r["severity"]): r["AP"] for r in rows}
    ap50 = {(r["format"], r["corruption"], r["severity"]): r["AP50"] for r in rows}

    # the plain evaluation: the detector on the image files, pycocotools through detect.evaluation
    dataset, image_dir = run_split(checkpoint, "val")
    coco = index_coco(dataset)
    ids = sorted(coco.getImgIds())
    detector = Detector.load(checkpoint, score_threshold=0.05, threads=1)
    outputs = [vars(detector(image_dir / coco.imgs[image_id]["file_name"])) for image_id in ids]
    plain = evaluate_coco(coco, to_coco_results(outputs, ids, detector.backend.classes.category_ids),
                          detector.backend.classes, ids)
    assert plain.stats["AP50"] > 0.1  # trained: there is AP to lose
    assert ap["torch", "clean", 0] == pytest.approx(plain.stats["AP"], abs=1e-9)
    assert ap50["torch", "clean", 0] == pytest.approx(plain.stats["AP50"], abs=1e-9)
    # the fixture's barely trained model (AP ~0.05) shrugs off severity-5 noise; a contrast of 5 % blinds it
    for backend in ("torch", "openvino"):
        assert ap50[backend, "contrast", 5] < 0.5 * ap50[backend, "clean", 0], backend
    # both backends saw the same corrupted pixels: their APs agree as closely as on the clean images (OpenVINO's
    # f32 scores differ from PyTorch's by up to ~1e-2: test_backends)
    for setting in settings:
        assert abs(ap[("torch", *setting)] - ap[("openvino", *setting)]) < 0.02, setting

    with open(tmp_path / "robustness.csv") as file:
        written = list(csv.DictReader(file))
    assert [(r["format"], r["corruption"], int(r["severity"])) for r in written] == list(ap)
    assert [float(r["AP"]) for r in written] == pytest.approx(list(ap.values()))
    mpc = (ap["torch", "contrast", 1] + ap["torch", "contrast", 5]) / 2
    assert (f"| torch | fp32 | {ap['torch', 'clean', 0]:.3f} | {mpc:.3f} | {mpc / ap['torch', 'clean', 0]:.3f} | 2 |"
            in (tmp_path / "robustness.md").read_text())
    assert (tmp_path / "robustness.png").stat().st_size > 10_000


def test_unknown_corruption_is_one_line(tmp_path: Path) -> None:
    cfg = compose_config("robustness", ["weights=nowhere.ckpt", "corruptions=[fog,gausian_noise]"], tmp_path)
    with pytest.raises(DetectError, match="corruptions: 'gausian_noise' is neither a corruption") as error:
        run_robustness(cfg)
    assert "\n" not in str(error.value) and "gaussian_noise" in str(error.value)
    assert corruption_names(["noise", "gaussian_noise", "fog"]) == ["gaussian_noise", "shot_noise", "impulse_noise",
                                                                   "fog"]
    with pytest.raises(DetectError, match=r"severities=\[0, 6\]: choose levels among \[1, 2, 3, 4, 5\]"):
        run_robustness(compose_config("robustness", ["weights=x.ckpt", "severities=[0,6]"], tmp_path))
