"""Configuration as dataclasses: parse them from the command line, write them next to outputs.

Each field of a config dataclass becomes a ``--flag`` (underscores become dashes); the field's
``metadata["help"]`` is its help text. ``bool`` fields become ``--flag/--no-flag``; a tuple
field with ``metadata["positional"]`` takes the positional arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

from mura_env.common.atomic import atomic_write_bytes

T = TypeVar("T")


def _field_type(tp: Any) -> tuple[Any, bool]:
    """(scalar type, optional?) of a resolved dataclass field type."""
    args = typing.get_args(tp)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def command_name(program: str | None = None) -> str | None:
    """``"python -m a.b"`` when ``program`` (default ``sys.argv[0]``) is the ``__main__.py`` of
    package ``a.b`` (as ``python -m a.b`` runs it); None otherwise (argparse's own name then)."""
    path = Path(program if program is not None else sys.argv[0])
    if path.name != "__main__.py":
        return None
    parts: list[str] = []
    folder = path.resolve().parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return "python -m " + ".".join(parts) if parts else None


def build_parser(cls: type[T], description: str | None = None) -> argparse.ArgumentParser:
    """An :class:`argparse.ArgumentParser` with one option per field of dataclass ``cls``,
    named after the command that runs it (:func:`command_name`)."""
    parser = argparse.ArgumentParser(prog=command_name(),
                                     description=description or (cls.__doc__ or "").strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _field_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"help": f.metadata.get("help", " ")}
        if f.default is not dataclasses.MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kwargs["default"] = f.default_factory()
        else:
            kwargs["required"] = True
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["type"] = typing.get_args(tp)[0]
        elif "choices" in f.metadata:
            kwargs["type"] = tp
            kwargs["choices"] = f.metadata["choices"]
        else:
            kwargs["type"] = tp
        if optional and "required" in kwargs:
            kwargs.pop("required")
            kwargs["default"] = None
        if f.metadata.get("positional"):  # a positional list (``metadata["positional"]``)
            kwargs.pop("required", None)
            parser.add_argument(f.name, **{**kwargs, "nargs": "*"})
            continue
        parser.add_argument(flag, dest=f.name, **kwargs)
    return parser


def parse_config(cls: type[T], argv: list[str] | None = None,
                 description: str | None = None) -> T:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into an instance of dataclass ``cls``."""
    ns = build_parser(cls, description).parse_args(argv)
    values = vars(ns)
    for f in dataclasses.fields(cls):
        if isinstance(values.get(f.name), list) and typing.get_origin(
                typing.get_type_hints(cls)[f.name]) is tuple:
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def save_config(config: Any, path: str | os.PathLike[str],
                extra: dict[str, Any] | None = None) -> None:
    """Write a config dataclass (resolved values) as JSON, atomically; ``extra`` adds
    top-level keys (e.g. settings resolved while running)."""
    data = json.dumps(_jsonable({**dataclasses.asdict(config), **(extra or {})}), indent=2,
                      sort_keys=True)
    atomic_write_bytes(path, (data + "\n").encode())
