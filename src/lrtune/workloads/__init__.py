"""Real workloads that run offline: data + model + loss + evaluation (the :class:`Workload` protocol)."""

from ._charlm import CharLM, find_shakespeare
from ._digits import Digits
from ._ding import DING_SEARCH_PATHS, DingCorpus, SentencePair, find_ding, load_ding, parse_ding
from ._translation import Translation, bleu
from ._workload import Workload

#: Built-in workloads by name (``lrtune workloads`` lists them).
WORKLOADS: dict[str, type] = {"translation-de-en": Translation, "digits": Digits, "charlm-shakespeare": CharLM}


def get_workload(name: str) -> Workload:
    """A built-in workload by name."""
    if name not in WORKLOADS:
        raise ValueError(f"workload {name!r} is not one of {sorted(WORKLOADS)}")
    workload: Workload = WORKLOADS[name]()
    return workload


__all__ = [
    "DING_SEARCH_PATHS",
    "WORKLOADS",
    "CharLM",
    "Digits",
    "DingCorpus",
    "SentencePair",
    "Translation",
    "Workload",
    "bleu",
    "find_ding",
    "find_shakespeare",
    "get_workload",
    "load_ding",
    "parse_ding",
]
