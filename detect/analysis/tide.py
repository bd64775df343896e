"""The TIDE breakdown (Bolya et al., ECCV 2020) by its authors' `tidecv`: how many AP50 points each error type costs,
as the AP50 gained when only the errors of that type are fixed (classification, localisation, both, duplicate,
background, missed), and the counts of each type. IoU 0.5 for a hit, 0.1 for the background threshold."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

from pycocotools.coco import COCO

from detect.utils.plotting import plt

ERROR_TYPES = {"Cls": "cls", "Loc": "loc", "Both": "both", "Dupe": "dupe", "Bkg": "bkg", "Miss": "miss"}
RUN = "predictions"


def tide_breakdown(coco_gt: COCO, results: list[dict[str, Any]], image_ids: Sequence[int]) -> dict[str, Any]:
    """TIDE on `results` over `image_ids`: AP50, dAP50 per error type and for all false positives / negatives (as
    fractions, like COCO's stats), and the number of errors of each type. Crowd boxes are ignore regions."""
    from tidecv import TIDE, Data  # brings pandas and seaborn: imported only where TIDE runs (plots=true)

    truth, predictions = Data("ground truth"), Data(RUN)
    for image_id in image_ids:
        truth.add_image(image_id, str(image_id))  # an image without ground truth: its detections are background
        for ann in coco_gt.imgToAnns[image_id]:
            if ann.get("iscrowd", 0):
                truth.add_ignore_region(image_id, ann["category_id"], ann["bbox"])
            else:
                truth.add_ground_truth(image_id, ann["category_id"], ann["bbox"])
    for record in results:
        predictions.add_detection(record["image_id"], record["category_id"], record["score"], record["bbox"])
    with plt.rc_context(), contextlib.redirect_stdout(io.StringIO()):  # TIDE() sets seaborn's style globally
        tide = TIDE()
        run = tide.evaluate(truth, predictions, mode=TIDE.BOX, name=RUN)
        main, special = tide.get_main_errors()[RUN], tide.get_special_errors()[RUN]
    counts = {kind.short_name: len(errors) for kind, errors in run.error_dict.items()}
    return {"AP50": run.ap / 100,
            "dAP50": {key: main[name] / 100 for name, key in ERROR_TYPES.items()},
            "dAP50_all_false_positives": special["FalsePos"] / 100,
            "dAP50_all_false_negatives": special["FalseNeg"] / 100,
            "errors": {key: counts.get(name, 0) for name, key in ERROR_TYPES.items()}}
