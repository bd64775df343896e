"""`python -m detect.bench [overrides]`: time ResNets over the sweep of configs/bench.yaml."""

import sys

import hydra
from omegaconf import DictConfig

from detect.bench.resnet import run_sweep
from detect.errors import DetectError


@hydra.main(version_base="1.3", config_path="../../configs", config_name="bench")
def main(cfg: DictConfig) -> None:
    try:
        run_sweep(cfg)
    except DetectError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
