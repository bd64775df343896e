"""`python -m detect.bench [overrides]`: time ResNets over the sweep of configs/bench.yaml.
`python -m detect.bench formats weights=<checkpoint> [overrides]`: the format table of configs/formats.yaml.
`python -m detect.bench robustness weights=<checkpoint> [overrides]`: AP under corruptions (configs/robustness.yaml)."""

import sys

from omegaconf import DictConfig

from detect.bench.resnet import run_sweep
from detect.config import hydra_main
from detect.utils.errors import exit_on_error


@hydra_main("bench")
def sweep(cfg: DictConfig) -> None:
    exit_on_error(run_sweep, cfg)


@hydra_main("formats")
def formats(cfg: DictConfig) -> None:
    from detect.bench.formats import run_formats  # openvino and onnxruntime load only for this command

    exit_on_error(run_formats, cfg)


@hydra_main("robustness")
def robustness(cfg: DictConfig) -> None:
    try:
        from detect.bench.robustness import run_robustness  # the corruptions (numba, scikit-image) load only for this
    except ModuleNotFoundError as error:
        sys.exit(f"error: the robustness table needs {error.name}: pip install 'detect[robustness]'")
    exit_on_error(run_robustness, cfg)


SUBCOMMANDS = {"formats": formats, "robustness": robustness}


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in SUBCOMMANDS:
        SUBCOMMANDS[sys.argv.pop(1)]()
    else:
        sweep()


if __name__ == "__main__":
    main()
