"""Utilities every layer may use: the one error type (errors), caches written atomically (cache), the CPU's model,
flags and peak (cpu), devices and precisions (device), timers and memory (timing), matplotlib set-up (plotting) and
box drawing (drawing). Imports nothing else of detect."""
