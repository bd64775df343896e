"""Training recipes on a small imbalanced task (issue 28 item 6): the COCO recipe ("current": flips, uniform sampling,
the default of data=custom|yolo|voc before this study), each addition alone, then the additions that helped
together, same steps and seeds; AP, AP50 and the rarest class's AP.

The task: 6 synthetic shapes, 200 training images whose rarest class (diamond) is ~2 % of the boxes, 12-120 px
objects; a val split with every class equally often (detect.data.synthetic). It trains as data=custom with the
demo's model (ResNet-18-FPN from scratch at 128 px, its small head, optimizer and schedule): the CPU cannot train the
R50-FPN users start from. Each recipe names every recipe key, so the table holds whatever the defaults become.

    uv run python -m benchmarks.recipes [--seeds 3] [--steps 600] [--out outputs/benchmarks/recipes]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, open_dict

from detect.config import compose
from detect.data.synthetic import write_synthetic_coco
from detect.engine.training import run
from detect.utils.cpu import cpu_description

SHAPES = ("square", "disc", "triangle", "ring", "cross", "diamond")
TRAIN_FREQUENCIES = (0.30, 0.25, 0.20, 0.15, 0.08, 0.02)  # of the boxes, in the order of SHAPES
RAREST = "diamond"
TASK = dict(num_train=200, num_val=120, image_size=(128, 160), object_sizes=(12, 120), max_objects=4,
            shapes=SHAPES, train_frequencies=TRAIN_FREQUENCIES)
CURRENT = {"data.augment": "hflip", "data.copy_paste": False, "data.sampler": "uniform", "callbacks.ema.decay": None}
# The EMA is scaled to the study's few hundred steps (an average over ~100 steps, its warm-up 30): 0.9998 and a
# 2000-step warm-up, for runs of tens of thousands of steps, would leave it the training weights here.
ADDITIONS: dict[str, dict[str, Any]] = {
    "lsj": {"data.augment": "lsj"},
    "ssd": {"data.augment": "ssd"},
    "copy_paste": {"data.copy_paste": True},
    "repeat_factor": {"data.sampler": "repeat_factor"},
    # t 0.1 repeats the diamond's images (5.7 % of them) only x1.32; t 0.5 repeats every class in under half the images
    "repeat_factor_t0.5": {"data.sampler": "repeat_factor", "data.repeat_threshold": 0.5},
    "repeat_factor_t0.5_linear": {"data.sampler": "repeat_factor", "data.repeat_threshold": 0.5,
                                  "data.repeat_sqrt": False},
    "ema": {"callbacks.ema.decay": 0.99, "callbacks.ema.warmup_steps": 30},
}
# As the demo trains: batch 8 in-process; one evaluation at the end, pycocotools, no val loss, no plots
COMMON = ["trainer.accelerator=cpu", "plots=false", "evaluation.loss=false", "evaluation.backend=pycocotools",
          "callbacks.progress_bar.refresh_rate=0"]
LOADER = ["data.batch_size=8", "data.val_batch_size=8", "data.num_workers=0"]


def write_task(cache_dir: Path | None, **changes: Any) -> dict[str, Path]:
    """The study's dataset (cached), with `changes` to TASK (a smaller one for the test)."""
    return write_synthetic_coco(cache_dir, seed=0, **(TASK | changes))


def override(key: str, value: Any) -> str:
    return f"{key}={'null' if value is None else str(value).lower() if isinstance(value, bool) else value}"


def study_config(paths: Mapping[str, Path], recipe: Mapping[str, Any], seed: int, steps: int,
                 output_dir: Path) -> DictConfig:
    """data=custom on `paths` with `recipe` over CURRENT, and the demo's model, optimizer and schedule for `steps`."""
    schedule = [f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}",
                f"scheduler.milestones=[{round(steps * 5 / 6)}]", f"scheduler.warmup_steps={min(50, steps // 6)}"]
    demo = compose("train", [*COMMON, *schedule])
    cfg = compose("train", [
        "data=custom", *(f"data.{key}={path}" for key, path in paths.items()), *LOADER, *COMMON, f"seed={seed}",
        *(override(key, value) for key, value in (CURRENT | dict(recipe)).items())], output_dir)
    with open_dict(cfg):
        for key in ("model", "optim", "scheduler", "trainer"):
            cfg[key] = demo[key]
    return cfg


def train_recipe(paths: Mapping[str, Path], name: str, recipe: Mapping[str, Any], seed: int, steps: int,
                 output_dir: Path) -> dict[str, Any]:
    """One run's AP, AP50 and RAREST's AP at the last step (reused from output_dir/result.json when there)."""
    result_file = output_dir / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    start = time.perf_counter()
    stats = run(study_config(paths, recipe, seed, steps, output_dir))
    per_class = json.loads((output_dir / "eval" / "metrics.json").read_text())["per_class"]
    rare = next(row["AP"] for row in per_class if row["class"] == RAREST)
    result = {"recipe": name, "seed": seed, "AP": stats["AP"], "AP50": stats["AP50"], "rare_AP": rare,
              "seconds": round(time.perf_counter() - start, 1)}
    result_file.write_text(json.dumps(result) + "\n")
    return result


