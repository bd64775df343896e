"""Merge the outputs of video-by-video runs (shards.py): every shard's files.json, each video's detections.json,
events.jsonl and summary.json -> one detections.json and events.jsonl (`source` = the video's path under the
folder) and a summary.json with a row per video and the totals. Checks that every shard of the split is there once.

    uv run python -m detect.inference.merge outputs/infer/multirun/<date>/<time>    # a sweep folder, or shard folders
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from detect.utils.errors import DetectError, exit_on_error

MANIFEST = "files.json"  # a video-by-video run's list of files (and its shard), in its output folder
ROW_KEYS = ("frames", "detections", "stopped_by", "throughput_fps", "total_wall_s")


def find_manifests(folders: list[Path]) -> list[Path]:
    """The files.json of each folder, or of its sub-folders (a Hydra sweep folder holds one per job)."""
    manifests = []
    for folder in folders:
        found = [folder / MANIFEST] if (folder / MANIFEST).is_file() else sorted(folder.glob(f"*/{MANIFEST}"))
        if not found:
            raise DetectError(f"{folder} holds no {MANIFEST} (nor do its sub-folders); pass the output folders of "
                              "infer.py runs on a folder of videos (shard=i/n), or their sweep folder")
        manifests += found
    return manifests


def _check_shards(manifests: list[dict[str, Any]]) -> None:
    """All shards i/n of one split, each once, covering every file."""
    shards = [m["shard"] for m in manifests]
    count = int(shards[0].split("/")[1])
    expected = [f"{i}/{count}" for i in range(count)]
    if sorted(shards) != sorted(expected) or len({m["source"] for m in manifests}) != 1:
        missing = sorted(set(expected) - set(shards))
        repeated = sorted(shard for shard, n in Counter(shards).items() if n > 1)
        raise DetectError(f"the runs to merge are shards {', '.join(sorted(shards))} of "
                          f"{', '.join(sorted({m['source'] for m in manifests}))}: need each of {', '.join(expected)} "
                          f"once of one source (missing {missing or 'none'}, repeated {repeated or 'none'})")
    if sum(len(m["files"]) for m in manifests) != manifests[0]["files_in_all_shards"]:
        raise DetectError(f"the shards list {sum(len(m['files']) for m in manifests)} files, the split had "
                          f"{manifests[0]['files_in_all_shards']}: the folder changed between the jobs; rerun them")


def _sum_zones(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per zone the sums of the videos' line in / out and polygon entries / exits."""
    totals: dict[str, Counter[str]] = {}
    for row in rows:
        for kind, keys in (("lines", ("in", "out")), ("polygons", ("entries", "exits"))):
            for name, values in row.get("zones", {}).get(kind, {}).items():
                totals.setdefault(name, Counter()).update({key: values[key] for key in keys})
    return {name: dict(values) for name, values in totals.items()}


def merge_runs(folders: list[Path], output_dir: Path, all_shards: bool = True) -> dict[str, Any]:
    """Merge the video-by-video runs in `folders` into `output_dir` (checking that they are all the shards of one
    split, unless not `all_shards`: a shard's own merge); return the merged summary."""
    paths = find_manifests(folders)
    manifests = [json.loads(path.read_text()) for path in paths]
    if all_shards:
        _check_shards(manifests)
    videos = sorted((name, path.parent / name) for manifest, path in zip(manifests, paths)
                    for name in manifest["files"])
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(output_dir / "detections.json", "w") as detections, open(output_dir / "events.jsonl", "w") as events:
        detections.write("[")
        first = True
        for name, folder in videos:
            if not (folder / "summary.json").is_file():
                raise DetectError(f"{folder} has no summary.json: the run of {name} did not finish; rerun its shard")
            summary = json.loads((folder / "summary.json").read_text())
            rows.append({"source": name, **{key: summary.get(key) for key in ROW_KEYS},
                         **({"zones": summary["zones"]} if "zones" in summary else {})})
            for record in json.loads((folder / "detections.json").read_text()):
                detections.write(("\n" if first else ",\n") + json.dumps({**record, "source": name}))
                first = False
            if (folder / "events.jsonl").is_file():
                for line in (folder / "events.jsonl").read_text().splitlines():
                    events.write(json.dumps({**json.loads(line), "source": name}) + "\n")
        detections.write("\n]\n")
    if not (output_dir / "events.jsonl").stat().st_size:  # no zones: no events file
        (output_dir / "events.jsonl").unlink()
    merged = {"source": manifests[0]["source"], "shards": len(manifests), "files": len(rows), "rows": rows,
              "total": {"frames": sum(row["frames"] for row in rows),
                        "detections": sum(row["detections"] for row in rows),
                        "total_wall_s": sum(row["total_wall_s"] for row in rows), "zones": _sum_zones(rows)}}
    (output_dir / "summary.json").write_text(json.dumps(merged, indent=2) + "\n")
    print(f"merged {len(rows)} videos of {len(manifests)} shard(s): {merged['total']['frames']} frames, "
          f"{merged['total']['detections']} detections -> {output_dir / 'detections.json'}", flush=True)
    return merged


class MergeShards(Callback):
    """Hydra callback (configs/infer.yaml): after a sweep of shards (infer.py -m ... shard=0/n,...), merge them into
    the sweep folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        manifests = [json.loads(path.read_text()) for path in sweep_dir.glob(f"*/{MANIFEST}")]
        if len({m["source"] for m in manifests}) == 1 and any(not m["shard"].endswith("/1") for m in manifests):
            exit_on_error(lambda folder: merge_runs([folder], folder), sweep_dir)  # else: no split to merge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="shard output folders, or a sweep folder of them")
    parser.add_argument("--out", type=Path, default=None, help="default: the folder, when there is one")
    args = parser.parse_args()
    if args.out is None and len(args.folders) > 1:
        parser.error("--out is needed to merge several folders")
    exit_on_error(lambda folders: merge_runs(folders, args.out or folders[0]), args.folders)


if __name__ == "__main__":
    main()
