"""hilci.yaml, read through typed settings: one section per stage, plus the top-level `store` URL.

A stage names the class that types its section (`Stage.settings = "module:Class"`, a `hilci.util.settings` class living
where the stage's concern lives: `hilci.conversion.settings` for the model stages, `hilci.builtin.settings` for ours); a
stage without one takes a free-form mapping. Every problem is one line naming the file and the dotted field
(`hilci.yaml: hil.pytest_argz: unknown setting (did you mean 'pytest_args'?)`), and `problems` lists them all
at once, so `hilci run` can refuse a bad file before the first stage starts.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilci.errors import ConfigError, DefinitionError, SettingsError, YamlFileError
from hilci.pipeline.model import Pipeline, Stage
from hilci.pipeline.sections import GateSettings, SoakSettings, StoreSettings
from hilci.util.settings import as_dict, build, nearest
from hilci.util.yamlfile import load_yaml

STORE = "store"  # top-level key: the URL of the stage store (hilci.store); HILCI_STORE overrides it
REGRESSIONS = "regressions"  # top-level key: the regression gates' settings (hilci.store.gates.GateSettings)
SOAK = "soak"  # top-level key: the scheduled soak (hilci.pipeline.sections.SoakSettings, `hilci soak`)
PROJECT_KEYS = ("pipeline", "kinds", "boards")  # read before the pipeline exists (hilci.pipeline.project)
STORE_KEYS = ("trusted_branches", "store_optional")  # top-level keys typed by StoreSettings


@dataclass
class Config:
    """A validated hilci.yaml: each stage's settings (typed, or a plain mapping) and the store URL."""

    path: Path
    sections: dict[str, Any] = field(default_factory=dict)
    store: str | None = None
    regressions: Any = None  # GateSettings, when the file has the section
    soak: SoakSettings | None = None  # hilci.yaml's `soak:` section; None: no nightly soak is scheduled
    store_settings: StoreSettings = field(default_factory=StoreSettings)

    @property
    def gates(self) -> GateSettings:
        """The regression gates' settings: the file's `regressions:` section, else the defaults."""
        return self.regressions if self.regressions is not None else GateSettings()

    def settings(self, stage: str) -> Any:
        """The stage's settings object (its class's defaults when the file has no section)."""
        return self.sections.get(stage)

    def section(self, stage: str) -> dict[str, Any]:
        """The stage's settings as plain data, unset optional values left out (for bodies, cache keys, JSON)."""
        value = self.sections.get(stage)
        if value is None:
            return {}
        return _drop_none(value if isinstance(value, dict) else as_dict(value))

    def plain(self) -> dict[str, Any]:
        """The whole file as plain data: each stage's section, and the top-level `store`, `regressions` and store
        settings when set. Cache keys hash it; everything else reads the typed fields."""
        data: dict[str, Any] = {name: self.section(name) for name in self.sections}
        if self.store:
            data[STORE] = self.store
        if self.regressions is not None:
            data[REGRESSIONS] = as_dict(self.regressions)
        data.update(as_dict(self.store_settings))  # trusted_branches, store_optional
        return data


def settings_class(stage: Stage) -> type | None:
    """The class typing the stage's section, imported (a DefinitionError when the definition names none)."""
    if not stage.settings:
        return None
    module_name, _, name = stage.settings.partition(":")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise DefinitionError(f"stage {stage.name!r}: settings {stage.settings!r} cannot be loaded ({exc})") from None


def read(root: Path, pipeline: Pipeline) -> tuple[Config, list[str]]:
    """hilci.yaml of the project at `root`, validated; with every problem found (empty when it is sound)."""
    path = root / pipeline.config_file
    shown = pipeline.config_file
    config = Config(path)
    data: Any = {}
    if path.exists():
        try:
            data = load_yaml(path)
        except YamlFileError as exc:
            return config, [str(exc).replace(str(path), shown, 1)]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return config, [f"{shown}: expected a mapping of stage names to settings, got {type(data).__name__}"]
    problems: list[str] = []
    known = (*pipeline.names, STORE, REGRESSIONS, SOAK, *STORE_KEYS, *PROJECT_KEYS)
    for key in data:
        if key not in known:
            problems.append(f"{shown}: {key}: unknown section{nearest(str(key), known)}")
    store = data.get(STORE)
    if store is not None and (not isinstance(store, str) or not store.strip()):
        problems.append(f"{shown}: {STORE}: expected a URL or a path, got {store!r}"[:200])
    config.store = store if isinstance(store, str) and store.strip() else None
    try:
        config.store_settings = build(StoreSettings, {k: data[k] for k in STORE_KEYS if k in data}, file=shown)
    except SettingsError as exc:
        problems.append(str(exc))
    for key, cls in ((REGRESSIONS, GateSettings), (SOAK, SoakSettings)):  # typed top-level sections, when set
        if data.get(key) is None:
            continue
        try:
            section = build(cls, data[key], file=shown, prefix=f"{key}.")
            section.check(shown)
            setattr(config, key, section)
        except SettingsError as exc:
            problems.append(str(exc))
    for stage in pipeline.stages:
        value = data.get(stage.name)
        try:
            cls = settings_class(stage)
            if cls is not None:
                section = build(cls, value, file=shown, prefix=f"{stage.name}.")
                if hasattr(section, "check"):  # what a settings class checks across its fields
                    section.check(shown)
                config.sections[stage.name] = section
            elif value is None or isinstance(value, dict):
                config.sections[stage.name] = dict(value or {})
            else:
                problems.append(f"{shown}: {stage.name}: expected a mapping of settings, got {value!r}"[:200])
        except (SettingsError, DefinitionError) as exc:
            problems.append(str(exc))
    return config, problems


def load(root: Path, pipeline: Pipeline) -> Config:
    """hilci.yaml validated, or ConfigError listing every problem."""
    config, problems = read(root, pipeline)
    if problems:
        raise ConfigError(problems)
    return config


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value
