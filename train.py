"""Train or evaluate a Faster R-CNN from the Hydra configs in configs/ (see README.md)."""

import hydra
from omegaconf import DictConfig

from detect.errors import exit_on_error
from detect.training import run


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    exit_on_error(run, cfg)


if __name__ == "__main__":
    main()
