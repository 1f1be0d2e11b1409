"""Recipe loading: YAML file + ``--set key.sub=value`` overrides -> checked :class:`~metanlp.core.config.RecipeConfig`.

Strict with what users write (unknown keys, wrong types and cross-field rules are rejected at load time, naming the
file, the dotted key and the closest valid key); lenient with files a newer metanlp wrote (``recipe_from_dict``).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from metanlp.core.config import ConfigError, RecipeConfig, recipe_schema

__all__ = ["load_recipe", "recipe_from_dict", "recipe_to_yaml"]


def _valid_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in fields(cls):
        dotted = f"{prefix}{f.name}"
        keys.append(dotted)
        factory = f.default_factory
        if isinstance(factory, type) and is_dataclass(factory):
            keys += _valid_keys(factory, dotted + ".")
    return keys


def _explain(err: Exception, source: str) -> ConfigError:
    key = getattr(err, "full_key", "") or ""
    first = str(err).splitlines()[0]
    msg = f"{source}: {first}" + (f" (key '{key}')" if key else "")
    if isinstance(err, ConfigKeyError) and key and "did you mean" not in first.lower():
        close = difflib.get_close_matches(key, _valid_keys(recipe_schema()), n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean '{close[0]}'?"
    return ConfigError(msg)


def load_recipe(path: str | Path | None = None, overrides: list[str] | None = None) -> RecipeConfig:
    """Load a recipe YAML, apply ``key.sub=value`` overrides, check everything, return the dataclasses.

    Args:
        path: recipe file; None gives the defaults.
        overrides: ``--set`` strings such as ``["adapter.r=4", "task.n_way=0"]``.

    Returns:
        The resolved :class:`RecipeConfig`.

    Raises:
        ConfigError: the file is missing or not a mapping, a key is unknown (the message names the dotted key and
            the closest valid one), a value has the wrong type, or a cross-field rule fails.

    Example:
        >>> cfg = load_recipe(None, ["adapter.r=4", "task.n_way=0"])
        >>> cfg.adapter.r, cfg.task.n_way
        (4, 0)
        >>> try:
        ...     load_recipe(None, ["adapter.rnak=4"])
        ... except ConfigError as e:
        ...     print(e)
        --set: Key 'rnak' not in 'AdapterConfig' (key 'adapter.rnak'); did you mean 'adapter.r'?
    """
    schema = OmegaConf.structured(recipe_schema())
    source = "defaults"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"recipe file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{p}: a recipe must be a mapping of sections, got {type(raw).__name__}")
        try:
            schema = OmegaConf.merge(schema, raw)
        except OmegaConfBaseException as e:
            raise _explain(e, source) from e
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.sub=value, e.g. --set adapter.r=4")
        if item.endswith("="):  # `--set data.eval=` clears a string (OmegaConf would read None)
            item += "''"
        try:
            schema = OmegaConf.merge(schema, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as e:
            raise _explain(e, "--set") from e
    try:
        cfg = OmegaConf.to_object(schema)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from e
    except OmegaConfBaseException as e:
        raise _explain(e, source) from e
    assert isinstance(cfg, RecipeConfig)
    return cfg


def recipe_to_yaml(cfg: RecipeConfig) -> str:
    """The resolved recipe as YAML text (what a run writes next to its outputs as ``recipe.yaml``)."""
    return yaml.safe_dump(asdict(cfg), sort_keys=False)


def recipe_from_dict(data: dict[str, Any], source: str = "recipe") -> RecipeConfig:
    """Build a :class:`RecipeConfig` from a dict written by a (possibly newer) metanlp, ignoring unknown keys.

    Lenient by design (STYLE B.15): keys this version does not know are dropped with a warning that names them.
    """
    clean: dict[str, Any] = {}
    dropped: list[str] = []
    schema = recipe_schema()
    for section in fields(schema):
        values = data.get(section.name) or {}
        known = {f.name for f in fields(section.default_factory)}  # type: ignore[arg-type]
        clean[section.name] = {k: v for k, v in values.items() if k in known}
        dropped += [f"{section.name}.{k}" for k in values if k not in known]
    dropped += [k for k in data if k not in {f.name for f in fields(schema)}]
    if dropped:
        logging.getLogger(__name__).warning("%s: ignoring keys unknown to this metanlp version: %s", source, dropped)
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), clean))
    except OmegaConfBaseException as e:
        raise _explain(e, source) from e
    assert isinstance(cfg, RecipeConfig)
    return cfg