def summary(runs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per metric: mean, sample standard deviation (0 for one seed), min and max over the runs."""
    return {metric: {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                     "min": min(values), "max": max(values)}
            for metric in ("AP", "AP50", "rare_AP") for values in [[run[metric] for run in runs]]}


def kept_ap(row: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """The mean AP no lower than the current recipe's mean minus its std."""
    return row["AP"]["mean"] >= current["AP"]["mean"] - current["AP"]["std"]


def helped(row: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """A higher mean rare-class AP than the current recipe's, the AP kept."""
    return row["rare_AP"]["mean"] > current["rare_AP"]["mean"] and kept_ap(row, current)


def meets_targets(row: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Issue 28's bar: rare AP >= 1.5x the current's and >= +0.10, AP not lower beyond the current's std."""
    rare, base = row["rare_AP"]["mean"], current["rare_AP"]["mean"]
    return rare >= 1.5 * base and rare >= base + 0.10 and helped(row, current)


def verdict(row: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """The rare-class AP as a ratio and a difference to the current's, and whether the AP was kept."""
    rare, base = row["rare_AP"]["mean"], current["rare_AP"]["mean"]
    ratio = f"x{rare / base:.2f}" if base > 0 else "x-"
    return f"{ratio}, {rare - base:+.3f}, AP {'kept' if kept_ap(row, current) else 'lost'}"


def table(rows: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> str:
    lines = [f"{'recipe':<40}{'AP':>16}{'AP50':>16}{f'AP {RAREST}':>16}  targets"]
    for row in rows:
        figures = "".join(f"{row[m]['mean']:>8.3f} ± {row[m]['std']:.3f}" for m in ("AP", "AP50", "rare_AP"))
        met = "met" if meets_targets(row, current) else "not met"
        mark = "" if row is current else f"{verdict(row, current)}: {met}"
        lines.append(f"{row['recipe']:<40}{figures}  {mark}")
    return "\n".join(lines)


def study(paths: Mapping[str, Path], seeds: Sequence[int], steps: int, out: Path) -> list[dict[str, Any]]:
    """The current recipe, each addition, the additions that `helped` together (when more than one did), then those
    with each addition that kept the AP without helping alone."""
    def measure(name: str, recipe: Mapping[str, Any]) -> dict[str, Any]:
        runs = [train_recipe(paths, name, recipe, seed, steps, out / name.replace(" + ", "+") / f"seed{seed}")
                for seed in seeds]
        print(f"{name}: {[{k: round(v, 3) for k, v in r.items() if k not in ('recipe', 'seed')} for r in runs]}",
              flush=True)
        return {"recipe": name, "overrides": dict(recipe), "runs": runs, **summary(runs)}

    current = measure("current", {})
    singles = [measure(name, recipe) for name, recipe in ADDITIONS.items()]
    rows = [current, *singles]
    winners = combinable(row for row in singles if helped(row, current))
    if not winners:
        return rows
    name = " + ".join(row["recipe"] for row in winners)
    recipe = {key: value for row in winners for key, value in row["overrides"].items()}
    if len(winners) > 1:
        rows.append(measure(name, recipe))
    # one that did not help alone may on top of the winners (copy-paste then pastes the repeated rare objects)
    others = [row for row in singles if kept_ap(row, current) and not helped(row, current)
              and not set(row["overrides"]) & set(recipe)]
    rows += [measure(f"{name} + {row['recipe']}", recipe | row["overrides"]) for row in others]
    return rows


def combinable(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`rows` by their rare-class AP, best first, without one that sets a key a better one set (the repeat-factor
    variants are alternatives, not additions)."""
    chosen: list[Mapping[str, Any]] = []
    for row in sorted(rows, key=lambda row: -row["rare_AP"]["mean"]):
        if not any(key in other["overrides"] for other in chosen for key in row["overrides"]):
            chosen.append(row)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 for every recipe")
    parser.add_argument("--steps", type=int, default=600, help="training steps (batch 8) of every run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads: two stall when another process shares a 2-core CPU, one does not")
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/recipes"))
    parser.add_argument("--cache-dir", type=Path, default=None, help="where the synthetic data goes (DETECT_CACHE)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = study(write_task(args.cache_dir), range(args.seeds), args.steps, args.out)
    report = {"cpu": cpu_description(), "seeds": args.seeds, "steps": args.steps, "threads": args.threads,
              "task": TASK, "rarest": RAREST, "spread": "sample std over seeds (min and max beside it)", "rows": rows,
              "minutes": round((time.perf_counter() - start) / 60, 1)}
    (args.out / "recipes.json").write_text(json.dumps(report, indent=2, default=list) + "\n")
    print(f"{cpu_description()}; {args.steps} steps, seeds 0-{args.seeds - 1}; mean ± sample std over seeds\n"
          f"{table(rows, rows[0])}")


if __name__ == "__main__":
    main()
