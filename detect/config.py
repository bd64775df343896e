"""Where the Hydra configs are, and the one way every entry point, benchmark and test composes them (`compose`):
group options checked first, Hydra's errors as one line naming the key (a mistyped one with the closest keys of
the config). Every Hydra entry point is a `hydra_main`, which checks its command line so before Hydra runs."""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from detect.utils.errors import DetectError, check_choice, exit_on_error, first_line

# The Hydra configs: inside the package when it is installed from a wheel, beside it in a checkout.
CONFIG_DIR = next(path for path in (Path(__file__).parent / "configs", Path(__file__).parents[1] / "configs")
                  if path.is_dir())
# ${first:a,b}: a unless it is null or empty, else b (train.yaml: resume=<run> runs in that run's folder)
OmegaConf.register_new_resolver("first", lambda value, default: value or default, replace=True)
# Groups whose keys a user may write out (+zones={lines: {...}} or +zones.lines.door.start=[0,300]): the only
# place Hydra's "+key" advice adds a key that something reads.
INLINE_GROUPS = ("zones",)
MULTIRUN_FLAGS = ("-m", "--multirun")
CLOSE_KEYS = 3, 0.6, 0.05  # at most 3 suggestions, at least 0.6 alike (`likeness`) and within 0.05 of the best


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
        raise DetectError(composition_error(config_name, overrides, error)) from None
    if output_dir is not None:
        with open_dict(cfg):
            cfg.output_dir = str(output_dir)
    return cfg


def leaf_keys(tree: Any, prefix: str = "") -> Iterator[str]:
    """The full dotted keys of a config's values (the config as plain containers)."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def likeness(key: str, other: str) -> float:
    """How alike two dotted keys are: difflib's ratio of the whole keys and of their last parts, averaged (a long
    shared parent alone does not make keys alike)."""
    def ratio(a: str, b: str) -> float:
        return difflib.SequenceMatcher(None, a, b).ratio()
    return (ratio(key, other) + ratio(key.rsplit(".", 1)[-1], other.rsplit(".", 1)[-1])) / 2


def close_keys(key: str, known: Sequence[str]) -> list[str]:
    """The keys of `known` most like `key` (`CLOSE_KEYS`), best first."""
    count, cutoff, window = CLOSE_KEYS
    scored = sorted(((likeness(key, k), k) for k in known), reverse=True)[:count]
    return [k for ratio, k in scored if ratio >= max(cutoff, scored[0][0] - window)]


def is_group(key: str) -> bool:
    """A config group (model/backbone, tracker, hydra/launcher) rather than a key."""
    return "/" in key or (CONFIG_DIR / key.replace(".", "/")).is_dir()


def composition_error(config_name: str, overrides: list[str], error: Exception) -> str:
    """One line for Hydra's refusal of `overrides`: a key the config lacks with its closest keys (those of the
    config composed without it), the `+` advice only for `INLINE_GROUPS`; else Hydra's first line."""
    missing = getattr(error.__cause__, "full_key", None)
    if not missing or not isinstance(error.__cause__, (ConfigKeyError, ConfigAttributeError)):
        return f"{config_name} override: {first_line(error, typed=False)}"
    keys = {override.lstrip("+~").partition("=")[0]: override for override in overrides}
    key = next((k for k in keys if k == missing or k.startswith(f"{missing}.")), missing)
    line = f"{key} is not a key of the {config_name} config"
    if is_group(missing):  # a group this config leaves unset (tracker, zones)
        options = sorted(path.stem for path in (CONFIG_DIR / missing.replace(".", "/")).glob("*.yaml"))
        inline = f" or write its keys: +{keys.get(key, key).lstrip('+')}" if missing in INLINE_GROUPS else ""
        return f"{line}: {missing} is unset; choose one with {missing}=<{'|'.join(options)}>{inline}"
    hydra_key = key.split(".")[0] == "hydra"
    groups = [override for k, override in keys.items() if is_group(k)]  # the keys of the config depend on these
    known = [k for k in leaf_keys(OmegaConf.to_container(compose(config_name, groups, None, hydra_key)))
             if hydra_key or not k.startswith("hydra.")]
    close = close_keys(key, known)
    line += "; " + (f"did you mean {' or '.join(close)}?" if close else f"see configs/{config_name}.yaml")
    inline = key.split(".")[0] in INLINE_GROUPS
    return line + (f" ({key.split('.')[0]} takes new keys with +: +{keys[key].lstrip('+')})" if inline else "")


def first_of_sweeps(overrides: list[str]) -> list[str]:
    """A multirun's overrides with each sweep (`a=1,2`, `choice(...)`, `range(...)`) at its first value."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise DetectError(f"override: {first_line(error, typed=False)}") from None
    return [f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override() else o.input_line
            for o in parsed]


def check_overrides(config_name: str, arguments: Sequence[str]) -> None:
    """The command line of the entry point of configs/<config_name>.yaml, composed as Hydra will (a multirun with
    each sweep at its first value): a bad group option, a mistyped key or another override Hydra refuses is one
    DetectError line. Hydra's own options (--cfg, --info, -cn, ...) are left to Hydra."""
    if any(argument.startswith("-") and argument not in MULTIRUN_FLAGS for argument in arguments):
        return
    overrides = [argument for argument in arguments if argument not in MULTIRUN_FLAGS]
    compose(config_name, first_of_sweeps(overrides) if len(overrides) < len(arguments) else overrides,
            return_hydra_config=True)


def hydra_main(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[..., Any]]:
    """`hydra.main` on configs/<config_name>.yaml whose command line is checked first (`check_overrides`): what
    Hydra would answer with a page ends the process with one `error: ...` line. Called with a config, the task
    runs on it as with hydra.main."""
    def decorate(task: Callable[[DictConfig], Any]) -> Callable[..., Any]:
        main = hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name=config_name)(task)

        @functools.wraps(task)
        def run(cfg: DictConfig | None = None) -> Any:
            if cfg is None:
                exit_on_error(functools.partial(check_overrides, config_name), sys.argv[1:])
            return main(cfg)
        return run
    return decorate


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
