"""What this CPU is and what it can do at most: its model, the flags that decide bf16 / int8 speed, and an upper
bound on its arithmetic rate per precision (cores x clock x operations per cycle of its widest units)."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

KEY_FLAGS = ("avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_int8")
# Multiply-adds count 2 operations. Per core and cycle, at most: two 512-bit FMA units (fp32: 2 x 16 x 2);
# AVX-512 BF16 / FP16 doubles the lanes; VNNI's int8 dot products 4x; AMX tiles: 1024 bf16, 2048 int8
# (Intel's figures for Sapphire Rapids). The first flag present decides.
OPS_PER_CYCLE = {
    "fp32": [("avx512f", 64), ("avx2", 32), ("", 8)],
    "bf16": [("amx_bf16", 1024), ("avx512_bf16", 128), ("avx512f", 64), ("avx2", 32), ("", 8)],
    "fp16": [("amx_fp16", 1024), ("avx512_fp16", 128), ("avx512f", 64), ("avx2", 32), ("", 8)],
    "int8": [("amx_int8", 2048), ("avx512_vnni", 256), ("avx_vnni", 128), ("avx512bw", 128), ("avx2", 64), ("", 16)],
}
# oneDNN's ONEDNN_MAX_CPU_ISA (read by torch and OpenVINO) caps the kernels at an ISA: the flags each cap leaves
# usable, so that the peak and the precision checks follow the kernels that really run (AVX10_1_512 names of oneDNN 3.3+).
_AVX512 = ("avx2", "avx512f", "avx512bw")
_BF16 = (*_AVX512, "avx512_vnni", "avx512_bf16")
_FP16 = (*_BF16, "avx512_fp16")
_AMX = (*_FP16, "amx_bf16", "amx_int8")
ISA_CAP_FLAGS = {"SSE41": (), "AVX": (), "AVX2": ("avx2",), "AVX2_VNNI": ("avx2", "avx_vnni"),
                 "AVX2_VNNI_2": ("avx2", "avx_vnni"), "AVX512_CORE": _AVX512,
                 "AVX512_CORE_VNNI": (*_AVX512, "avx512_vnni"), "AVX512_CORE_BF16": _BF16,
                 "AVX512_CORE_FP16": _FP16, "AVX10_1_512": _FP16, "AVX512_CORE_AMX": _AMX, "AVX10_1_512_AMX": _AMX,
                 "AVX512_CORE_AMX_FP16": (*_AMX, "amx_fp16"), "AVX10_1_512_AMX_FP16": (*_AMX, "amx_fp16")}
# The units that run a half precision natively; without one, torch converts each operation to fp32 and back (bf16
# measured 3.7x slower than fp32 on an AVX2 EPYC) and OpenVINO runs fp32 instead.
FAST_UNITS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


@cache
def _cpuinfo() -> dict[str, str]:
    path = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    return _cpuinfo().get("model name", "unknown CPU")


def cpu_flags() -> set[str]:
    return set(_cpuinfo().get("flags", "").split())


def kernel_flags() -> set[str]:
    """The flags whose units the kernels may use: the CPU's, less those above ONEDNN_MAX_CPU_ISA where it is set."""
    flags, cap = cpu_flags(), os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    return flags & set(ISA_CAP_FLAGS[cap]) if cap in ISA_CAP_FLAGS else flags


def lacks_fast_units(precision: str) -> str:
    """Why this CPU runs `precision` slower than fp32, e.g. 'this CPU has neither avx512_bf16 nor amx_bf16'; '' where
    it has the units of FAST_UNITS (or `precision` needs none)."""
    units = FAST_UNITS.get(precision, ())
    if not units or kernel_flags() & set(units):
        return ""
    return f"this CPU has neither {' nor '.join(units)}" + (f" under{isa_cap()[1:]}" if isa_cap() else "")


def cpu_description() -> str:
    """The model and the flags that matter here, e.g. 'Intel(R) Xeon(R) Processor (avx512f, amx_bf16, amx_int8)'."""
    flags = cpu_flags()
    return f"{cpu_model()} ({', '.join(f for f in KEY_FLAGS if f in flags) or 'no AVX-512'})"


def max_clock_ghz() -> float:
    """The highest clock the system states: cpufreq's maximum, the model name's '@ 2.10GHz', or /proc/cpuinfo."""
    candidates = [float(_cpuinfo().get("cpu MHz", 0.0)) / 1000.0]
    max_freq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_freq.is_file():
        candidates.append(int(max_freq.read_text()) / 1e6)
    named = re.search(r"@\s*([\d.]+)\s*GHz", cpu_model())
    if named:
        candidates.append(float(named.group(1)))
    return max(candidates)


def isa_cap() -> str:
    """', ONEDNN_MAX_CPU_ISA=<cap>' where one is set, else ''."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f", ONEDNN_MAX_CPU_ISA={cap}" if cap else ""


def ops_per_cycle(precision: str, flags: set[str] | None = None) -> int:
    """Operations per core and cycle in `precision` of the widest units of `flags` (default: those the kernels may
    use, `kernel_flags`; see OPS_PER_CYCLE)."""
    flags = kernel_flags() if flags is None else flags
    return next(ops for flag, ops in OPS_PER_CYCLE[precision] if not flag or flag in flags)


def peak_gflops(precision: str, cores: int | None = None, clock_ghz: float | None = None) -> float:
    """An upper bound on the GFLOP/s (GOP/s for int8) of `cores` cores in `precision` at `clock_ghz` (default: the
    highest clock the system states)."""
    return (cores or os.cpu_count() or 1) * (clock_ghz or max_clock_ghz()) * ops_per_cycle(precision)
