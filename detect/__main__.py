"""`python -m detect <command> [arguments]`, or `detect <command> ...` once the package is installed:

    train      train or evaluate a detector (Hydra overrides of configs/train.yaml; train.py runs this)
    infer      detect on images, videos, cameras and streams (configs/infer.yaml; infer.py runs this)
    export     ONNX / OpenVINO export of a checkpoint, checked against PyTorch (configs/export.yaml)
    bench      the ResNet latency sweep (configs/bench.yaml); `bench formats ...`, `bench robustness ...`
    sweep      an Optuna search: sweep hparams_search=<name> [train overrides]
    convert    any data config's splits as COCO json (configs/convert.yaml)
    browse     samples after the transforms and label statistics (configs/browse.yaml)
    analyze    redraw a run's plots: analyze <run dir>
    merge      merge the shards of a sharded inference run: merge <sweep dir>
    clip       write the synthetic tracking and counting clip with its ground truth
    serve      the HTTP server: POST /predict, /health, /metrics, a live view of sources (configs/serve.yaml)
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {"train": "detect.cli:train", "infer": "detect.cli:infer", "export": "detect.export.__main__:main",
            "bench": "detect.bench.__main__:main", "sweep": "detect.engine.sweep:cli",
            "convert": "detect.data.convert:main", "browse": "detect.data.browse:main",
            "analyze": "detect.analysis.__main__:main", "merge": "detect.inference.merge:main",
            "clip": "detect.data.synthetic_video:main", "serve": "detect.serve.__main__:main"}


def main() -> None:
    """Run the command named by the first argument with the rest of the command line."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command not in COMMANDS:
        print(__doc__.strip())
        sys.exit(0 if command in ("-h", "--help") else f"error: {command or 'a command'} is not a command of detect; "
                                                        f"choose one of {', '.join(COMMANDS)}")
    module, _, function = COMMANDS[command].partition(":")
    sys.argv = [f"detect {command}", *sys.argv[2:]]
    getattr(importlib.import_module(module), function)()


if __name__ == "__main__":
    main()
