"""Lightning's console lines that say nothing about a run of train.py, silenced at their source: each filter
matches one message from one module, so every other warning and log line still shows.

- the LitLogger advert ("💡 Tip: ... litlogger"), logged at INFO by every Trainer that has no LitLogger (no switch);
- "The `srun` command is available on your system but is not used", on a machine with SLURM installed, unless
  this process really runs inside a SLURM job (SLURM_JOB_ID set: there the hint may be right);
- torch's FutureWarning on `LeafSpec`, raised inside Lightning's own `_pytree` (nothing a user can change).
The model summary (whose FLOPs column reads 0 without an example input) is off by Lightning's own switch,
`trainer.enable_model_summary: false` (configs/trainer/default.yaml); the run header counts the parameters.
"""

from __future__ import annotations

import logging
import os
import warnings

from lightning.fabric.utilities.warnings import PossibleUserWarning

TIP_PREFIX = "💡 Tip: "
TIP_LOGGER = "lightning.pytorch.utilities.rank_zero"  # the logger of Lightning's rank_zero_info
SRUN_HINT = r"The `srun` command is available on your system but is not used"
SRUN_MODULE = r"lightning\.fabric\.plugins\.environments\.slurm"
LEAFSPEC = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
LEAFSPEC_MODULE = r"lightning\.pytorch\.utilities\._pytree"
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")  # as Lightning sets them when imported before logging


class _DropTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ..." adverts."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TIP_PREFIX)


DROP_TIPS = _DropTips()  # one instance: adding it again is a no-op


def quiet_lightning() -> None:
    """Install the filters of the module docstring, and print Lightning's lines once, plain (again: no change)."""
    for name in LIGHTNING_LOGGERS:  # imported after Hydra's logging (train.py checks its command line first), they
        logger = logging.getLogger(name)  # would also go up to the "lightning" and the root handlers: three times
        if logger.propagate:
            logger.addHandler(logging.StreamHandler())
            logger.propagate = False
    logging.getLogger(TIP_LOGGER).addFilter(DROP_TIPS)
    warnings.filterwarnings("ignore", LEAFSPEC, FutureWarning, LEAFSPEC_MODULE)
    if not os.environ.get("SLURM_JOB_ID"):
        warnings.filterwarnings("ignore", SRUN_HINT, PossibleUserWarning, SRUN_MODULE)
