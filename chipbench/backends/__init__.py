"""Backends by name. Each is a module `chipbench/backends/<name>.py` or a package
`chipbench/backends/<name>/` and exposes `BACKEND`; `base` holds the interface they share."""

from __future__ import annotations

import importlib
import pkgutil

from chipbench.backends.base import Availability, Backend, Runner
from chipbench.errors import RunError, UserError

__all__ = ["Availability", "Backend", "Runner", "available", "get", "names"]


def names() -> list[str]:
    """Every backend module shipped in this package."""
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("base",)
    )


def get(name: str) -> Backend:
    if name not in names():
        raise UserError(
            f"unknown backend {name!r}: use one of {', '.join(names())} in resources/chips.yaml"
        )
    return importlib.import_module(f"{__name__}.{name}").BACKEND


def available(chip_name: str, chip: dict) -> Backend:
    """The backend of a chip that a job is about to use; a RunError (the run stops) when the
    chip cannot run on this host."""
    backend = get(chip["backend"])
    availability = backend.availability(chip)
    if not availability.ok:
        raise RunError(f"chip {chip_name} is not available on this host: {availability.reason}")
    return backend
