"""Train or evaluate a Faster R-CNN from the Hydra configs in configs/ (see README.md)."""

import sys

import hydra
from omegaconf import DictConfig

from detect.config import check_group_overrides
from detect.errors import exit_on_error
from detect.training import run


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    exit_on_error(run, cfg)


if __name__ == "__main__":
    exit_on_error(check_group_overrides, sys.argv[1:])
    main()
