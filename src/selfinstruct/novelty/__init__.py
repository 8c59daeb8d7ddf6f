"""Novelty filtering: rouge_score-exact ROUGE-L and an exact, scalable novelty index."""

from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.novelty.rouge import lcs_length, rouge_l_f, tokenize

__all__ = ["NoveltyIndex", "lcs_length", "rouge_l_f", "tokenize"]
