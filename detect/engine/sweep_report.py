"""What a sweep leaves in its folder: the trial table (CSV and markdown), Optuna's plots and best.yaml."""

from __future__ import annotations

import csv
import shlex
import warnings
from pathlib import Path

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState
from optuna.visualization import matplotlib as optuna_plots

from detect.utils.plotting import save_figure

# A FAIL without a note: stopped by Ctrl-C, or killed and failed later by Optuna's heartbeat check.
INTERRUPTED = "interrupted: the sweep was stopped or killed during this trial"
PLOTS = {"history.png": optuna_plots.plot_optimization_history, "importances.png": optuna_plots.plot_param_importances}


def trial_rows(study: optuna.Study) -> list[dict[str, object]]:
    """One row a trial: number, state, each parameter, value, duration (s) and the failure or pruning note."""
    names = sorted({name for trial in study.trials for name in trial.params})
    return [{"number": trial.number, "state": trial.state.name,
             **{name: trial.params.get(name, "") for name in names},
             "value": "" if trial.value is None else trial.value,
             "duration_s": "" if trial.duration is None else round(trial.duration.total_seconds(), 1),
             "note": trial.user_attrs.get("note") or (INTERRUPTED if trial.state == TrialState.FAIL else "")}
            for trial in study.trials]


def _cell(value: object, width: int = 100) -> str:
    """A markdown table cell: floats to 4 significant digits, long text cut at `width` characters."""
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return (text if len(text) <= width else text[:width - 3] + "...").replace("|", "\\|")


def write_table(rows: list[dict[str, object]], csv_path: Path, md_path: Path) -> None:
    """The rows as CSV and as a markdown table."""
    columns = list(rows[0]) if rows else ["number", "state", "value", "duration_s", "note"]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[column]) for column in columns) + " |" for row in rows]
    md_path.write_text("\n".join(lines) + "\n")


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's optimization history and parameter importances as PNG; a plot Optuna cannot draw yet (too few
    finished trials) is skipped with a line saying why."""
    written = []
    for name, plot in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # since Optuna 2.2
                axes = plot(study)
        except (ValueError, RuntimeError) as error:
            print(f"{name} skipped: {error}")
            continue
        axes.figure.tight_layout()  # the importances' parameter names are cut off without
        written.append(save_figure(axes.figure, folder / name))
    return written


def write_best(study: optuna.Study, path: Path) -> bool:
    """best.yaml: the best finished trial's number, value, params and train.py overrides, with the command that
    retrains it; False when no trial has finished."""
    if not any(trial.state == TrialState.COMPLETE for trial in study.trials):
        return False
    best = study.best_trial
    overrides = list(best.user_attrs["overrides"])
    OmegaConf.save(OmegaConf.create({
        "study_name": study.study_name, "trial": best.number, "value": best.value, "params": best.params,
        "overrides": overrides, "command": f"uv run train.py {shlex.join(overrides)}",
    }), path)
    return True


def write_report(study: optuna.Study, folder: Path) -> list[Path]:
    """trials.csv, trials.md, the plots and best.yaml in `folder`; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    write_table(trial_rows(study), folder / "trials.csv", folder / "trials.md")
    written = [folder / "trials.csv", folder / "trials.md", *write_plots(study, folder)]
    return written + [folder / "best.yaml"] if write_best(study, folder / "best.yaml") else written
