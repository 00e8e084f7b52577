"""The package list for setuptools: hilci's import name is `hilci`, its folder `ci/` (pyproject.toml says why)."""

from setuptools import find_packages, setup

setup(packages=["hilci", *(f"hilci.{name}" for name in find_packages("ci"))])
