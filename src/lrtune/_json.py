"""Strict JSON for every file lrtune writes: non-finite numbers become ``null``, and whole files are replaced
atomically (a temporary file in the same folder, then a rename), so a crash never leaves half a file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["dumps", "read_jsonl", "strict", "write_json"]


def strict(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±Inf) replaced by None, recursively: ``Infinity`` and ``NaN``
    are not JSON, and strict readers (JavaScript's ``JSON.parse``, ``jq``) reject them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict` ``(value)``; refuses anything else that is not JSON."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 2) -> Path:
    """Write ``value`` as strict JSON to ``path``, atomically (readers see the old file or the new one)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(dumps(value, indent=indent) + "\n", encoding="utf-8")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_jsonl(path: str | os.PathLike[str], *, torn: str = "raise") -> tuple[list[dict[str, Any]], str | None]:
    """The records of a JSON-lines file (``metrics.jsonl``, ``diagnostics.jsonl``: one object with a ``step`` per
    line) and, when a line is torn (a crash in the middle of writing it), a note naming the file and the line,
    which is left out. A torn line anywhere but the last raises ``ValueError`` (the file is corrupt, not just cut
    short) unless ``torn="skip"``."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    out: list[dict[str, Any]] = []
    bad: list[int] = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
            if not isinstance(value, dict) or "step" not in value:
                raise ValueError("not a record with a step")
        except ValueError as e:
            if number == len(lines) or torn != "raise":
                bad.append(number)
                continue
            raise ValueError(f"{path}: line {number} is not a JSON record ({e}); the file is corrupt") from None
        out.append(value)
    if not bad:
        return out, None
    which = f"line {bad[0]} is" if len(bad) == 1 else f"lines {', '.join(map(str, bad))} are"
    return out, f"{path}: {which} torn (cut short by a crash while writing) and left out"
