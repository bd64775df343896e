"""The small-object benchmark on a small version of its set: slicing beats the plain run on AP_small."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.small_objects import evaluate_modes, table, write_frames


@pytest.mark.slow
def test_slicing_beats_the_plain_run_on_small_objects(trained_run: Path, tmp_path: Path) -> None:
    # the shared tiny detector sees its 16-56 px training shapes at ~0.7; a 384x512 frame resized whole shrinks
    # these 16-28 px shapes to 4-7 px, a 128 px slice shows them at 12-21 px
    frames = write_frames(tmp_path, count=4, size=(384, 512), object_sizes=(16, 28), max_objects=12, seed=3)
    modes = {"plain": {}, "slicing": {"slice": {"size": [128, 128]}}}
    plain, sliced = evaluate_modes(trained_run / "checkpoints" / "best.ckpt", frames, modes, threads=1)
    print(table([plain, sliced]))
    assert sliced["AP_small"] > plain["AP_small"] and sliced["AP_small"] >= 1.5 * plain["AP_small"]
    assert sliced["ms_per_frame"] > plain["ms_per_frame"] > 0
