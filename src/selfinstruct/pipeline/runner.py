"""The streaming pipeline: stage 1 keeps `concurrency` requests in flight; each accepted instruction is
classified (stage 2) and given instances (stage 3) at once, while stage 1 goes on.

Determinism: stage-1 replies are processed in request order, and request n is built from the pool as it
stood after reply n - concurrency. So a fixed seed and the same LM replies give the same run, whatever the
timing. Every step commits atomically with its done-marker in the store, so a killed run resumes where it
stopped: requests already answered come from the response cache, nothing is processed twice.

Failures: stage 2/3 work runs in tasks of one `asyncio.TaskGroup` with stage 1, so every failure is
awaited. A request that fails for good (the client has spent its retries) stops the whole run at once:
stage 1 and the other follow-ups are cancelled, and `run` raises one `LMError` naming what failed. What
was committed stays; a rerun resumes. A run never returns normally with a kept instruction unfinished.

Budget (`--max-cost`, `--max-total-tokens`): the client refuses a request that could pass it. Nothing is
cancelled then: stage 1 stops making requests, the replies already coming are processed and stored, work
that was refused stays pending, and `run` raises `BudgetExceeded` with the one line to show. A rerun with
a higher budget resumes from there (answered requests come from the cache).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from selfinstruct.config import RunSettings
from selfinstruct.errors import BudgetExceeded, LMError
from selfinstruct.lm.base import Completion, Request
from selfinstruct.lm.client import LMClient, one_error
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.pipeline.classify import Classifier
from selfinstruct.pipeline.instances import InstanceGenerator
from selfinstruct.pipeline.instructions import InstructionProcessor, build_generation_prompt
from selfinstruct.quality.rating import Judge, rate_items, unrated
from selfinstruct.records import RatingItem, Task
from selfinstruct.store import RunStore

STAGES = ("instructions", "classify", "instances")


@dataclass
class PipelineState:
    """What the progress display reads; updated by the runner only."""

    target: int
    kept: int = 0
    gen_requests_done: int = 0
    instructions_finished: int = 0
    rated: int = 0  # kept instances a judge rated in this session (`--judge`)
    stopped_reason: str = ""


def pool_seeds(seeds: Sequence[Task], classification_only: bool) -> list[Task]:
    return [t for t in seeds if t.is_classification] if classification_only else list(seeds)


class PipelineRunner:
    def __init__(
        self,
        settings: RunSettings,
        store: RunStore,
        client: LMClient,
        seeds: Sequence[Task],
        *,
        stages: Sequence[str] = STAGES,
        on_update: Callable[[PipelineState], None] | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.seeds = list(seeds)
        self.stages = set(stages)
        self.on_update = on_update or (lambda state: None)
        self.state = PipelineState(target=settings.num_instructions)
        self.seed_instructions = [
            t.instruction for t in pool_seeds(self.seeds, settings.generation.classification_only)
        ]
        self.machine_instructions: list[str] = []
        self.index = NoveltyIndex(
            threshold=settings.filters.novelty_threshold,
            top_k=settings.filters.novelty_top_k,
            with_mean=settings.filters.novelty_mean,
        )
        self.classifier = Classifier(settings, self.seeds)
        self.instance_generator = InstanceGenerator(settings, self.seeds)
        # Rates each kept instance as soon as stage 3 keeps it (only where stage 3 runs).
        self.judge = judge if "instances" in self.stages else None
        self._group: asyncio.TaskGroup | None = None
        self._stalled = 0  # stage-1 replies in a row that kept no instruction (this session)

    # -- entry point -----------------------------------------------------------------------------------
    async def run(self) -> PipelineState:
        self._load_machine_instructions()
        await self._check_budget_fits()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                unfinished = self.store.unfinished_instructions()
                for kept in unfinished:
                    self._follow_up(kept.id, kept.instruction, kept.is_classification)
                self._rate_left_over({kept.id for kept in unfinished})
                if "instructions" in self.stages:
                    await self._generate()
        except BaseExceptionGroup as group_error:
            error = one_error(group_error)
            raise error from error.__cause__  # the group itself is no news to anyone
        finally:
            self._group = None
        if self._budget_spent():
            self.on_update(self.state)
            assert self.client.budget is not None
            raise BudgetExceeded(self.client.budget.stop_line(self.state.kept))
        self._check_finished()
        self.on_update(self.state)
        return self.state

    def _budget_spent(self) -> bool:
        budget = self.client.budget
        return budget is not None and budget.stopped is not None

    async def _check_budget_fits(self) -> None:
        """A budget smaller than one request of this run is a mistake, refused before anything is sent:
        the stage-1 request where stage 1 runs, else the first follow-up of an unfinished instruction."""
        budget = self.client.budget
        if budget is None or not budget.limited:
            return
        request: Request | None = None
        if "instructions" in self.stages and self.state.kept < self.state.target:
            pending = self.store.pending_gen_requests()
            prompt = (
                pending[0].prompt
                if pending
                else build_generation_prompt(
                    self.settings,
                    self.seed_instructions,
                    self.machine_instructions,
                    self.store.next_gen_request_id(),
                ).text
            )
            request = Request(prompt, self.settings.generation_decoding(), "instructions")
        elif unfinished := self.store.unfinished_instructions():
            kept = unfinished[0]
            if kept.is_classification is None and "classify" in self.stages:
                prompt = self.classifier.prompt(kept.instruction)
                request = Request(prompt, self.settings.classify_decoding(), "classify")
            elif "instances" in self.stages:
                clf = bool(kept.is_classification)
                prompt = self.instance_generator.prompt(kept.instruction, clf)
                request = Request(prompt, self.settings.instance_decoding(clf), "instances")
        if request is not None:
            tokens = await self.client.prompt_tokens(request.prompt)
            what = {"instructions": "stage-1", "classify": "stage-2", "instances": "stage-3"}[request.stage]
            budget.check_alone(tokens, request.decoding.max_tokens, what)

    def _check_finished(self) -> None:
        """The stages asked for left no kept instruction unfinished (a guard: never a silent gap)."""
        left = self.store.count_unfinished(
            classify="classify" in self.stages, instances="instances" in self.stages
        )
        if left:
            raise LMError(f"{left} kept instructions are still unfinished")
        if self.judge is not None and (unrated := self._unrated()):
            raise LMError(f"{len(unrated)} kept instances are still unrated")

    def _load_machine_instructions(self) -> None:
        """Kept instructions in acceptance order (prompts sample from them)."""
        self.machine_instructions = [kept.instruction for kept in self.store.kept_instructions()]
        self.state.kept = len(self.machine_instructions)

    def _index_pool(self) -> None:
        """Seeds first, then kept instructions in acceptance order: the pool as it was."""
        for instruction in (*self.seed_instructions, *self.machine_instructions):
            self.index.add(instruction)

    # -- stage 1 ---------------------------------------------------------------------------------------
    def _enough(self, requests_made: int) -> bool:
        max_requests = self.settings.generation.max_requests
        if max_requests is not None and requests_made >= max_requests:
            self.state.stopped_reason = f"reached --max-requests {max_requests}"
            return True
        stall = self.settings.generation.stall_requests
        if stall is not None and self._stalled >= stall:
            # Without this a model that only repeats the pool would keep stage 1 asking for ever. Said once,
            # with the count that stopped it (the replies still in flight are processed after).
            self.state.stopped_reason = self.state.stopped_reason or (
                f"the last {self._stalled} stage-1 replies kept no new instruction (the model repeats the "
                "pool; try a higher --gen-temperature or other seeds, or raise --stall-requests)"
            )
            return True
        return self.state.kept >= self.state.target

    async def _generate(self) -> None:
        if self.state.kept >= self.state.target:
            return  # a finished run: its leftover requests wait for a larger target, not sent now
        window = self.settings.lm.concurrency
        pending = self.store.pending_gen_requests()
        in_flight: dict[int, asyncio.Task[Completion]] = {}
        first_numbers: dict[int, int] = {}
        for row in pending:
            in_flight[row.id] = asyncio.create_task(self._send_generation(row.id, row.prompt))
            first_numbers[row.id] = len(row.prompt_instructions) + 1
        head = pending[0].id if pending else self.store.next_gen_request_id()
        next_id = self.store.next_gen_request_id()
        processor = InstructionProcessor(self.settings, self.index)

        def fill_window() -> None:
            """Build, store and send requests up to `window` past the oldest unprocessed one."""
            nonlocal next_id
            # Request ids are 0, 1, 2, ... (every row takes MAX(id) + 1), so next_id is the count made.
            while next_id < head + window and not self._enough(next_id) and not self._budget_spent():
                prompt = build_generation_prompt(
                    self.settings, self.seed_instructions, self.machine_instructions, next_id
                )
                self.store.add_gen_request(next_id, prompt.instructions, prompt.text)
                in_flight[next_id] = asyncio.create_task(self._send_generation(next_id, prompt.text))
                first_numbers[next_id] = len(prompt.instructions) + 1
                next_id += 1

        try:
            with self.store.transaction():
                fill_window()
            # Building the pool's index takes a while (its first use loads the compiled kernels) and no
            # reply can be processed before it: build it in a thread while the first requests travel.
            await asyncio.to_thread(self._index_pool)
            while self.state.kept < self.state.target and head in in_flight:
                try:
                    completion = await in_flight.pop(head)
                except BudgetExceeded:
                    # Refused, as is every request after it: those sent before it have been processed.
                    break
                records, kept = processor.process(
                    completion.text, completion.finish_reason, first_numbers.pop(head)
                )
                self._stalled = 0 if kept else self._stalled + 1
                # The reply's results and the requests it lets through the window: one commit.
                with self.store.transaction():
                    new_ids = self.store.finish_gen_request(
                        head, completion.text, completion.finish_reason, records, kept
                    )
                    for instruction_id, record in zip(
                        new_ids, (r for r in records if r.position in kept), strict=True
                    ):
                        self.machine_instructions.append(record.instruction)
                        self._follow_up(instruction_id, record.instruction, None)
                    self.state.kept = len(self.machine_instructions)
                    self.state.gen_requests_done += 1
                    head += 1
                    fill_window()
                self.on_update(self.state)
                # Awaiting a reply that is already in does not yield: without this, a burst of replies
                # would be processed back to back while the requests just created wait to be sent.
                await asyncio.sleep(0)
        finally:
            # Requests beyond the target stay 'pending' in the store: a later, larger run resends them.
            for task in in_flight.values():
                task.cancel()
            await asyncio.gather(*in_flight.values(), return_exceptions=True)

    async def _send_generation(self, request_id: int, prompt: str) -> Completion:
        # A per-request sampling seed: reproducible where the backend honours it, and distinct cache keys.
        decoding = dataclasses.replace(
            self.settings.generation_decoding(), seed=self.settings.seed * 1_000_003 + request_id
        )
        return await self.client.complete(Request(prompt, decoding, stage="instructions"))

    # -- stages 2 and 3 --------------------------------------------------------------------------------
    def _follow_up(self, instruction_id: int, instruction: str, is_classification: bool | None) -> None:
        if not ({"classify", "instances"} & self.stages):
            return
        assert self._group is not None, "follow-ups are made inside run()"
        self._group.create_task(self._finish_instruction(instruction_id, instruction, is_classification))

    async def _finish_instruction(
        self, instruction_id: int, instruction: str, is_classification: bool | None
    ) -> None:
        try:
            await self._finish(instruction_id, instruction, is_classification)
        except BudgetExceeded:
            return  # left pending for a rerun with a higher budget; the run stops once all is in
        except LMError as exc:
            raise LMError(f"instruction {instruction_id}: {exc}") from exc

    async def _finish(self, instruction_id: int, instruction: str, is_classification: bool | None) -> None:
        if is_classification is None:
            if "classify" not in self.stages:
                return
            reply = await self.client.complete(
                Request(self.classifier.prompt(instruction), self.settings.classify_decoding(), "classify")
            )
            is_classification = self.classifier.parse(reply.text)
            self.store.set_classification(instruction_id, is_classification, reply.text)
        if "instances" not in self.stages:
            return
        if not self.store.instances_pending(instruction_id):
            return
        prompt = self.instance_generator.prompt(instruction, is_classification)
        reply = await self.client.complete(
            Request(prompt, self.settings.instance_decoding(is_classification), "instances")
        )
        records = self.instance_generator.process(
            instruction_id, reply.text, reply.finish_reason, is_classification
        )
        self.store.finish_instances(instruction_id, reply.text, reply.finish_reason, records)
        self.state.instructions_finished += 1
        self.on_update(self.state)
        if self.judge is not None:
            await self._rate(self.store.rating_items(self.store.kept_instance_ids(instruction_id)))

    # -- rating (--judge) ------------------------------------------------------------------------------
    def _unrated(self) -> list[RatingItem]:
        assert self.judge is not None
        return unrated(self.store, self.judge.name, self.store.rating_items())

    def _rate_left_over(self, unfinished: set[int]) -> None:
        """On resume: rate the kept instances of finished instructions that a judge has not rated yet (those
        of unfinished instructions are rated when their stage 3 is done)."""
        if self.judge is None:
            return
        left = [item for item in self._unrated() if item.instruction_id not in unfinished]
        if left:
            assert self._group is not None
            self._group.create_task(self._rate(left))

    async def _rate(self, items: Sequence[RatingItem]) -> None:
        assert self.judge is not None

        def counted(item: RatingItem, verdict: object) -> None:
            self.state.rated += 1
            self.on_update(self.state)

        try:
            await rate_items(self.judge, items, self.store, on_done=counted)
        except BudgetExceeded:
            return  # the items left unrated are rated by a rerun with a higher budget
