"""benchmarks.gpu: one line and exit 0 without a GPU; every section end to end on tiny sizes (--device cpu --smoke),
so that the script does not die of a typo on the day a GPU is lent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from helpers import write_clip

from benchmarks import gpu


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["gpu", "--output-dir", str(tmp_path / "out")])
    gpu.main()  # returns: exit status 0
    assert capsys.readouterr().out == gpu.NO_GPU + "\n" and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_smoke_runs_every_section_and_prints_one_table(monkeypatch: pytest.MonkeyPatch, synthetic_cache: Path,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(gpu, "DEMO", tmp_path / "absent.ckpt")  # no demo run: the AP section trains one first
    clip = write_clip(tmp_path / "clip.avi", frames=4)
    args = gpu.parse_args(["--device", "cpu", "--smoke", "--source", str(clip), "--cache-dir", str(synthetic_cache),
                           "--output-dir", str(tmp_path / "out")])
    rows = gpu.run(args)

    by_section = {section: [r for r in rows if r["section"] == section] for section in gpu.SECTIONS}
    train = {r["setting"]: r for r in by_section["train"]}
    assert train["batch 2, 32-true"]["measured"].endswith("img/s") and train["batch 2, 32-true"]["against"] == \
        "1.00x 32-true"
    assert train["batch 2, bf16-mixed"]["measured"].endswith("img/s")
    assert train["batch 2, 16-mixed"]["note"] == "skipped: fp16 AMP runs on a GPU"
    infer = by_section["infer"]
    assert [r["setting"].split(",")[0] for r in infer] == ["naive loop", "pipeline fp32", "pipeline fp16",
                                                           "pipeline bf16"]
    assert infer[1]["note"].startswith("same-class pairs above the NMS IoU 0; ")  # fp32: the NMS left no same-class overlap
    assert all("p50/p90 ms: decode" in r["measured"] and "model" in r["measured"] for r in infer[1:])
    assert all("vs fp32 (" in r["note"] for r in infer[2:])
    assert [r["setting"] for r in by_section["ap"]] == ["fp32", "fp16", "bf16"]
    assert all(r["measured"].startswith("AP ") and "AP points vs fp32" in r["against"] for r in by_section["ap"])
    assert (tmp_path / "out" / "demo" / "checkpoints" / "best.ckpt").is_file()
    assert [r["setting"] for r in by_section["sweep"]] == ["batch 1, fp32, eager", "batch 1, bf16, eager"]
    assert all(r["against"] == "" for r in by_section["sweep"])  # the quoted figures are R50's: none for R18
    assert by_section["sync_bn"][0]["note"].startswith("skipped: model.backbone.norm=sync_bn needs GPUs")
    table = (tmp_path / "out" / "table.md").read_text()
    assert table.count("\n| ") == len(rows) + 1 and table in capsys.readouterr().out
