"""detect.engine.sweep: start-up checks, the pruning callback, and a real tiny sweep with a failing trial that resumes."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from helpers import compose_train
from omegaconf import OmegaConf
from optuna.trial import TrialState

from detect.engine.sweep import PruneOnValidation, main, merge_overrides
from detect.engine.sweep_report import INTERRUPTED, trial_rows
from detect.engine.training import check_train_config
from detect.utils.errors import DetectError


@pytest.mark.parametrize("args, message", [
    ([], "hparams_search=<name> is required"),
    (["hparams_search=nope"], "hparams_search='nope' is not allowed; choose one of demo"),
    (["hparams_search=demo", "search_space={optim.lrr: {type: float, low: 0.1, high: 1}}"],
     "unknown parameter key 'optim.lrr'"),
    (["hparams_search=demo", "search_space={optim.lr: {low: 0, high: 0.1}}"], "optim.lr reaches 0: optim.lr=0"),
    (["hparams_search=demo", "search_space={optim.lr: {step: 2}}"], "unknown field(s) step"),
    (["hparams_search=demo", "n_trails=3"], "n_trails is not a key of the train config"),
    (["hparams_search=demo", "metric=mAP"], "metric='mAP' is not allowed"),
])
def test_bad_input_is_one_line_before_any_trial(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(DetectError) as error:
        main([*args, f"sweep_dir={tmp_path}"])
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "study.db").exists()


def test_merge_overrides_keeps_the_last_value_of_a_key() -> None:
    assert merge_overrides(["a=1", "~b", "c=3"], ["a=2", "b=5"]) == ["a=2", "b=5", "c=3"]


def test_pruning_callback_reports_the_metric_and_prunes_below_the_threshold_but_not_at_the_end() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    callback = PruneOnValidation(trial, "AP")
    trainer = SimpleNamespace(sanity_checking=False, global_step=4, max_steps=12)

    def validate(step: int, ap: float) -> None:
        trainer.global_step = step
        callback.on_validation_end(trainer, SimpleNamespace(last_evaluation=SimpleNamespace(stats={"AP": ap})))

    validate(4, 0.7)
    with pytest.raises(optuna.TrialPruned, match="val/AP=0.2000 at step 8"):
        validate(8, 0.2)
    validate(12, 0.1)  # the last validation: reported, never pruned
    assert trial.should_prune()
    study.tell(trial, 0.1)
    assert study.trials[0].intermediate_values == {4: 0.7, 8: 0.2, 12: 0.1}


def test_a_failed_trial_without_a_reason_is_reported_as_interrupted() -> None:
    study = optuna.create_study()
    for note in ("ValueError: boom", None):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        if note:
            trial.set_user_attr("note", note)
        study.tell(trial, state=TrialState.FAIL)
    assert [row["note"] for row in trial_rows(study)] == ["ValueError: boom", INTERRUPTED]


@pytest.mark.slow
def test_sweep_records_a_failed_trial_reports_and_resumes(tmp_path: Path, synthetic_cache: Path) -> None:
    args = ["hparams_search=demo", "n_trials=2", "fail_trial=1", f"sweep_dir={tmp_path}",
            f"data.cache_dir={synthetic_cache}"]
    main(args)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    trials = optuna.load_study(study_name="demo", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[1].user_attrs["note"].startswith("fail_trial ran model.anchor_sizes=[32,64,128,256]: AssertionError")
    assert 0.0 <= trials[0].value <= 1.0 and sorted(trials[0].intermediate_values) == [2, 4, 6]

    with open(tmp_path / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(row["number"], row["state"]) for row in rows] == [("0", "COMPLETE"), ("1", "FAIL")]
    assert {"optim.lr", "optim.weight_decay", "model.anchor_sizes", "scheduler.warmup_steps"} <= set(rows[0])
    assert "| 1 | FAIL |" in (tmp_path / "trials.md").read_text()
    for name in ("history.png", "importances.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    best = OmegaConf.load(tmp_path / "best.yaml")
    assert best.trial == 0 and best.value == pytest.approx(trials[0].value)
    lines = [line[2:] for line in (tmp_path / "best.yaml").read_text().splitlines() if line.startswith("- ")]
    assert lines == list(best.overrides)  # what `sed -n 's/^- //p' best.yaml` gives train.py
    cfg = compose_train(list(best.overrides), tmp_path / "best")
    check_train_config(cfg)
    assert cfg.optim.lr == pytest.approx(trials[0].params["optim.lr"])
    assert list(cfg.model.anchor_sizes) == OmegaConf.create(f"a: {trials[0].params['model.anchor_sizes']}").a
    assert cfg.scheduler.warmup_steps == trials[0].params["scheduler.warmup_steps"]
    assert cfg.trainer.max_steps == 6 and "model_checkpoint" in cfg.callbacks  # the sweep-only overrides left out

    main(args)  # the same command again: the same study grows by two trials, with new draws
    trials = optuna.load_study(study_name="demo", storage=storage).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[2].state == TrialState.COMPLETE  # one COMPLETE trial so far: too few for the median pruner
    assert trials[3].state in (TrialState.COMPLETE, TrialState.PRUNED)  # pruned at step 2 or 4, never at 6
    assert trials[3].state == TrialState.COMPLETE or max(trials[3].intermediate_values) < 6
    assert trials[2].params != trials[0].params
    with open(tmp_path / "trials.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
