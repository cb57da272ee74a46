"""The declared-constraint engine of zoolite's options: each option is a dataclass field that declares
its default, help, command-line flag and constraint (:func:`option`), and one function enforces them
all (:func:`check`), so every message reads the same way: ``--epochs 0: must be above 0``.

A constraint is a :class:`Range` of numbers or any other rule, a :class:`Check`. The options
themselves are declared in :mod:`zoolite.config`; the CLI builds its flags from the same fields
(:func:`fields_with_flags`, :func:`flag_of`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from zoolite.errors import ZooliteError


@dataclass(frozen=True)
class Range:
    """Numbers between ``low`` and ``high``; ``closed`` says which ends are allowed."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False  # infinity too: results.json is standard JSON, which has none
        if self.low is not None and not (value >= self.low if self.closed in ("both", "left") else value > self.low):
            return False
        return self.high is None or (value <= self.high if self.closed in ("both", "right") else value < self.high)

    def describe(self) -> str:
        if self.high is None:
            return f"at least {self.low:g}" if self.closed in ("both", "left") else f"above {self.low:g}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class Check:
    """Any other rule: ``accepts(value)`` and what it requires, for the message."""

    accepts: Callable[[Any], bool]
    describe: Callable[[], str]


def option(default, help: str, constraint=None, flag: str | None = None, optional: bool = False,
           parse: Callable[[str], Any] | None = None, cli: bool = True, renamed_from: str | None = None):
    """A dataclass field with its help, command-line flag (default ``--field-name``), constraint,
    whether ``None`` is allowed (no limit / automatic), how to parse the flag's text, and the flag's
    old name, still taken with a deprecation line."""
    metadata = {"help": help, "constraint": constraint, "flag": flag, "optional": optional, "parse": parse,
                "cli": cli, "renamed_from": renamed_from}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def check(instance) -> None:
    """Enforce the declared constraint of every field of the dataclass ``instance``."""
    for f in dataclasses.fields(instance):
        constraint = f.metadata.get("constraint")
        value = getattr(instance, f.name)
        if constraint is None or (value is None and f.metadata.get("optional")):
            continue
        if not constraint.accepts(value):
            raise ZooliteError(f"{flag_of(f)} {_show(value)}: must be {constraint.describe()}"
                               + ("; or leave it out" if f.metadata.get("optional") else ""))


def one_of(*choices: str) -> Check:
    return Check(lambda value: value in choices, lambda: "one of: " + ", ".join(choices))


def fields_with_flags(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", False)]
