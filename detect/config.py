"""Where the Hydra configs are, and the one way every entry point, benchmark and test composes them (`compose`):
group options checked first, Hydra's errors as one line naming the key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from detect.utils.errors import DetectError, check_choice

# The Hydra configs: inside the package when it is installed from a wheel, beside it in a checkout.
CONFIG_DIR = next(path for path in (Path(__file__).parent / "configs", Path(__file__).parents[1] / "configs")
                  if path.is_dir())
# ${first:a,b}: a unless it is null or empty, else b (train.yaml: resume=<run> runs in that run's folder)
OmegaConf.register_new_resolver("first", lambda value, default: value or default, replace=True)


def instantiate_node(node: DictConfig) -> Any:
    """Hydra's instantiate, with our own DetectError raised as itself rather than wrapped in Hydra's."""
    try:
        return instantiate(node)
    except InstantiationException as error:
        if isinstance(error.__cause__, DetectError):
            raise error.__cause__ from None
        raise


def check_group_overrides(overrides: list[str], config_dir: Path = CONFIG_DIR) -> None:
    """`group=option` command-line overrides whose option has no configs/<group>/<option>.yaml, as one line (Hydra
    would answer with a page): e.g. tracker=nonsense, model/backbone=resnet42. A dict or list is the group's config
    inline (`+zones={lines: {...}}`), not an option."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        group = config_dir / key.replace(".", "/")
        # not a group, a sweep function such as choice(...), or hydra/*: Hydra's plugins add options of their own
        if not group.is_dir() or "(" in value or key.startswith("hydra/"):
            continue
        for option in sweep_options(value):
            inline = option.startswith(("{", "["))  # the group's keys written out: +zones={lines: {...}}
            if option and option != "null" and not inline and not (group / f"{option}.yaml").is_file():
                check_choice(key, option, sorted(path.stem for path in group.glob("*.yaml")))


def plain_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A config node (interpolations resolved against its root) or a mapping, as plain Python types."""
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)


def sweep_options(value: str) -> list[str]:
    """The options of a multirun value `a,b,c`, split at top-level commas only: a dict or list value
    (`{lines: {door: {start: [0, 300], ...}}}`, `[a.mp4,b.mp4]`) is one option, not a sweep."""
    options, depth, current = [], 0, ""
    for char in value:
        depth += (char in "[{(") - (char in "]})")
        if char == "," and depth == 0:
            options.append(current)
            current = ""
        else:
            current += char
    return [*options, current]


@contextmanager
def package_configs() -> Iterator[None]:
    """Hydra initialized on this package's configs/ for a compose, whatever Hydra application runs (another one with
    its own config path, or an entry point of this package): the running one is set aside and put back after."""
    global_hydra = GlobalHydra.instance()
    running = global_hydra.hydra
    global_hydra.clear()
    try:
        with hydra.initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            yield
    finally:
        global_hydra = GlobalHydra.instance()  # initialize_config_dir put back a copy of the instance it found
        global_hydra.clear()
        if running is not None:
            global_hydra.initialize(running)


def compose(config_name: str, overrides: Sequence[str] = (), output_dir: str | Path | None = None,
            return_hydra_config: bool = False) -> DictConfig:
    """configs/<config_name>.yaml with command-line style `overrides`, as its entry point composes it, with
    `output_dir` set when given (no Hydra run folder is made); a bad override is one DetectError line."""
    overrides = list(overrides)
    check_group_overrides(overrides)
    try:
        with package_configs():
            cfg = hydra.compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    except (HydraException, OmegaConfBaseException) as error:
        raise DetectError(f"{config_name} override: {' '.join(str(error).split())}") from None
    if output_dir is not None:
        with open_dict(cfg):
            cfg.output_dir = str(output_dir)
    return cfg


def block_with(config_name: str, key: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """configs/<config_name>.yaml's `key` block with `settings` over it (the Python API's keyword for it), as plain
    types; an unknown key or a value of the wrong type is one line naming the block and its keys."""
    block = compose(config_name)[key]
    OmegaConf.set_struct(block, True)
    try:
        return OmegaConf.to_container(OmegaConf.merge(block, settings))
    except OmegaConfBaseException as error:
        raise DetectError(f"{key}={dict(settings)} does not fit {config_name}.yaml's {key} block "
                          f"({str(error).splitlines()[0]}); its keys are {', '.join(block)}") from None
