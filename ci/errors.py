"""hilci's error types, in one place so that any layer can raise them and the CLI can catch them.

Each is a one-line message for a person (exit 2, no traceback): it names the file, field, stage or device at
fault. Errors that belong to one concern and never cross it (a rig's `RigError`, a device's `DeviceError`)
live with that concern.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user (unknown stage, malformed config): one line, exit 2, no traceback."""


class StageError(Exception):
    """A stage cannot go on; the message names the file, field or device at fault."""


class DefinitionError(ValueError):
    """The pipeline definition is invalid; the message names the stage and what is wrong."""


class ConfigError(ValueError):
    """hilci.yaml is invalid; each line of the message names the file and the field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class SettingsError(ValueError):
    """A settings mapping is invalid; the message is 'FILE: dotted.field: what is wrong'."""


class YamlFileError(ValueError):
    """A YAML file cannot be read or parsed; the message is 'PATH: line N: what is wrong'."""
