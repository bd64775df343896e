"""Lightning's console lines that say nothing about a run, each silenced by its own scoped filter: the LitLogger tip,
the srun hint off SLURM (kept inside a SLURM job), the LeafSpec FutureWarning; other lines and warnings still show."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import lightning as L
import pytest
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.loggers import CSVLogger
from helpers import off_slurm_environment
from lightning.pytorch.utilities._pytree import _tree_flatten

from detect.engine.console import DROP_TIPS, TIP_LOGGER, quiet_lightning


class Lines(logging.Handler):
    """The messages logged to the logger it is added to."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def trainer_lines(tmp_path: Path):
    """A function that builds a Trainer as train.py does and returns what Lightning logged while doing it."""
    logger = logging.getLogger(TIP_LOGGER)
    logger.removeFilter(DROP_TIPS)  # a training run earlier in this process installed it
    handler = Lines()
    logger.addHandler(handler)

    def build() -> list[str]:
        handler.messages.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PossibleUserWarning)  # the srun hint: its own test below
            L.Trainer(accelerator="cpu", logger=[CSVLogger(tmp_path)], enable_checkpointing=False,
                      enable_model_summary=False, enable_progress_bar=False)
        return list(handler.messages)

    yield build
    logger.removeHandler(handler)
    logger.removeFilter(DROP_TIPS)


def test_the_litlogger_tip_goes_and_the_device_lines_stay(trainer_lines) -> None:
    assert any("litlogger" in line for line in trainer_lines())  # where the filter acts, Lightning logs it
    quiet_lightning()
    quiet_lightning()  # once or twice: the same filters
    lines = trainer_lines()
    assert not any("litlogger" in line for line in lines)
    assert any(line.startswith("GPU available") for line in lines)


def srun_hints(quiet: bool) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if quiet:
            quiet_lightning()
        SLURMEnvironment._validate_srun_used()
    return [str(w.message) for w in caught if "srun" in str(w.message)]


def test_the_srun_hint_goes_off_slurm_and_stays_inside_a_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = off_slurm_environment(tmp_path)
    for name in set(os.environ) - set(environment):
        monkeypatch.delenv(name)
    monkeypatch.setenv("PATH", environment["PATH"])
    assert len(srun_hints(quiet=False)) == 1
    assert srun_hints(quiet=True) == []
    monkeypatch.setenv("SLURM_JOB_ID", "42")  # an allocation (salloc, sbatch) without srun: the hint may be right
    assert len(srun_hints(quiet=True)) == 1


def test_only_lightnings_leafspec_warning_goes() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _tree_flatten(1)
        assert any("LeafSpec" in str(w.message) for w in caught)  # torch warns inside Lightning today
        caught.clear()
        quiet_lightning()
        _tree_flatten(1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning)  # the same words elsewhere
    assert [str(w.message) for w in caught] == ["`isinstance(treespec, LeafSpec)` is deprecated"]
