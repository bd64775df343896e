"""benchmarks.sync_bn: the check that model.backbone.norm=sync_bn normalises over every rank (run on GPUs by
benchmarks.gpu). On a CPU, SyncBatchNorm refuses to run, so these tests show that the check catches batch norm that
is not synced, with 2 real gloo ranks."""

from __future__ import annotations

import sys

import pytest

from benchmarks import sync_bn


def test_unsynced_batch_norm_fails_the_check() -> None:
    differences = sync_bn.check("cpu", norm="bn", port=29583)
    assert set(differences) == {"features", "grad", "running stats"}
    # each rank normalises its 2 images by their own statistics: far from the 4-image reference on every count
    assert all(value > 100 * sync_bn.TOLERANCE for value in differences.values()), differences


def test_sync_bn_on_the_cpu_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(sys, "argv", ["sync_bn", "--device", "cpu"])
    with pytest.raises(SystemExit) as stop:
        sync_bn.main()
    assert stop.value.code == ("error: model.backbone.norm=sync_bn needs GPUs: torch's SyncBatchNorm refuses CPU "
                               "tensors; run this on a GPU, or with --norm bn to check the check on a CPU")
    assert capsys.readouterr().out == ""
