"""Real workloads that run offline: data + model + loss + evaluation (the :class:`Workload` protocol)."""

from ._adapter import ModelWorkload
from ._charlm import CharLM, find_shakespeare
from ._data import DataStatus, FetchError, FetchResult, data_status, fetch_data
from ._digits import Digits
from ._ding import DING_SEARCH_PATHS, DingCorpus, SentencePair, find_ding, load_ding, parse_ding
from ._parallel import load_parallel
from ._paths import DataPathError, cache_dir, data_dir
from ._resolve import (
    ENTRY_POINT_GROUP,
    WORKLOADS,
    batch_size_for,
    get_workload,
    option_kinds,
    registered_workloads,
    resolve_workload,
    workload_options,
    workload_reference,
)
from ._translation import Translation, bleu
from ._workload import Workload

__all__ = [
    "DING_SEARCH_PATHS",
    "ENTRY_POINT_GROUP",
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
    "batch_size_for",
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
    "option_kinds",
    "parse_ding",
    "registered_workloads",
    "resolve_workload",
    "workload_options",
    "workload_reference",
]
