"""A rich progress bar for the HF Trainer: steps, loss, tokens/s, ETA. Only the main process draws it."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback


class RichProgressCallback(TrainerCallback):
    """Replaces the Trainer's tqdm bar and log printer.

    Tokens/s comes from TRL's cumulative `num_tokens` log (non-padding tokens, all processes), divided by
    the wall time between two logs.
    """

    def __init__(self, console: Console | None = None, *, enabled: bool = True) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.progress: Progress | None = None
        self.task_id: Any = None
        self._last_tokens = 0.0
        self._last_time = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_tokens, self._last_time = 0.0, time.perf_counter()
        if not (self.enabled and state.is_world_process_zero):
            return
        self.progress = Progress(
            TextColumn("[bold]fine-tuning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.start()
        self.task_id = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, loss="-", tps="-"
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, completed=state.global_step)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if self.progress is None or not logs:
            return
        fields: dict[str, Any] = {}  # rich's task fields (Progress.update's **fields: Any)
        if "loss" in logs:
            fields["loss"] = f"{float(logs['loss']):.4f}"
        if "num_tokens" in logs:
            now, tokens = time.perf_counter(), float(logs["num_tokens"])
            if now > self._last_time and tokens >= self._last_tokens:
                fields["tps"] = f"{(tokens - self._last_tokens) / (now - self._last_time):,.0f}"
            self._last_tokens, self._last_time = tokens, now
        if fields:
            self.progress.update(self.task_id, **fields)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, completed=state.global_step)
            self.progress.stop()
            self.progress = None
