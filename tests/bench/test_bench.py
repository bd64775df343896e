"""The benchmark's measurements (FLOPs, budget, memory window) and a tiny sweep through the real Hydra config."""

from __future__ import annotations

import csv
import gc
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from omegaconf import DictConfig

from detect.bench.measure import count_flops, keep_timing, peak_rss_since_reset_mb, reset_peak_rss, time_calls
from detect.bench import resnet
from detect.bench.resnet import Point, Workload, prepare_call, random_inputs, run_point, run_sweep, sweep_points
from detect.bench.resnet_report import add_speedups
from detect.config import compose
from detect.utils.cpu import lacks_fast_units
from detect.utils.errors import DetectError

FAST = ["warmup.min_runs=1", "warmup.min_s=0", "repeats.budget_s=0.05", "repeats.min_runs=2", "peak_matmul.cpu=256"]


def bench_config(overrides: list[str]) -> DictConfig:
    return compose("bench", overrides)


def test_flops_of_resnet50_match_torchvisions_published_figure() -> None:
    published_gmacs = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["_ops"]  # 4.089, multiply-adds
    network = torchvision.models.resnet50().eval()
    with torch.inference_mode():
        one = count_flops(lambda: network(torch.rand(1, 3, 224, 224)))
        two = count_flops(lambda: network(torch.rand(2, 3, 224, 224)))
    assert one / 1e9 == pytest.approx(2 * published_gmacs, rel=0.01)  # the counter counts 2 FLOPs per multiply-add
    assert two == 2 * one


def test_keep_timing_spends_the_budget_within_the_run_limits() -> None:
    assert keep_timing(runs=0, elapsed_s=5.0, budget_s=1.0, min_runs=3, max_runs=10)  # min_runs beat the budget
    assert keep_timing(runs=3, elapsed_s=0.5, budget_s=1.0, min_runs=3, max_runs=10)
    assert not keep_timing(runs=3, elapsed_s=1.0, budget_s=1.0, min_runs=3, max_runs=10)
    assert not keep_timing(runs=10, elapsed_s=0.1, budget_s=1.0, min_runs=3, max_runs=10)  # max_runs beat the budget


def test_time_calls_warms_up_then_times_until_the_budget() -> None:
    calls = []

    def sleep_5ms() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.005)

    timing = time_calls(sleep_5ms, "cpu", warmup_runs=3, warmup_s=0.0, budget_s=0.1, min_runs=2, max_runs=1000)
    assert timing.warmup_runs == 3
    assert len(calls) == timing.warmup_runs + len(timing.wall_ms)
    assert sum(timing.wall_ms[:-1]) < 100 <= sum(timing.wall_ms) + 5  # stopped at the first call past 0.1 s
    assert len(timing.wall_ms) >= 2 and all(ms >= 4.5 for ms in timing.wall_ms)
    assert timing.first_call_ms >= 4.5

    slow = time_calls(lambda: time.sleep(0.02), "cpu", warmup_runs=1, warmup_s=0.0, budget_s=0.0, min_runs=4)
    assert len(slow.wall_ms) == 4 and np.median(slow.wall_ms) >= 19
    capped = time_calls(lambda: None, "cpu", warmup_runs=1, warmup_s=0.05, budget_s=10.0, min_runs=1, max_runs=7)
    assert len(capped.wall_ms) == 7 and capped.warmup_runs > 1  # warm-up ran for its 0.05 s


def test_peak_rss_window_sees_an_allocation_after_the_reset() -> None:
    reset_peak_rss()
    before = peak_rss_since_reset_mb()
    block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
    del block
    assert peak_rss_since_reset_mb() - before >= 250


def test_sweep_points_cover_every_combination_and_reject_unknown_values() -> None:
    cfg = bench_config(["task=[classifier,backbone]", "backbone=[resnet18,resnet50]", "size=[224,800x1333]",
                        "batch=[1,4]", "precision=fp32", "backend=[eager,onnxruntime]"])
    points = sweep_points(cfg)
    assert len(points) == 2 * 2 * 2 * 2 * 2
    assert {p.size for p in points} == {"224x224", "800x1333"}
    with pytest.raises(DetectError, match="backbone='resnet42'"):
        sweep_points(bench_config(["backbone=resnet42"]))
    with pytest.raises(DetectError, match="backend='tensorrt'"):
        sweep_points(bench_config(["backend=[eager,tensorrt]"]))


