"""`python -m detect.bench [overrides]`: time ResNets over the sweep of configs/bench.yaml."""

import hydra
from omegaconf import DictConfig

from detect.bench.resnet import run_sweep
from detect.config import CONFIG_DIR
from detect.errors import exit_on_error


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="bench")
def main(cfg: DictConfig) -> None:
    exit_on_error(run_sweep, cfg)


if __name__ == "__main__":
    main()
