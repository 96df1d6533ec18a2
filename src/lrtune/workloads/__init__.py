"""Real workloads that run offline: data + model + loss + evaluation (the :class:`Workload` protocol)."""

from ._digits import Digits
from ._ding import DING_SEARCH_PATHS, DingCorpus, SentencePair, find_ding, load_ding, parse_ding
from ._workload import Workload

__all__ = [
    "DING_SEARCH_PATHS",
    "Digits",
    "DingCorpus",
    "SentencePair",
    "Workload",
    "find_ding",
    "load_ding",
    "parse_ding",
]
