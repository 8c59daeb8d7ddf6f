"""Exact ROUGE-L novelty index: the paper's filter (drop when ROUGE-L F > threshold against any pool
instruction) with the same decisions and top-k scores as rouge_score, without the quadratic loop."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from selfinstruct.novelty import NOVELTY_THRESHOLD, _kernels
from selfinstruct.novelty.rouge import tokenize
from selfinstruct.records import NoveltyVerdict, SimilarInstruction


def _grown_2d(arr: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A copy of the 2-D `arr` with at least `rows` rows and `cols` columns (doubling), new cells zero."""
    r, c = max(arr.shape[0], 8), max(arr.shape[1], 16)
    while r < rows:
        r *= 2
    while c < cols:
        c *= 2
    out = np.zeros((r, c), dtype=arr.dtype)
    out[: arr.shape[0], : arr.shape[1]] = arr
    return out


def _grown(arr: np.ndarray, size: int, fill: int | float = 0) -> np.ndarray:
    """A copy of `arr` with room for at least `size` entries (capacity doubles), new slots = fill."""
    cap = max(len(arr), 16)
    while cap < size:
        cap *= 2
    out = np.full(cap, fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


class NoveltyIndex:
    """The instruction pool plus an inverted index over its tokens.

    `check` answers, for one candidate and the current pool: keep or drop (drop when the best ROUGE-L F
    is > threshold), the `top_k` most similar pool instructions (score descending, ties by insertion
    order; pool items with score 0 fill the list when fewer share a token), and with `with_mean` the
    mean score over the whole pool (exact, but it touches every pool item: O(pool) per candidate).
    All scores are rouge_score's rougeL fmeasure floats (no stemming), bit for bit.

    `top_k=0` asks for the decision only (the fastest mode): `max_score` is then the score that caused
    the drop (the first one found above the threshold, not necessarily the maximum), or 0.0 when kept.
    """

    # A token gets a dense count column once it is in at least max(min_df, pool / share) items.
    _dense_min_df = 64
    _dense_share = 512

    def __init__(
        self, threshold: float = NOVELTY_THRESHOLD, top_k: int = 10, with_mean: bool = False
    ) -> None:
        if top_k < 0:
            raise ValueError("top_k must be >= 0")
        self.threshold = float(threshold)
        self.top_k = int(top_k)
        self.with_mean = bool(with_mean)
        self._vocab: dict[str, int] = {}
        self._texts: list[str] = []
        self._n = 0
        self._lengths = np.zeros(16, np.int64)
        self._offsets = np.zeros(17, np.int64)
        self._toks = np.zeros(256, np.int32)
        self._post_start = np.zeros(256, np.int64)
        self._post_len = np.zeros(256, np.int64)
        self._post_cap = np.zeros(256, np.int64)
        self._arena_ids = np.zeros(4096, np.int32)
        self._arena_cnt = np.zeros(4096, np.int32)
        self._arena_used = 0
        self._stamp = np.full(16, -1, np.int64)
        self._done = np.full(16, -1, np.int64)
        self._acc = np.zeros(16, np.int64)
        self._touched = np.zeros(16, np.int32)
        self._cand_j = np.zeros(16, np.int64)
        self._cand_ub = np.zeros(16, np.float64)
        self._cand_h = np.zeros(16, np.int64)
        self._local_idx = np.full(256, -1, np.int64)
        self._all_scores = np.zeros(16 if with_mean else 1, np.float64)
        self._out_ids = np.zeros(max(self.top_k, 1), np.int64)
        self._out_scores = np.zeros(max(self.top_k, 1), np.float64)
        self._qid = 0
        # Dense count columns of the common tokens (all modes but the exhaustive mean; see _kernels.query).
        self._dense_on = not self.with_mean
        self._drow = np.full(256, -1, np.int64)
        self._dense = np.zeros((8 if self._dense_on else 1, 16 if self._dense_on else 1), np.uint8)
        self._n_dense = 0
        self._dacc = np.zeros(16, np.uint8)
        self._flag = np.zeros(16, np.uint8)
        self._len8 = np.zeros(16, np.uint8)  # min(length, 255) per item, for the dense pre-filter
        # [postings scanned, exact LCS computed, bounds computed, evaluation passes, dense entries read].
        self.stats = np.zeros(5, np.int64)

    def __len__(self) -> int:
        return self._n

    @property
    def instructions(self) -> list[str]:
        """The pool, in insertion order (read-only view: do not mutate)."""
        return self._texts

    # -- public API -------------------------------------------------------------------------------

    def add(self, text: str) -> None:
        """Put `text` into the pool unconditionally (seed tasks, `--against` files)."""
        tokens = tokenize(text)
        self._add_tokens(text, tokens, self._ids(tokens))

    def check(self, text: str) -> NoveltyVerdict:
        """Verdict for `text` against the current pool; the pool is not changed."""
        return self._check_ids(self._ids(tokenize(text)))

    def check_and_add(self, text: str) -> NoveltyVerdict:
        """Verdict for `text`; when kept it joins the pool at once (later candidates see it)."""
        tokens = tokenize(text)
        ids = self._ids(tokens)
        verdict = self._check_ids(ids)
        if verdict.kept:
            self._add_tokens(text, tokens, ids)
        return verdict

    def check_and_add_many(self, texts: Iterable[str]) -> Iterator[NoveltyVerdict]:
        """`check_and_add` over `texts` in order (lazy)."""
        for text in texts:
            yield self.check_and_add(text)

    # -- internals --------------------------------------------------------------------------------

    def _ids(self, tokens: list[str]) -> np.ndarray:
        """Token ids, -1 for tokens the pool has never seen."""
        get = self._vocab.get
        return np.array([get(t, -1) for t in tokens], np.int64)

    def _check_ids(self, cand: np.ndarray) -> NoveltyVerdict:
        n = self._n
        if n == 0:
            return NoveltyVerdict(kept=True, max_score=0.0, most_similar=(), mean_score=None)
        self._qid += 1
        k = self.top_k if self.top_k > 0 else 0
        cnt = _kernels.query(
            cand,
            k,
            self.threshold,
            self.with_mean,
            n,
            self._lengths,
            self._offsets,
            self._toks,
            self._post_start,
            self._post_len,
            self._arena_ids,
            self._arena_cnt,
            self._drow,
            self._dense,
            self._dacc,
            self._flag,
            self._len8,
            self._stamp,
            self._done,
            self._acc,
            self._qid,
            self._touched,
            self._local_idx,
            self._out_ids,
            self._out_scores,
            self._all_scores,
            self.stats,
            self._cand_j,
            self._cand_ub,
            self._cand_h,
        )
        # np.mean's own arithmetic (pairwise np.add.reduce, then one division) without its Python wrapper.
        mean = float(np.add.reduce(self._all_scores[:n])) / n if self.with_mean else None
        if k == 0:
            if cnt:
                return NoveltyVerdict(kept=False, max_score=float(self._out_scores[0]), mean_score=mean)
            return NoveltyVerdict(kept=True, max_score=0.0, mean_score=mean)
        texts = self._texts
        similar = tuple(
            map(
                SimilarInstruction,
                [texts[j] for j in self._out_ids[:cnt].tolist()],
                self._out_scores[:cnt].tolist(),
            )
        )
        best = similar[0].score if similar else 0.0
        return NoveltyVerdict(
            kept=not best > self.threshold, max_score=best, most_similar=similar, mean_score=mean
        )

    def _add_tokens(self, text: str, tokens: list[str], ids: np.ndarray) -> None:
        """Append an item; `ids` are its token ids from `_ids` (-1 entries get new ids here, in place)."""
        vocab = self._vocab
        for i in np.flatnonzero(ids < 0).tolist():
            tok = tokens[i]
            t = vocab.get(tok)
            if t is None:
                t = vocab[tok] = len(vocab)
                self._reserve_vocab(t + 1)
            ids[i] = t
        self._reserve(len(vocab), len(tokens))
        while True:
            used = _kernels.add_item(
                ids,
                self._n,
                self._lengths,
                self._offsets,
                self._toks,
                self._post_start,
                self._post_len,
                self._post_cap,
                self._arena_ids,
                self._arena_cnt,
                self._arena_used,
            )
            if used >= 0:
                break
            size = 2 * len(self._arena_ids)
            self._arena_ids = _grown(self._arena_ids, size)
            self._arena_cnt = _grown(self._arena_cnt, size)
        self._arena_used = used
        if self._dense_on:
            self._add_dense(ids)
        self._len8[self._n] = min(len(tokens), 255)
        self._texts.append(text)
        self._n += 1

    def _add_dense(self, ids: np.ndarray) -> None:
        while True:
            n_dense = _kernels.add_dense(
                ids,
                self._n,
                self._dense_min_df,
                self._dense_share,
                self._drow,
                self._n_dense,
                self._dense,
                self._post_start,
                self._post_len,
                self._arena_ids,
                self._arena_cnt,
            )
            if n_dense >= 0:
                break
            self._dense = _grown_2d(self._dense, 2 * self._dense.shape[0], self._dense.shape[1])
        self._n_dense = n_dense

    def _reserve(self, vocab_size: int, n_tokens: int) -> None:
        """Grow the arrays so that one more item with n_tokens tokens and vocab_size token ids fits."""
        items = self._n + 1
        if items > len(self._lengths):
            self._lengths = _grown(self._lengths, items)
            self._offsets = _grown(self._offsets, items + 1)
            self._stamp = _grown(self._stamp, items, -1)
            self._done = _grown(self._done, items, -1)
            self._acc = _grown(self._acc, items)
            self._touched = _grown(self._touched, items)
            self._cand_j = _grown(self._cand_j, items)
            self._cand_ub = _grown(self._cand_ub, items)
            self._cand_h = _grown(self._cand_h, items)
            self._dacc = _grown(self._dacc, items)
            self._flag = _grown(self._flag, items)
            self._len8 = _grown(self._len8, items)
            if self._dense_on:
                self._dense = _grown_2d(self._dense, self._dense.shape[0], len(self._lengths))
            if self.with_mean:
                self._all_scores = _grown(self._all_scores, items)
        if len(self._offsets) < len(self._lengths) + 1:
            self._offsets = _grown(self._offsets, len(self._lengths) + 1)
        end = int(self._offsets[self._n]) + n_tokens
        if end > len(self._toks):
            self._toks = _grown(self._toks, end)
        self._reserve_vocab(vocab_size)

    def _reserve_vocab(self, vocab_size: int) -> None:
        if vocab_size > len(self._post_start):
            self._post_start = _grown(self._post_start, vocab_size)
            self._post_len = _grown(self._post_len, vocab_size)
            self._post_cap = _grown(self._post_cap, vocab_size)
            self._local_idx = _grown(self._local_idx, vocab_size, -1)
            self._drow = _grown(self._drow, vocab_size, -1)
