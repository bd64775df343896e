"""Detect on images, a folder, a glob, a video, a webcam or a stream, timing every stage (see configs/infer.yaml)."""

import sys

import hydra
from omegaconf import DictConfig

from detect.config import check_group_overrides
from detect.errors import exit_on_error
from detect.inference.shards import run


@hydra.main(version_base="1.3", config_path="configs", config_name="infer")
def main(cfg: DictConfig) -> None:
    try:
        exit_on_error(run, cfg)
    except KeyboardInterrupt:  # before the first frame; later, Ctrl-C ends the run cleanly inside infer()
        sys.exit("interrupted")


if __name__ == "__main__":
    exit_on_error(check_group_overrides, sys.argv[1:])
    main()
