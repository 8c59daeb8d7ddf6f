"""How good the data is, and keeping only the good: the paper's Table 2 questions answered by a judge (an
LLM or the model-free checks), their statistics and agreement with human raters, the quality gate, and the
contamination check against evaluation sets."""