def test_speedups_compare_each_backend_with_eager_of_the_same_point() -> None:
    base = {"task": "classifier", "backbone": "resnet18", "size": "64x64", "batch": 1, "precision": "fp32"}
    rows = [base | {"backend": "eager", "median_ms": 10.0}, base | {"backend": "onnxruntime", "median_ms": 4.0},
            base | {"batch": 2, "backend": "onnxruntime", "median_ms": 4.0}]
    add_speedups(rows)
    assert [r["speedup"] for r in rows] == [1.0, 2.5, None]


def test_tiny_sweep_writes_csv_table_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = bench_config([*FAST, "backbone=[resnet18,resnet34]", "size=[32,64]", "batch=[1,2]",
                        "backend=[eager,onnxruntime]", "precision=[fp32,bf16]", f"output_dir={tmp_path}"])
    run_sweep(cfg)

    with (tmp_path / "bench.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * 2 * 2 * 2 * 2
    timed = [r for r in rows if r["median_ms"]]
    skipped = [r for r in rows if r["status"] == "skipped"]
    assert len(skipped) == 8 and all(r["backend"] == "onnxruntime" and r["precision"] == "bf16" for r in skipped)
    assert len(timed) == 24 and all(r["status"] == "measured" for r in timed)
    for row in timed:
        assert 0 < float(row["median_ms"]) <= float(row["p90_ms"]) <= float(row["p99_ms"])
        assert float(row["img_per_s"]) == pytest.approx(int(row["batch"]) / float(row["median_ms"]) * 1000, rel=1e-6)
        assert int(row["runs"]) >= 2 and int(row["warmup_runs"]) >= 1 and float(row["peak_rss_mib"]) > 0
    onnx_rows = [r for r in timed if r["backend"] == "onnxruntime"]
    assert len(onnx_rows) == 8 and all("relative (limit 0.0001)" in r["parity"] for r in onnx_rows)
    flops = {(r["backbone"], r["size"]): float(r["gflops_per_image"]) for r in timed}
    assert flops["resnet18", "64x64"] > 3 * flops["resnet18", "32x32"]  # convolutions scale with pixels
    assert flops["resnet34", "64x64"] > 1.8 * flops["resnet18", "64x64"]

    table = (tmp_path / "table.md").read_text()
    assert table.startswith("Method:\n- device cpu") and table.count("\n| classifier |") == 32
    assert "| classifier | resnet18 | 32x32 | 1 | fp32 | eager |" in capsys.readouterr().out
    for name in ["latency_vs_size", "throughput_vs_batch", "memory_vs_size", "backend_speedups"]:
        png = (tmp_path / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 20_000


def test_tiny_detector_sweep_checks_onnx_parity_before_timing(tmp_path: Path) -> None:
    cfg = bench_config([*FAST, "task=detector", "backbone=resnet18", "size=[128x160]", "batch=[1,2]",
                        "backend=[eager,onnxruntime]", "detector_classes=4", "model.rpn.pre_nms_top_n_test=100",
                        "model.rpn.post_nms_top_n_test=30", f"output_dir={tmp_path}"])
    rows = run_sweep(cfg)
    assert [r["backend"] for r in rows] == ["eager", "onnxruntime"] * 2
    for row in rows:
        assert row["median_ms"] > 0 and row["gflops_per_image"] > 0
    for row in rows[1::2]:
        assert "(limits 1 px, 0.001)" in row["parity"] and "detections matched" in row["parity"]
        assert row["speedup"] == pytest.approx(rows[0 if row["batch"] == 1 else 2]["median_ms"] / row["median_ms"])
    assert (tmp_path / "onnx" / "detector_resnet18_128x160.onnx").is_file()


def test_tiny_sweep_times_openvino_and_opencv_after_parity(tmp_path: Path) -> None:
    cfg = bench_config([*FAST, "task=[classifier,backbone]", "backbone=resnet18", "size=32", "batch=1",
                        "precision=[fp32,bf16,int8]", "backend=[eager,openvino,opencv]", "int8_calibration=2",
                        f"output_dir={tmp_path}"])
    rows = {(r["task"], r["precision"], r["backend"]): r for r in run_sweep(cfg)}
    assert len(rows) == 2 * 3 * 3
    bf16 = not lacks_fast_units("bf16")
    for task in ("classifier", "backbone"):
        measured = [("fp32", "eager"), ("fp32", "openvino"), ("fp32", "opencv"), ("int8", "openvino"),
                    *([("bf16", "eager"), ("bf16", "openvino")] if bf16 else [])]
        for key in measured:
            row = rows[(task, *key)]
            assert row["status"] == "measured" and row["median_ms"] > 0 and row["runs"] >= 2, row
        for backend in ("openvino", "opencv"):  # checked against PyTorch fp32 before timing
            assert "relative (limit 0.0001)" in rows[(task, "fp32", backend)]["parity"]
        assert "(limit 0.25); calibrated on 2 random images" in rows[(task, "int8", "openvino")]["parity"]
        assert rows[(task, "int8", "openvino")]["speedup"] == pytest.approx(
            rows[(task, "fp32", "eager")]["median_ms"] / rows[(task, "int8", "openvino")]["median_ms"])
        if bf16:
            assert "(limit 0.05)" in rows[(task, "bf16", "openvino")]["parity"]
        assert rows[(task, "int8", "opencv")]["note"] == "int8 runs on openvino only (NNCF's quantization)"
        assert rows[(task, "bf16", "opencv")] | {"status": "skipped", "note": "opencv runs the fp32 export"} == \
            rows[(task, "bf16", "opencv")]
    assert (tmp_path / "onnx" / "backbone_resnet18_any_int8_32x32.xml").is_file()
    assert (tmp_path / "backend_speedups.png").read_bytes().startswith(b"\x89PNG")


def test_a_cpu_without_bf16_skips_openvino_bf16_with_the_reason(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resnet, "lacks_fast_units", lambda precision: "this CPU has neither avx512_bf16 nor amx_bf16")
    cfg = bench_config([*FAST, f"output_dir={tmp_path}"])
    workload = Workload(cfg, "classifier", "resnet18", "32x32", torch.device("cpu"))
    row = run_point(Point("classifier", "resnet18", "32x32", 1, "bf16", "openvino"), workload, cfg,
                    torch.device("cpu"), {})
    assert row == row | {"status": "skipped", "note": "this CPU has neither avx512_bf16 nor amx_bf16 (OpenVINO would run fp32)"}
    assert "median_ms" not in row


def test_tiny_detector_sweep_reports_what_opencv_cannot_run(tmp_path: Path) -> None:
    cfg = bench_config([*FAST, "task=detector", "backbone=resnet18", "size=[128x160]", "batch=1",
                        "backend=[openvino,opencv]", "detector_classes=4", "model.rpn.pre_nms_top_n_test=100",
                        "model.rpn.post_nms_top_n_test=30", f"output_dir={tmp_path}"])
    openvino, opencv = run_sweep(cfg)
    assert openvino["status"] == "measured" and openvino["median_ms"] > 0
    assert "detections matched" in openvino["parity"] and "(limits 1 px, 0.001)" in openvino["parity"]
    if opencv["status"] == "failed":  # OpenCV 5.0's importer reads the graph, its NMS/RoIAlign part does not run
        assert opencv["note"].startswith("OpenCV ") and "DNN cannot" in opencv["note"] and "median_ms" not in opencv
    else:
        assert opencv["status"] == "measured" and "detections matched" in opencv["parity"]
    assert "| detector | resnet18 | 128x160 | 1 | fp32 | opencv |" in (tmp_path / "table.md").read_text()


def live_resnets() -> list[torchvision.models.ResNet]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, torchvision.models.ResNet)]


def test_a_half_precision_point_is_measured_on_a_fresh_network_with_no_fp32_copy_beside_it(tmp_path: Path) -> None:
    cfg = bench_config([*FAST, f"output_dir={tmp_path}"])
    before = len(live_resnets())
    workload = Workload(cfg, "classifier", "resnet18", "32x32", torch.device("cpu"))
    point = Point("classifier", "resnet18", "32x32", 1, "bf16", "channels_last")
    inputs = random_inputs(point.task, point.size, 1, torch.bfloat16, workload.device, 0)
    with torch.inference_mode():
        call, _ = prepare_call(point, workload, inputs, cfg.parity)
        output = call()
    alive = live_resnets()
    assert len(alive) == before + 1 and output.dtype == torch.bfloat16  # the point's own network, nothing else
    fresh = workload.network()
    for (name, value), again in zip(fresh.state_dict().items(), workload.network().state_dict().values()):
        torch.testing.assert_close(value, again, msg=name)  # every point gets the same weights
