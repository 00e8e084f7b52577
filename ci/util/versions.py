"""Installed versions of distributions, read from package metadata (nothing is imported).

One lookup for everything that records what was installed: artifact manifests, stage cache keys, reports.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

NOT_INSTALLED = "not installed"


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (`nvidia-modelopt`, `onnxruntime`), or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
    except ValueError:  # an empty or malformed name
        return None


def installed_versions(distributions: Iterable[str], missing: str | None = None) -> dict[str, str]:
    """`python` and each distribution's version; a missing one is left out, or given as `missing` when set
    (a cache key records `not installed`, so installing the package later changes the key)."""
    found = {"python": platform.python_version()}
    for name in distributions:
        version = installed_version(name)
        if version is not None:
            found[name] = version
        elif missing is not None:
            found[name] = missing
    return found
