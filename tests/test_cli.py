"""The entry points as a user runs them (`python train.py ...`, `python infer.py ...`, `python -m detect export ...`):
a mistyped key or a file that is no checkpoint ends in one `error: ...` line on stderr, exit code 1, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, TINY, TINY_INFER, synthetic_overrides, write_images


def run_entry(arguments: list[str], run_dir: Path, python_options: tuple[str, ...] = ()) -> tuple[int, str]:
    """(exit code, stderr) of `python <arguments>` from the checkout's root, its Hydra run folder in `run_dir`."""
    done = subprocess.run([sys.executable, *python_options, *arguments, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    return done.returncode, done.stderr


def assert_one_error_line(code: int, stderr: str, line: str) -> None:
    assert code == 1 and stderr.strip().splitlines()[-1] == line, stderr[-3000:]
    assert "Traceback" not in stderr and "HYDRA_FULL_ERROR" not in stderr, stderr[-3000:]


@pytest.mark.parametrize(("arguments", "line"), [
    (["train.py", "trainer.max_step=3"],
     "error: trainer.max_step is not a key of the train config; did you mean trainer.max_steps?"),
    (["infer.py", "source=x.jpg", "scor_thresh=0.5"],
     "error: scor_thresh is not a key of the infer config; did you mean score_threshold or model.roi.score_thresh?"),
    (["-m", "detect", "export", "weigths=best.ckpt"],
     "error: weigths is not a key of the export config; did you mean weights?"),
])
def test_a_mistyped_key_is_one_line_with_the_closest_keys(tmp_path: Path, arguments: list[str], line: str) -> None:
    """... before torch, torchvision or Lightning load (they take ~10 s: the answer takes under one)."""
    code, stderr = run_entry(arguments, tmp_path / "run", ("-X", "importtime"))
    imported = {row.split("|")[-1].strip() for row in stderr.splitlines() if row.startswith("import time:")}
    assert_one_error_line(code, "\n".join(row for row in stderr.splitlines() if not row.startswith("import time:")),
                          line)
    heavy = imported & {"torch", "torchvision", "lightning", "openvino"}
    assert imported and not heavy, f"imported before the check: {sorted(heavy)}"
    assert not (tmp_path / "run").exists()  # refused before Hydra made its run folder


@pytest.mark.parametrize("entry", ["infer.py", "train.py"])
def test_a_text_file_as_checkpoint_is_one_line(tmp_path: Path, entry: str) -> None:
    ckpt = tmp_path / "text.ckpt"
    ckpt.write_text("not a checkpoint\nbut a text file\n")
    image = write_images(tmp_path / "in", ["a.jpg"])[0]
    arguments = ([entry, f"weights={ckpt}", f"source={image}", *TINY_INFER] if entry == "infer.py" else
                 [entry, f"ckpt_path={ckpt}", *TINY, *synthetic_overrides(tmp_path / "cache")])
    code, stderr = run_entry(arguments, tmp_path / "run")
    assert_one_error_line(code, stderr, f"error: checkpoint {ckpt} could not be read (UnpicklingError: Unsupported "
                                        "operand 110); pass a checkpoint saved by train.py or a state_dict saved "
                                        "with torch.save")
