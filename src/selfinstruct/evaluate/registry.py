"""The evaluations by name (a report's `kind`): how each builds its items and how its report reads.

Adding an evaluation is one module with a `load_items(ItemSpec) -> ItemSet` (see `superni.py`,
`tasks.py`) and one entry below; `evaluate.session` runs any of them the same way (a model's replies or
given predictions, the metrics, the judge, the reports) and `eval compare` pairs their reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from selfinstruct.errors import UserError
from selfinstruct.evaluate import superni, tasks
from selfinstruct.evaluate.items import ItemSet, ItemSpec


def _no_files(spec: ItemSpec) -> list[Path]:
    return []


@dataclass(frozen=True)
class Evaluation:
    name: str
    title: str  # the Markdown report's heading
    template_fields: frozenset[str]  # what a user's --template may use
    load: Callable[[ItemSpec], ItemSet]
    # The input files it reads, known before loading: an --out that is one of them is refused.
    inputs: Callable[[ItemSpec], list[Path]] = _no_files
    # An official metric per category, shown as a column of the per-category table.
    category_metric: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    metric_column: str = "official metric"


EVALUATIONS: dict[str, Evaluation] = {
    evaluation.name: evaluation
    for evaluation in (
        Evaluation(
            "superni",
            "SuperNI evaluation",
            superni.TEMPLATE_FIELDS,
            superni.load_items,
            category_metric=superni.CATEGORY_METRIC,
            metric_column="SuperNI metric",
        ),
        Evaluation(
            "tasks", "Task-file evaluation", tasks.TEMPLATE_FIELDS, tasks.load_items, tasks.source_files
        ),
    )
}


def get_evaluation(name: str) -> Evaluation:
    try:
        return EVALUATIONS[name]
    except KeyError:
        raise UserError(f"no evaluation named {name!r} (known: {', '.join(EVALUATIONS)})") from None
