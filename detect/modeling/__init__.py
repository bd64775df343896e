"""The network: the Faster R-CNN builder and its config checks (model), where weights come from (weights), reading
and writing checkpoints (checkpoint), half precision with float32 boxes (half_precision), the model's input
(preprocess), sliced inference (slicing), test-time augmentation (tta). Imports detect.utils, detect.structures and
detect.config only."""
