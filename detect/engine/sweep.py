"""An Optuna search over the train config: `python -m detect sweep hparams_search=<name> [key=value ...]`.

configs/hparams_search/<name>.yaml holds the search space, the study and the train overrides of every trial
(see configs/hparams_search/demo.yaml). The study lives in SQLite under the sweep folder: rerunning the same
command adds n_trials more trials to it (a trial left RUNNING by a killed sweep is marked FAIL once its heartbeat
is 2 x heartbeat_s old). A trial that raises is recorded as FAIL with a one-line reason (user attr `note`), one
whose validation metric falls below the median of earlier trials at the same step is pruned. At the end the
sweep writes trials.csv / trials.md, Optuna's plots and best.yaml: the best trial's train.py overrides, retrained
with `uv run train.py $(sed -n 's/^- //p' <sweep_dir>/best.yaml)`.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import optuna
from omegaconf import DictConfig, OmegaConf

from detect.config import CONFIG_DIR, compose
from detect.engine.sweep_report import write_report
from detect.engine.training import check_train_config, run
from detect.evaluation.coco import STAT_NAMES
from detect.utils.errors import DetectError, check_choice, exit_on_error, first_line

SEARCH_DIR = CONFIG_DIR / "hparams_search"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
SPEC_KEYS = {"float": {"type", "low", "high", "log"}, "int": {"type", "low", "high", "log"},
             "categorical": {"type", "choices"}}


def load_search(args: list[str]) -> tuple[DictConfig, list[str]]:
    """The search config named by `hparams_search=<name>` with its keys set from `args`, and the other `args`
    (train overrides for every trial)."""
    names = sorted(path.stem for path in SEARCH_DIR.glob("*.yaml"))
    chosen = [arg.partition("=")[2] for arg in args if arg.startswith("hparams_search=")]
    if not chosen:
        raise DetectError(f"hparams_search=<name> is required; choose one of {', '.join(names)}")
    check_choice("hparams_search", chosen[-1], names)
    search = OmegaConf.load(SEARCH_DIR / f"{chosen[-1]}.yaml")
    own = [arg for arg in args if arg.partition("=")[0].split(".")[0] in search]
    train = [arg for arg in args if not arg.startswith("hparams_search=") and arg not in own]
    search = OmegaConf.merge(search, OmegaConf.from_dotlist(own))
    OmegaConf.resolve(search)
    return search, merge_overrides(search.train_overrides, train)


def merge_overrides(*groups: list[str]) -> list[str]:
    """Hydra overrides with a later `key=value` replacing an earlier one of the same key."""
    merged: dict[str, str] = {}
    for override in (o for group in groups for o in group):
        merged[override.partition("=")[0].lstrip("+~")] = override
    return list(merged.values())


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """configs/train.yaml with `overrides`, as train.py composes it, writing to `output_dir`; Hydra's errors as one
    DetectError line."""
    return compose("train", overrides, output_dir)


def spec_values(key: str, spec: DictConfig) -> list[object]:
    """The values a search-space entry can reach at its edges (low, high or every choice); DetectError if malformed."""
    kind = spec.get("type")
    check_choice(f"search_space.{key}.type", kind, SPEC_KEYS)
    extra = set(spec) - SPEC_KEYS[kind]
    if extra:
        raise DetectError(f"search_space.{key}: unknown field(s) {', '.join(sorted(extra))} for type {kind}; "
                          f"use {', '.join(sorted(SPEC_KEYS[kind]))}")
    if kind == "categorical":
        if not OmegaConf.is_list(spec.get("choices")) or not spec.choices:
            raise DetectError(f"search_space.{key}.choices must be a non-empty list")
        return list(spec.choices)
    if "low" not in spec or "high" not in spec or not spec.low < spec.high:
        raise DetectError(f"search_space.{key}: needs low < high (got {spec.get('low')}, {spec.get('high')})")
    return [spec.low, spec.high]


def check_search(search: DictConfig, train_overrides: list[str]) -> None:
    """Everything the sweep can check before its first trial: names, ranges, search-space keys in the train config,
    and the train config at each edge of the space."""
    check_choice("direction", search.direction, ("maximize", "minimize"))
    check_choice("metric", search.metric, STAT_NAMES)
    check_choice("sampler", search.sampler, SAMPLERS)
    check_choice("pruner.type", search.pruner.type, PRUNERS)
    if not isinstance(search.n_trials, int) or search.n_trials < 1:
        raise DetectError(f"n_trials={search.n_trials} must be an integer >= 1")
    if search.fail_trial is not None and not isinstance(search.fail_trial, int):
        raise DetectError(f"fail_trial={search.fail_trial} must be a trial number or null")
    if not search.search_space:
        raise DetectError("search_space is empty: name at least one train-config key to search")
    train_overrides = merge_overrides(search.sweep_overrides, train_overrides)
    base = compose_train(train_overrides, Path(search.sweep_dir))
    check_train_config(base)
    for key, spec in search.search_space.items():
        if OmegaConf.select(base, key, default=None) is None:
            raise DetectError(f"search_space: unknown parameter key {key!r} (not a key of the train config, "
                              "e.g. optim.lr, model.anchor_sizes)")
        for value in spec_values(key, spec):
            try:
                check_train_config(compose_train(merge_overrides(train_overrides, [f"{key}={value}"]), base.output_dir))
            except DetectError as error:
                raise DetectError(f"search_space.{key} reaches {value}: {error}") from None


def suggest(trial: optuna.Trial, space: DictConfig) -> list[str]:
    """One value of each search-space entry, as train overrides."""
    overrides = []
    for key, spec in space.items():
        if spec.type == "categorical":
            value = trial.suggest_categorical(key, list(spec.choices))
        elif spec.type == "int":
            value = trial.suggest_int(key, spec.low, spec.high, log=spec.get("log", False))
        else:
            value = trial.suggest_float(key, spec.low, spec.high, log=spec.get("log", False))
        overrides.append(f"{key}={value}")
    return overrides


class PruneOnValidation(L.Callback):
    """Reports the trial's COCO `metric` after each validation and prunes it when Optuna's pruner says so, but for
    the last validation: a trial that has run to the end keeps its value."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        evaluation = getattr(pl_module, "last_evaluation", None)
        if trainer.sanity_checking or evaluation is None:
            return
        value, step = float(evaluation.stats[self.metric]), trainer.global_step
        self.trial.report(value, step)
        if step < trainer.max_steps and self.trial.should_prune():
            raise optuna.TrialPruned(f"val/{self.metric}={value:.4f} at step {step} is below the pruner's median")


