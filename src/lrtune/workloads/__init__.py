"""Real workloads that run offline. This release: the German→English corpus (Ding dictionary)."""

from ._ding import DING_SEARCH_PATHS, DingCorpus, SentencePair, find_ding, load_ding, parse_ding

__all__ = ["DING_SEARCH_PATHS", "DingCorpus", "SentencePair", "find_ding", "load_ding", "parse_ding"]
