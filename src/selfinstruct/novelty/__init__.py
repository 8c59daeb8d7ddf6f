"""Novelty filtering: rouge_score-exact ROUGE-L (`rouge.py`) and an exact, scalable novelty index
(`index.py`), which `dedup.py` runs on any JSONL file.

This file stays light: the settings import the threshold, and the index loads compiled kernels (about a
second), which only the commands that filter should pay."""

# The paper's novelty threshold: a candidate whose ROUGE-L F with any pool instruction is above it is dropped.
# The default of `filters.novelty_threshold` (generate) and `dedup --novelty-threshold`.
NOVELTY_THRESHOLD = 0.7
