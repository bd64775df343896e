"""Many video files in one run, or split into shards that run as separate jobs: `source=<folder or glob of
videos>` runs each video in turn with one model, each into `<output_dir>/<its path under the folder>/` (the outputs
of a one-video run), then merges them (merge.py) into `<output_dir>/detections.json` and `summary.json`.
`shard=i/n` keeps the i-th of n shards of the sorted files (every n-th file from the i-th); on SLURM, one job a shard:

    uv run infer.py -m hydra/launcher=slurm source=videos/ weights=best.ckpt shard=0/4,1/4,2/4,3/4

and the sweep folder gets the merge of the shards when all are done (merge.MergeShards; or run
`python -m detect.inference.merge <sweep folder>`)."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from detect.data.sources.paths import IMAGE_SUFFIXES, glob_root
from detect.inference.detector import Detector
from detect.inference.merge import MANIFEST, merge_runs
from detect.inference.pipeline import check_infer_config, infer, load_detector
from detect.utils.errors import DetectError

VIDEO_SUFFIXES = (".avi", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".ts", ".webm", ".wmv")


def list_videos(source: str) -> tuple[Path, list[Path]] | None:
    """(root, the video files under it, sorted) of a folder or glob that names videos (and no images); None for
    any other source."""
    path = Path(source)
    if path.is_dir():
        root, files = path, [p for p in path.iterdir() if p.is_file()]
    elif glob.has_magic(source):
        root = glob_root(source)
        files = [Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file()]
    else:
        return None
    videos = sorted(p for p in files if p.suffix.lower() in VIDEO_SUFFIXES)
    if videos and any(p.suffix.lower() in IMAGE_SUFFIXES for p in files):
        raise DetectError(f"source={source} holds both videos and images; pass a glob of one kind "
                          f"(e.g. '{root}/*.mp4' or '{root}/*.jpg')")
    return (root, videos) if videos else None


def parse_shard(shard: str | None) -> tuple[int, int]:
    """"i/n" -> (i, n) with 0 <= i < n; None -> (0, 1), every file."""
    if shard is None:
        return 0, 1
    try:
        index, count = (int(value) for value in str(shard).split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise DetectError(f"shard={shard} must be i/n with 0 <= i < n (e.g. shard=0/4 for the first of 4 shards)")
    return index, count


def shard_files(source: str, shard: str | None) -> tuple[Path, list[Path], int]:
    """(root, this shard's videos, the number of videos in all shards) of a folder or glob of videos."""
    index, count = parse_shard(shard)
    listed = list_videos(source)
    if listed is None:
        raise DetectError(f"shard={shard} splits a folder or glob of videos ({', '.join(VIDEO_SUFFIXES)}); "
                          f"source={source} names none")
    root, videos = listed
    return root, videos[index::count], len(videos)


def names_videos(cfg: DictConfig) -> bool:
    """Whether infer.py runs `cfg` video by video (a folder or glob of videos, or a shard of one)."""
    if cfg.get("shard") is not None:
        return True
    single = not OmegaConf.is_missing(cfg, "source") and not OmegaConf.is_list(cfg.source)  # a list: several sources
    return single and list_videos(str(cfg.source)) is not None


def infer_files(cfg: DictConfig, detector: Detector | None = None) -> dict[str, Any]:
    """Run each video of `cfg.source` (this shard's) into its own folder with one detector (the configured one, or
    `detector`), then merge; return the merged summary."""
    check_infer_config(cfg)
    if cfg.track_gt is not None:
        raise DetectError(f"track_gt={cfg.track_gt} scores one video; run it with that video as the source")
    root, videos, total = shard_files(str(cfg.source), cfg.get("shard"))
    output_dir = Path(cfg.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    names = [video.relative_to(root).as_posix() for video in videos]
    (output_dir / MANIFEST).write_text(json.dumps({"source": str(cfg.source), "shard": cfg.get("shard") or "0/1",
                                                   "files_in_all_shards": total, "files": names}, indent=1) + "\n")
    detector = detector or (load_detector(cfg) if videos else None)
    for video, name in zip(videos, names):
        file_cfg = cfg.copy()
        with open_dict(file_cfg):
            file_cfg.source, file_cfg.output_dir, file_cfg.shard = str(video), str(output_dir / name), None
        infer(file_cfg, detector)
    return merge_runs([output_dir], output_dir, all_shards=False)  # this shard's; MergeShards merges them all


def run(cfg: DictConfig) -> dict[str, Any]:
    """infer.py's run: video by video for a folder or glob of videos (or a shard of one), else one source."""
    return infer_files(cfg) if names_videos(cfg) else infer(cfg)
