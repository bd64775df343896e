"""The detection server (`python -m detect.serve`, `detect serve`): POST /predict with batching, /health, /metrics,
and a live view of the configured sources (annotated frames, counts, counting events)."""
