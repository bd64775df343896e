"""Detector.load inside another Hydra application (its own config path) and inside a Hydra job of this package:
the model config is composed from this package's configs/ and the running application's Hydra is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import CONFIGS
from hydra import compose, initialize_config_dir

from detect import Detector

SMALL = {"backbone": "resnet18", "min_size": 64, "max_size": 96, "threads": 1}


def test_load_inside_another_app_and_inside_this_packages_configs(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("greeting: hello\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):  # another app: no infer.yaml there
        detector = Detector.load(None, **SMALL)
        assert compose(config_name="app").greeting == "hello"  # the app's Hydra is back
    assert detector(np.zeros((48, 64, 3), dtype=np.uint8)).image.shape == (48, 64, 3)
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):  # a job of this package (train.py's configs)
        Detector.load(None, **SMALL)
        assert compose(config_name="infer", overrides=["source=x"]).source == "x"


@pytest.mark.slow  # a fresh interpreter imports torch (~10 s)
def test_three_line_hydra_app_runs_detector_load(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.yaml").write_text("size: 64\n")
    (tmp_path / "app.py").write_text(
        "import hydra, numpy as np\nfrom detect import Detector\n"
        "hydra.main(version_base=None, config_path='conf', config_name='app')(lambda cfg: print('boxes', len(Detector."
        "load(None, backbone='resnet18', min_size=cfg.size, max_size=96)(np.zeros((48, 64, 3), np.uint8)).boxes)))()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.run([sys.executable, "app.py", "size=80", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=300)
    if "No module named 'detect'" in process.stderr:
        pytest.skip("detect is not installed in this environment (uv sync installs it)")
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("boxes ") and "MissingConfigException" not in process.stderr
