"""Development measurements and acceptance checks (not in the wheel): each module is one command,
`uv run python -m benchmarks.<name>` from a checkout, and each has a test under tests/benchmarks/."""
