"""Benchmarks: `python -m detect.bench` times ResNet classifiers, backbones and Faster R-CNN (see configs/bench.yaml)."""
