"""Helpers shared by the command wrappers (light imports only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plumbing import InputError


def invoke(target: str, cfg: Any) -> Any:
    """Import `package.module:function` lazily and call it with `cfg`.

    InputError propagates to `cli.main.run`, which prints it and exits 2.
    """
    import importlib

    module_name, func_name = target.split(":")
    func: Callable[[Any], Any] = getattr(importlib.import_module(module_name), func_name)
    return func(cfg)


__all__ = ["InputError", "invoke"]
