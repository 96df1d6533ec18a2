"""Real workloads that run offline: data + model + loss + evaluation (the :class:`Workload` protocol)."""

import dataclasses
import types
import typing
from typing import Any

from ._adapter import ModelWorkload
from ._charlm import CharLM, find_shakespeare
from ._data import DataStatus, FetchError, FetchResult, data_status, fetch_data
from ._digits import Digits
from ._ding import DING_SEARCH_PATHS, DingCorpus, SentencePair, find_ding, load_ding, parse_ding
from ._parallel import load_parallel
from ._paths import DataPathError, cache_dir, data_dir
from ._translation import Translation, bleu
from ._workload import Workload

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


def get_workload(name: str, **options: Any) -> Workload:
    """A built-in workload by name, with options (``get_workload("translation-de-en", preset="small")``); an
    unknown option, or a value of the wrong type, raises ``ValueError`` naming it."""
    if name not in WORKLOADS:
        raise ValueError(f"workload {name!r} is not one of {sorted(WORKLOADS)}")
    cls = WORKLOADS[name]
    known = _option_fields(cls)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"workload {name!r} has no option {unknown[0]!r}; its options: {', '.join(sorted(known))}")
    for key, value in options.items():
        if not _accepts(known[key], value):
            raise ValueError(
                f"workload {name!r} option {key}={value!r}: expected {_kind_name(known[key])}, "
                f"got {type(value).__name__}"
            )
    workload: Workload = cls(**options)
    return workload


def workload_options(workload: Workload) -> dict[str, Any]:
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


__all__ = [
    "DING_SEARCH_PATHS",
    "WORKLOADS",
    "CharLM",
    "DataPathError",
    "DataStatus",
    "Digits",
    "DingCorpus",
    "FetchError",
    "FetchResult",
    "ModelWorkload",
    "SentencePair",
    "Translation",
    "Workload",
    "bleu",
    "cache_dir",
    "data_dir",
    "data_status",
    "fetch_data",
    "find_ding",
    "find_shakespeare",
    "get_workload",
    "load_ding",
    "load_parallel",
    "parse_ding",
    "workload_options",
]
