"""The Hydra entry points of training and inference (train.py and infer.py call these; so does `python -m detect
train|infer`). Their command lines are checked before Hydra composes (`detect.config.hydra_main`), so a misspelt
group option or key is one line, and before torch, torchvision and Lightning load (~10 s): within a second."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from detect.config import hydra_main
from detect.utils.errors import DetectError, exit_on_error


def check_train_arguments(arguments: list[str]) -> None:
    """One line for what train.py cannot take: an Optuna search is its own command."""
    searches = [argument for argument in arguments if argument.lstrip("+").startswith("hparams_search=")]
    if searches:
        others = " ".join(argument for argument in arguments if argument not in searches and argument != "-m")
        raise DetectError(f"{searches[0]} is an Optuna search, not a train.py override: run "
                          f"python -m detect sweep {searches[0].lstrip('+')} {others}".rstrip())


@hydra_main("train")
def _train(cfg: DictConfig) -> None:
    from detect.engine.training import run as run_training  # the heavy imports, once the command line is right

    exit_on_error(run_training, cfg)


@hydra_main("infer")
def _infer(cfg: DictConfig) -> None:
    from detect.inference.shards import run as run_inference  # the heavy imports, once the command line is right

    try:
        exit_on_error(run_inference, cfg)
    except KeyboardInterrupt:  # before the first frame; later, Ctrl-C ends the run cleanly inside infer()
        sys.exit("interrupted")


def train() -> None:
    """train.py: train or evaluate (configs/train.yaml) with the command line's overrides."""
    exit_on_error(check_train_arguments, sys.argv[1:])
    _train()


def infer() -> None:
    """infer.py: detect on any source (configs/infer.yaml) with the command line's overrides."""
    _infer()
