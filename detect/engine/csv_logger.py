"""Lightning's CSVLogger continued across a resume: metrics.csv appended to, rows past the resumed step dropped."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers.csv_logs import CSVLogger, ExperimentWriter


def drop_logged_rows_from(metrics_csv: Path, step: int) -> None:
    """Remove the rows a killed run logged after its last checkpoint, so the resumed run's rows follow on."""
    if not metrics_csv.is_file():
        return
    with open(metrics_csv, newline="") as file:
        reader = csv.DictReader(file)
        fieldnames, rows = reader.fieldnames, [row for row in reader if int(float(row["step"] or 0)) < step]
    with open(metrics_csv, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)


class AppendingCSVLogger(CSVLogger):
    """Lightning's CSVLogger, but a metrics.csv already in its folder is continued, not deleted (a resumed run)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


class _ContinuingWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        if os.path.isfile(self.metrics_file_path):  # new rows take the existing columns (and add their own)
            with open(self.metrics_file_path, newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes the existing metrics.csv here
        pass