def objective(search: DictConfig, train_overrides: list[str]) -> Callable[[optuna.Trial], float]:
    """Optuna's objective: compose the trial's train config, train it, return its final COCO `metric`."""
    def trial_value(trial: optuna.Trial) -> float:
        overrides = merge_overrides(train_overrides, suggest(trial, search.search_space))
        trial.set_user_attr("overrides", overrides)  # best.yaml's
        forced = [search.fail_override] if trial.number == search.fail_trial else []
        try:
            cfg = compose_train(merge_overrides(search.sweep_overrides, overrides, forced),
                                Path(search.sweep_dir) / "trials" / str(trial.number))
            stats = run(cfg, callbacks=[PruneOnValidation(trial, search.metric)])
            if search.metric not in stats:
                raise DetectError(f"the trial ran no validation, so it has no {search.metric}")
        except Exception as error:  # recorded as FAIL (or PRUNED) by Optuna; the reason goes in the table
            note = str(error) if isinstance(error, optuna.TrialPruned) else first_line(error)
            trial.set_user_attr("note", f"fail_trial ran {forced[0]}: {note}" if forced else note)
            raise
        return stats[search.metric]

    return trial_value


def open_study(search: DictConfig) -> optuna.Study:
    """The study named `study_name` in the SQLite file `storage`, created or loaded. The sampler's seed is
    `sampler_seed` plus the trials already there, so that a resumed sweep does not draw its first trials again."""
    path = Path(search.storage).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}", heartbeat_interval=search.heartbeat_s)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=search.pruner.n_startup_trials,
                                          n_warmup_steps=search.pruner.n_warmup_steps)
              if search.pruner.type == "median" else optuna.pruners.NopPruner())
    study = optuna.create_study(storage=storage, pruner=pruner, study_name=search.study_name,
                                direction=search.direction, load_if_exists=True)
    seed = search.sampler_seed + len(study.trials)
    study.sampler = (optuna.samplers.TPESampler(seed=seed) if search.sampler == "tpe"
                     else optuna.samplers.RandomSampler(seed=seed))
    return study


def main(args: list[str]) -> None:
    """Check the search, run `n_trials` more trials of its study, then write the report."""
    search, train_overrides = load_search(args)
    check_search(search, train_overrides)
    study = open_study(search)
    start, before = time.perf_counter(), len(study.trials)
    print(f"study {search.study_name!r} in {search.storage}: {before} earlier trials; running {search.n_trials} more"
          f"\ntrain overrides: {shlex.join(train_overrides)}", flush=True)
    study.optimize(objective(search, train_overrides), n_trials=search.n_trials, catch=(Exception,))
    files = write_report(study, Path(search.sweep_dir))
    print(f"\n{len(study.trials) - before} trials in {time.perf_counter() - start:.0f} s; wrote "
          f"{', '.join(str(path) for path in files)}\n{(Path(search.sweep_dir) / 'trials.md').read_text()}")
    if Path(search.sweep_dir, "best.yaml") in files:
        best = study.best_trial
        print(f"best trial {best.number} ({search.metric} {best.value:.4f}); retrain it with\n"
              f"uv run train.py {shlex.join(best.user_attrs['overrides'])}")


def cli() -> None:
    """`python -m detect sweep hparams_search=<name> [overrides]`."""
    exit_on_error(main, sys.argv[1:])
