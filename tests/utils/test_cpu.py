"""Which half precisions this CPU runs natively, read from the flags of /proc/cpuinfo (faked here)."""

from __future__ import annotations

import pytest

from detect.utils import cpu


@pytest.mark.parametrize(("flags", "bf16", "fp16"), [
    ("avx2 fma", False, False),
    ("avx2 avx512f avx512_vnni", False, False),
    ("avx2 avx512f avx512_bf16", True, False),
    ("avx2 amx_bf16 amx_tile", True, False),
    ("avx512f avx512_bf16 avx512_fp16", True, True),
    ("amx_bf16 amx_fp16", True, True),
])
def test_lacks_fast_units_names_the_missing_units(flags: str, bf16: bool, fp16: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: {"flags": flags})
    for precision, fast in (("bf16", bf16), ("fp16", fp16)):
        why = cpu.lacks_fast_units(precision)
        assert (why == "") == fast
        assert fast or all(unit in why for unit in cpu.FAST_UNITS[precision])
    assert cpu.lacks_fast_units("fp32") == cpu.lacks_fast_units("int8") == ""


@pytest.mark.parametrize(("cap", "int8_ops", "bf16_fast"), [
    (None, 2048, True),
    ("AVX512_CORE_AMX", 2048, True),
    ("avx512_core_vnni", 256, False),
    ("AVX2", 64, False),
])
def test_onednn_isa_cap_lowers_the_peak_and_the_fast_units(cap: str | None, int8_ops: int, bf16_fast: bool,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ONEDNN_MAX_CPU_ISA the kernels of an AMX Xeon are AVX2's (or VNNI's): so are its peak and bf16 units."""
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: {"flags": "avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 "
                                                           "amx_bf16 amx_int8 amx_tile"})
    if cap:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    else:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert cpu.ops_per_cycle("int8") == int8_ops
    assert (cpu.lacks_fast_units("bf16") == "") == bf16_fast
    assert cap is None or bf16_fast or f"under ONEDNN_MAX_CPU_ISA={cap}" in cpu.lacks_fast_units("bf16")
