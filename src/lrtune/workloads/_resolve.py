"""Naming a workload: one resolver behind every entry point (Python and the command line).

A workload is named by

* a built-in name (``"translation-de-en"``, ``"digits"``, ``"charlm-shakespeare"``);
* a name an installed package registers in the entry-point group ``lrtune.workloads`` (its value is a
  ``module:NAME`` reference), e.g. in ``pyproject.toml``::

      [project.entry-points."lrtune.workloads"]
      my-task = "my_package.tasks:workload"

* a reference ``package.module:NAME`` (``NAME`` may be dotted) where NAME is a Workload class, a factory that
  returns one, or a workload instance; the current directory is importable, as with ``python -m``;
* from Python, the workload object itself.

Options (``--workload-option KEY=VALUE`` on the command line) are the keyword arguments of the class or factory;
for dataclasses and annotated factories they are checked by type. Run configs record the reference and the
options (:func:`workload_reference`), so ``lrtune train --config`` and sweep workers on other machines build the
same workload again.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import os
import sys
import traceback
import types
import typing
import weakref
from pathlib import Path
from typing import Any

from ._charlm import CharLM
from ._digits import Digits
from ._translation import Translation
from ._workload import Workload

__all__ = [
    "ENTRY_POINT_GROUP",
    "WORKLOADS",
    "batch_size_for",
    "get_workload",
    "option_kinds",
    "registered_workloads",
    "resolve_workload",
    "workload_options",
    "workload_reference",
]

ENTRY_POINT_GROUP = "lrtune.workloads"
_PROTOCOL = ("name", "step_hint", "metric", "higher_is_better", "build_model", "train_batches", "loss", "evaluate")

#: Built-in workloads by name (``lrtune workloads`` lists them; :func:`data_status` says whether the data of
#: one is present and :func:`fetch_data` gets it).
WORKLOADS: dict[str, type] = {"translation-de-en": Translation, "digits": Digits, "charlm-shakespeare": CharLM}


#: Dataclass fields of a workload that describe it rather than configure it: not options.
_DESCRIPTIVE = ("name", "metric", "higher_is_better")


def _option_fields(cls: type) -> dict[str, Any]:
    """The options of a dataclass workload: field name -> its type (``Any`` where it cannot be resolved)."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # annotations that do not resolve: accept any value
        hints = {}
    return {
        f.name: hints.get(f.name, Any)
        for f in dataclasses.fields(cls)
        if f.init and not f.name.startswith("_") and f.name not in _DESCRIPTIVE
    }


def _accepts(kind: Any, value: Any) -> bool:
    """Whether ``value`` (from JSON or a command line) fits the annotation ``kind`` (plain types, unions, lists)."""
    if kind is Any:
        return True
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(k, value) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if origin in (list, tuple, typing.Sequence) or kind in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or kind is dict:
        return isinstance(value, dict)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(kind, type):
        return isinstance(value, kind)
    return True


def _kind_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _check_options(name: str, kinds: dict[str, Any] | None, options: dict[str, Any]) -> None:
    """Unknown options and values of the wrong type raise ``ValueError`` naming them (``kinds`` None: any)."""
    if kinds is None:
        return
    unknown = sorted(set(options) - set(kinds))
    if unknown:
        raise ValueError(f"workload {name!r} has no option {unknown[0]!r}; its options: {', '.join(sorted(kinds))}")
    for key, value in options.items():
        if not _accepts(kinds[key], value):
            raise ValueError(
                f"workload {name!r} option {key}={value!r}: expected {_kind_name(kinds[key])}, "
                f"got {type(value).__name__}"
            )


def registered_workloads() -> dict[str, str]:
    """Workload names that installed packages register (entry-point group ``lrtune.workloads``) -> reference."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _import(reference: str) -> Any:
    """The object a ``module:NAME`` reference names (the current directory importable)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"workload reference {reference!r} must be package.module:NAME")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        if e.name is not None and e.name != module_name and not module_name.startswith(e.name + "."):
            raise ValueError(f"workload {reference!r}: importing {module_name!r} failed: {_where(e)}") from e
        raise ValueError(f"workload {reference!r}: cannot import {module_name!r} ({e})") from None
    except Exception as e:  # the user's module raised: one line saying what and where (the chain keeps the rest)
        raise ValueError(f"workload {reference!r}: importing {module_name!r} failed: {_where(e)}") from e
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"workload {reference!r}: {module_name!r} has no {attribute!r}")
        target = getattr(target, part)
    return target


