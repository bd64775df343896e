"""benchmarks.counting: with the true boxes, today's rule counts every clip exactly, with the true ids and with every
tracker's; the rule before issue 25 does not; a bad clip is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.counting import main


def test_true_boxes_count_exactly_by_todays_rule_and_the_table_has_every_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = main(["--clips", "3:6:150", "11:20:150", "--trackers", "bytetrack", "sort", "--cache-dir", str(tmp_path)])
    by_key = {(row["clip"], row["boxes"], row["ids"], row["rule"]): row for row in rows}
    assert len(by_key) == len(rows) == 2 * 7 * 2  # clips x (truth, 2 trackers on truth, visible, jittered) x rules
    for (clip, boxes, ids, rule), row in by_key.items():
        assert row["true"] > 0
        if boxes == "truth" and rule == "after":
            assert row["abs_error"] == row["strict_error"] == 0, row
    assert sum(row["abs_error"] for row in rows if row["rule"] == "before" and row["boxes"] == "truth") > 0
    out = capsys.readouterr().out
    true = sum(row["true"] for row in rows if row["ids"] == "truth" and row["rule"] == "after")
    optional = sum(row["optional"] for row in rows if row["ids"] == "truth" and row["rule"] == "after")
    assert f"| truth | truth | after | 0 of {true} (0.0 %) | 0 of {true + optional} (0.0 %) |" in out
    assert len([line for line in out.splitlines() if line.startswith("| 3:6:150 ")]) == 14


def test_a_bad_clip_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--clips", "3:six:150"])
    assert "--clips: '3:six:150' is not seed:objects:frames" in capsys.readouterr().err
