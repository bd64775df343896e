"""Train or evaluate a Faster R-CNN from the Hydra configs in configs/ (see README.md)."""

import sys

import hydra
from omegaconf import DictConfig

from detect.errors import DetectError
from detect.training import run


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except DetectError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