def _where(error: BaseException) -> str:
    """``Type: message (file:line)`` of an exception, at the innermost frame that raised it outside Python's
    import machinery; a syntax error at the line it names."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{type(error).__name__}: {error.msg} ({Path(error.filename).name}:{error.lineno})"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith("<frozen ")]
    place = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{place}"


def option_kinds(target: Any) -> dict[str, Any] | None:
    """The options a workload class or factory takes, with their types (``Any`` where unannotated); None when
    it takes any (``**kwargs``) or cannot be inspected."""
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        return _option_fields(target)
    try:
        signature = inspect.signature(target)
        hints = typing.get_type_hints(getattr(target, "__init__") if isinstance(target, type) else target)  # noqa: B009
    except (TypeError, ValueError, NameError):
        return None
    kinds: dict[str, Any] = {}
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
            kinds[p.name] = hints.get(p.name, Any)
    return kinds


def _target(reference: str) -> tuple[Any, str]:
    """What a string names, and how a config records it."""
    if reference in WORKLOADS:
        return WORKLOADS[reference], reference
    registered = registered_workloads()
    if reference in registered:
        return _import(registered[reference]), reference
    if ":" in reference:
        return _import(reference), reference
    names = sorted(WORKLOADS) + sorted(registered)
    raise ValueError(
        f"workload {reference!r} is not one of {names} nor a reference package.module:NAME (a Workload class, a "
        "factory or an instance)"
    )


def resolve_workload(workload: Any, options: dict[str, Any] | None = None) -> Workload:
    """The workload that ``workload`` names (see the module doc), built with ``options``; ``ValueError`` with
    one line naming what is wrong otherwise."""
    options = dict(options or {})
    if not isinstance(workload, str):
        if options:
            raise ValueError(f"options {sorted(options)} need a workload given by name, not an object")
        _check_protocol(workload, repr(workload))
        return typing.cast(Workload, workload)
    target, reference = _target(workload)
    if isinstance(target, type) or (callable(target) and not _is_workload(target)):
        _check_options(workload, option_kinds(target), options)
        try:
            built = target(**options)
        except Exception as e:  # the user's class or factory raised: one line saying what and where
            raise ValueError(f"workload {workload!r}: building it failed: {_where(e)}") from e
    else:
        if options:
            raise ValueError(f"workload {workload!r} is an instance: it takes no options (got {sorted(options)})")
        built = target
    _check_protocol(built, workload)
    _remember(built, reference, options)
    return typing.cast(Workload, built)


def batch_size_for(workload: Any, batch_size: int | None = None) -> int:
    """``batch_size`` when given, else the workload's ``batch_hint``, else 64."""
    if batch_size is not None:
        return int(batch_size)
    hint = getattr(workload, "batch_hint", None)
    return int(hint) if isinstance(hint, int) and not isinstance(hint, bool) and hint > 0 else 64


def get_workload(name: str, **options: Any) -> Workload:
    """A workload by name or reference, with options (``get_workload("translation-de-en", preset="small")``,
    ``get_workload("my_package.tasks:workload", hidden=128)``); see :func:`resolve_workload`."""
    return resolve_workload(name, options)


def _is_workload(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in _PROTOCOL) and not isinstance(obj, type)


def _check_protocol(obj: Any, name: str) -> None:
    missing = [a for a in _PROTOCOL if not hasattr(obj, a)]
    if missing:
        raise ValueError(f"workload {name} is not a lrtune Workload: it has no {', '.join(missing)}")


# how each workload built here was named, for run configs (objects that cannot take attributes are kept by id)
_REFERENCES: dict[int, tuple[Any, str, dict[str, Any]]] = {}


def _remember(workload: Any, reference: str, options: dict[str, Any]) -> None:
    key = id(workload)
    try:
        holder: Any = weakref.ref(workload, lambda _: _REFERENCES.pop(key, None))
    except TypeError:  # not weakly referable: kept alive with its name
        holder = workload
    _REFERENCES[key] = (holder, reference, options)


def workload_reference(workload: Any) -> tuple[str, dict[str, Any]] | None:
    """How a run config names ``workload`` — (reference, options) that :func:`resolve_workload` builds it
    from again — or None when it cannot be named (an object built in a script's ``__main__``, a closure)."""
    entry = _REFERENCES.get(id(workload))
    if entry is not None:
        holder, reference, options = entry
        alive = holder() if isinstance(holder, weakref.ref) else holder
        if alive is workload:
            return reference, dict(options)
    for name, cls in WORKLOADS.items():
        if type(workload) is cls:
            return name, workload_options(workload)
    cls = type(workload)
    if (
        dataclasses.is_dataclass(workload)
        and cls.__module__ not in ("__main__", "builtins")
        and "<" not in cls.__qualname__
    ):
        return f"{cls.__module__}:{cls.__qualname__}", workload_options(workload)
    return None


def workload_options(workload: Any) -> dict[str, Any]:
    """The options of a built-in (dataclass) workload that differ from their defaults: with its name, what
    :func:`get_workload` needs to build it again (run configs record them). Only plain data is kept."""
    if not dataclasses.is_dataclass(workload):
        return {}
    out = {}
    for f in dataclasses.fields(workload):
        if not f.init or f.name.startswith("_") or f.name in _DESCRIPTIVE:
            continue
        value = getattr(workload, f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(value, tuple):
            value = list(value)
        if _is_plain(value) and value != default:
            out[f.name] = value
    return out


def _is_plain(value: Any) -> bool:
    """JSON-able data (what a run config can record); models, tensors and other objects are not."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False
