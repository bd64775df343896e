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
