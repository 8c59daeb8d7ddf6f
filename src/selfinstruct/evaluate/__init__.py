"""Evaluation as in the paper (§4): SuperNI zero-shot ROUGE-L / exact match (`superni`, `metrics`), any
seed-format task file with an optional A-D LLM judge (`tasks`, `judge`), reports (`report`) and paired
bootstrap comparisons (`compare`). `registry` names the evaluations, `session` runs one end to end, and
`run` drives generation through the LM client and its cache."""
