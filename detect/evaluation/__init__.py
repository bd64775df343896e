"""Scoring: COCO evaluation with faster-coco-eval or pycocotools, gathered across ranks (coco), checks of
predictions (prediction_checks), MOT / HOTA tracking metrics (mot), the counting error against true crossings
(counting). Imports detect.utils, detect.structures, detect.config, detect.tracking and detect.data."""
