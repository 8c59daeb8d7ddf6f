"""Compiled inner loops of the exact novelty index (numba, cached on disk after the first compile).

Data layout (all arrays are owned and grown by `NoveltyIndex`):
- pool item j has `lengths[j]` token ids at `toks[offsets[j]:offsets[j] + lengths[j]]`;
- token t's postings (item id, count of t in that item) live in `arena_ids/arena_cnt` at
  `post_start[t] : post_start[t] + post_len[t]` (capacity `post_cap[t]`), in increasing item id;
- `stamp`, `done`, `acc`, `touched`, `local_idx` are per-query scratch, reset lazily by query number.

Correctness argument of `query`: ROUGE-L F = 2*LCS/(m+n) (up to float rounding), LCS <= multiset overlap.
Tokens are scanned rarest first; after scanning a prefix holding `p` of the candidate's `m` tokens,
an item not met yet shares at most m-p tokens, so its F is at most max_n 2*min(m-p, n)/(m+n)
= 2(m-p)/(2m-p); a met item with partial overlap a is bounded by 2*(a + min(m-p, n-a))/(m+n).
A bound prunes only when it is below the current k-th best exact score minus MARGIN, so float
rounding can never flip a decision or a top-k member. Survivors get the exact LCS (bit-parallel)
and rouge_score's own float expression.

Common tokens ("dense" ones, `drow[t] >= 0`) also keep one count per pool item in a uint8 column of
`dense`. Reading a long postings list costs a random access per posting; a column is read in order
with SIMD. So when the scan reaches a dense token and still cannot stop, it switches to a dense
accumulator (`dacc`), adds every remaining token at once and ends with the exact token overlap of
every item: the final pass then bounds each item by 2*overlap/(m+n), the tightest bound available,
before any LCS. Pruned and evaluated items of the sparse phase are handled as before (`done`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MARGIN = 1e-9
# Counts in a dense column saturate here; a candidate with as many copies of a token scans its postings.
DENSE_MAX = 255

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_U0 = np.uint64(0)
_U1 = np.uint64(1)


@njit(cache=True, inline="always")
def _popcount(x: np.uint64) -> int:
    x = x - ((x >> _U1) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return int((x * _H01) >> np.uint64(56))


@njit(cache=True, inline="always")
def _rouge_f(lcs: int, m: int, n: int) -> float:
    # rouge_score: precision = lcs/len(prediction), recall = lcs/len(target), 2*p*r/(p+r); symmetric in
    # IEEE arithmetic because 2*p is exact.
    if m == 0 or n == 0:
        return 0.0
    p = lcs / n
    r = lcs / m
    if p + r > 0.0:
        return 2.0 * p * r / (p + r)
    return 0.0


@njit(cache=True)
def _lcs(masks, nwords, m, local_idx, toks, start, end, v):
    """LCS length between the candidate (as match masks) and toks[start:end] (Hyyrö's bit-vector LCS)."""
    if nwords == 1:
        x = _ONES
        for pos in range(start, end):
            li = local_idx[toks[pos]]
            if li < 0:
                continue
            mw = masks[li, 0]
            u = x & mw
            x = (x + u) | (x & ~mw)
        if m < 64:
            x = x | (_ONES << np.uint64(m))
        return 64 - _popcount(x)
    for w in range(nwords):
        v[w] = _ONES
    for pos in range(start, end):
        li = local_idx[toks[pos]]
        if li < 0:
            continue
        carry = _U0
        for w in range(nwords):
            mw = masks[li, w]
            x = v[w]
            u = x & mw
            s = x + u
            c1 = s < x
            s2 = s + carry
            c2 = s2 < s
            v[w] = s2 | (x & ~mw)
            carry = _U1 if (c1 or c2) else _U0
    zeros = 0
    for w in range(nwords):
        x = v[w]
        bits = m - 64 * w
        if bits < 64:
            x = x | (_ONES << np.uint64(bits))
        zeros += 64 - _popcount(x)
    return zeros


@njit(cache=True)
def _runs(ids):
    """The distinct values of `ids` in increasing order and how often each occurs."""
    srt = np.sort(ids)
    m = srt.shape[0]
    vals = np.empty(m, np.int64)
    counts = np.empty(m, np.int64)
    n = 0
    i = 0
    while i < m:
        t = srt[i]
        c = 0
        while i < m and srt[i] == t:
            c += 1
            i += 1
        vals[n] = t
        counts[n] = c
        n += 1
    return vals[:n], counts[:n]


@njit(cache=True, inline="always")
def _better(s1, i1, s2, i2):
    return s1 > s2 or (s1 == s2 and i1 < i2)


@njit(cache=True)
def _topk_insert(out_ids, out_scores, cnt, k, j, f):
    """Insert (j, f) into the sorted top-k arrays (score desc, id asc); returns the new count."""
    if cnt == k:
        if not _better(f, j, out_scores[k - 1], out_ids[k - 1]):
            return cnt
        pos = k - 1
    else:
        pos = cnt
        cnt += 1
    while pos > 0 and _better(f, j, out_scores[pos - 1], out_ids[pos - 1]):
        out_scores[pos] = out_scores[pos - 1]
        out_ids[pos] = out_ids[pos - 1]
        pos -= 1
    out_scores[pos] = f
    out_ids[pos] = j
    return cnt


@njit(cache=True, inline="always")
def _exact(j, m, masks, nwords, local_idx, toks, offsets, lengths, vbuf, done, qid, stats):
    """rouge_score's F of the candidate (as match masks) and pool item j; marks j scored (`done`)."""
    done[j] = qid
    stats[1] += 1
    n = lengths[j]
    return _rouge_f(_lcs(masks, nwords, m, local_idx, toks, offsets[j], offsets[j] + n, vbuf), m, n)


@njit(cache=True, inline="always")
def _take(j, f, k, threshold, cnt, need, out_ids, out_scores):
    """Record item j's exact score f: into the top k (k > 0; `need` becomes the k-th best once there are
    k), or, deciding only, whether it drops the candidate. Returns (count, need, found)."""
    if k == 0:
        if f > threshold:
            out_scores[0] = f
            out_ids[0] = j
            return cnt, need, True
        return cnt, need, False
    cnt = _topk_insert(out_ids, out_scores, cnt, k, j, f)
    if cnt == k:
        need = out_scores[k - 1]
    return cnt, need, False


@njit(cache=True)
def _dense_overlaps(
    ti, nd, order, dtok, dcnt, n_items, touched, touched_n, acc, dacc, drow, dense, post, stats
):
    """dacc[:n_items] = each item's exact token overlap with the candidate: the met items' overlaps so
    far, plus every token from order[ti] on (dense columns in order, the others through their postings
    `post` = (post_start, post_len, arena_ids, arena_cnt)). m <= 255, so uint8 holds any overlap."""
    post_start, post_len, arena_ids, arena_cnt = post
    dacc[:n_items] = 0
    for idx in range(touched_n):
        j = touched[idx]
        dacc[j] = acc[j]
    for tj in range(ti, nd):
        t = dtok[order[tj]]
        c_t = dcnt[order[tj]]
        r = drow[t]
        if r >= 0 and c_t < DENSE_MAX:
            _add_column(dense[r], dacc, np.uint8(c_t), n_items)
            stats[4] += n_items
        else:
            st = post_start[t]
            ln = post_len[t]
            for q in range(st, st + ln):
                dacc[arena_ids[q]] += np.uint8(min(c_t, arena_cnt[q]))
            stats[0] += ln


@njit(cache=True)
def _collect(dacc, len8, flag, done, qid, lengths, m, lim, n_items, cand_j, cand_ub):
    """Items not scored yet whose exact overlap bound 2*ov/(m+n) is >= lim, into cand_j/cand_ub; a
    float32 pre-filter with a wide margin (it can only let too many through) skips most of the pool."""
    _flag_candidates(dacc, len8, flag, m, lim - 1e-4, n_items)
    nc = 0
    words = flag[: (n_items // 8) * 8].view(np.uint64)
    for w in range(words.shape[0] + 1):
        if w < words.shape[0]:
            if words[w] == 0:
                continue
            lo, hi = 8 * w, 8 * w + 8
        else:
            lo, hi = 8 * words.shape[0], n_items
        for j in range(lo, hi):
            if flag[j] == 0 or done[j] == qid:
                continue
            ub = 2.0 * np.int64(dacc[j]) / (m + lengths[j])
            if ub >= lim:
                cand_j[nc] = j
                cand_ub[nc] = ub
                nc += 1
    return nc


@njit(cache=True)
def _add_column(col, dacc, c8, n):
    """dacc += min(col, c8) over the first n items (a uint8 loop that LLVM vectorises)."""
    for j in range(n):
        x = col[j]
        dacc[j] += x if x < c8 else c8


@njit(cache=True)
def _flag_candidates(dacc, len8, flag, m, lim, n):
    """flag[j] = 1 when item j shares a token and 2*ov/(m+n) >= lim in float32 (len8 = min(n, 255): a
    longer item's bound is only overestimated). Branch-free, so it vectorises."""
    limf = np.float32(lim)
    mf = np.float32(m)
    two = np.float32(2.0)
    for j in range(n):
        ov = np.float32(dacc[j])
        flag[j] = np.uint8(ov > 0) & np.uint8(two * ov >= limf * (mf + np.float32(len8[j])))


@njit(cache=True)
def query(
    cand,
    k,
    threshold,
    exhaustive,
    n_items,
    lengths,
    offsets,
    toks,
    post_start,
    post_len,
    arena_ids,
    arena_cnt,
    drow,
    dense,
    dacc,
    flag,
    len8,
    stamp,
    done,
    acc,
    qid,
    touched,
    local_idx,
    out_ids,
    out_scores,
    all_scores,
    stats,
    cand_j,
    cand_ub,
    cand_h,
):
    """Score one candidate (token ids, -1 for tokens unknown to the pool) against items 0..n_items-1.

    k > 0: fills out_ids/out_scores with the exact top k (score desc, id asc) and returns the count.
    k == 0: decision only; returns 1 with the first score > threshold in out_scores[0], else 0.
    exhaustive: every item's exact score goes to all_scores[:n_items] (for the exact mean).
    stats[0] += postings scanned, stats[1] += exact LCS computed, stats[2] += bounds computed,
    stats[3] += evaluation passes, stats[4] += dense column entries read.
    cand_j/cand_ub/cand_h: scratch of pool capacity (preallocated: large per-query allocations are slow).
    """
    m = cand.shape[0]
    if n_items == 0:
        return 0
    if exhaustive:
        for j in range(n_items):
            all_scores[j] = 0.0
    if m == 0:
        # rouge_score scores an empty token list 0 against everything.
        if k == 0:
            return 0
        cnt = min(k, n_items)
        for j in range(cnt):
            out_ids[j] = j
            out_scores[j] = 0.0
        return cnt

    # Distinct known tokens with their counts, rarest (fewest postings) first. Unknown tokens (-1) sort
    # first and match nothing.
    dtok, dcnt = _runs(cand)
    unknown = 0
    if dtok[0] < 0:
        unknown = dcnt[0]
        dtok = dtok[1:]
        dcnt = dcnt[1:]
    nd = dtok.shape[0]
    df = np.empty(nd, np.int64)
    for d in range(nd):
        df[d] = post_len[dtok[d]]
    order = np.argsort(df, kind="mergesort")

    # Match masks of the candidate for the bit-parallel LCS.
    nwords = (m + 63) // 64
    masks = np.zeros((max(nd, 1), nwords), np.uint64)
    for d in range(nd):
        local_idx[dtok[d]] = d
    for pos in range(m):
        t = cand[pos]
        if t >= 0:
            li = local_idx[t]
            masks[li, pos // 64] |= _U1 << np.uint64(pos % 64)
    vbuf = np.empty(nwords, np.uint64)

    cnt = 0
    need = threshold if k == 0 else -1.0
    p = unknown  # candidate tokens already accounted for (unknown tokens match nothing)
    touched_n = 0
    dirty = False
    found = False

    ti = 0
    while True:
        last = ti == nd
        t = -1
        lt = 0
        if not last:
            t = dtok[order[ti]]
            lt = post_len[t]
        # Evaluate survivors when the next scan costs more than a pass over the met items, and at the end.
        if (last and touched_n > 0) or (dirty and not exhaustive and lt > 64 and lt > touched_n):
            dirty = False
            rem = m - p
            stats[2] += touched_n
            stats[3] += 1
            nc = 0
            keep = 0
            for idx in range(touched_n):
                j = touched[idx]
                if done[j] == qid:
                    continue
                a = acc[j]
                n = lengths[j]
                ub = 2.0 * (a + min(rem, n - a)) / (m + n)
                # A bound never rises (a + rem only falls) and `need` never falls: an item pruned once
                # stays pruned, so it leaves the met list for good (later passes are shorter).
                if exhaustive or ub >= need - MARGIN:
                    touched[keep] = j
                    keep += 1
                    cand_j[nc] = j
                    cand_ub[nc] = ub
                    nc += 1
            touched_n = keep
            # Exact scores for the best bounds first (sorted), which lifts `need` quickly; the rest are
            # only looked at in the final pass, where the bounds are tightest.
            head = 2 * max(k, 1)
            if nc > head and not exhaustive:
                # The `head` largest bounds, kept sorted by insertion (cheap: most fail the first test).
                nh = 0
                for c_i in range(nc):
                    ub = cand_ub[c_i]
                    if nh == head and ub <= cand_ub[cand_h[nh - 1]]:
                        continue
                    pos = nh if nh < head else head - 1
                    if nh < head:
                        nh += 1
                    while pos > 0 and cand_ub[cand_h[pos - 1]] < ub:
                        cand_h[pos] = cand_h[pos - 1]
                        pos -= 1
                    cand_h[pos] = c_i
                sel = cand_h[:nh]
            elif exhaustive:
                nh = nc
                sel = np.arange(nc)  # every item is scored anyway: no order needed
            else:
                nh = nc
                sel = np.argsort(-cand_ub[:nc], kind="mergesort")
            for s in range(nh):
                c_i = sel[s]
                if not exhaustive and cand_ub[c_i] < need - MARGIN:
                    break
                j = cand_j[c_i]
                if exhaustive and acc[j] <= 1:
                    # Every token was scanned, so acc is the exact overlap; sharing one token means LCS 1.
                    done[j] = qid
                    f = _rouge_f(acc[j], m, lengths[j])
                else:
                    f = _exact(j, m, masks, nwords, local_idx, toks, offsets, lengths, vbuf, done, qid, stats)
                if exhaustive:
                    all_scores[j] = f
                cnt, need, found = _take(j, f, k, threshold, cnt, need, out_ids, out_scores)
                if found:
                    break
            if last and nh < nc and not found:
                for c_i in range(nc):
                    j = cand_j[c_i]
                    if done[j] == qid or cand_ub[c_i] < need - MARGIN:
                        continue
                    f = _exact(j, m, masks, nwords, local_idx, toks, offsets, lengths, vbuf, done, qid, stats)
                    cnt, need, found = _take(j, f, k, threshold, cnt, need, out_ids, out_scores)
                    if found:
                        break
            if found:
                break
        if last:
            break
        if not exhaustive:
            rem = m - p
            bound_unseen = 2.0 * rem / (2 * m - p)
            if bound_unseen < need - MARGIN:
                ti = nd
                continue  # final evaluation pass, then stop
        c_t = dcnt[order[ti]]
        if not exhaustive and drow[t] >= 0 and c_t < DENSE_MAX and m <= DENSE_MAX:
            # Common token reached and no stop yet: exact overlaps for every item, then exact scores for
            # the items whose bound 2*ov/(m+n) reaches a level, best first, lowering the level until it
            # is at or below `need` (items under it are then out of reach). Starting at 0.5 keeps the
            # lists short while `need` is unknown (the k-th best is usually well above 0.25).
            post = (post_start, post_len, arena_ids, arena_cnt)
            _dense_overlaps(
                ti, nd, order, dtok, dcnt, n_items, touched, touched_n, acc, dacc, drow, dense, post, stats
            )
            level = 0.5
            while True:
                lim = max(need - MARGIN, level)
                nc = _collect(dacc, len8, flag, done, qid, lengths, m, lim, n_items, cand_j, cand_ub)
                stats[2] += nc
                stats[3] += 1
                sel = np.argsort(-cand_ub[:nc], kind="mergesort")
                for s in range(nc):
                    c_i = sel[s]
                    if cand_ub[c_i] < need - MARGIN:
                        break
                    j = cand_j[c_i]
                    f = _exact(j, m, masks, nwords, local_idx, toks, offsets, lengths, vbuf, done, qid, stats)
                    cnt, need, found = _take(j, f, k, threshold, cnt, need, out_ids, out_scores)
                    if found:
                        break
                if found or lim <= need - MARGIN:
                    break
                level = 0.25 if level > 0.25 else -2.0
            break
        st = post_start[t]
        for q in range(st, st + lt):
            j = arena_ids[q]
            if stamp[j] != qid:
                stamp[j] = qid
                acc[j] = 0
                touched[touched_n] = j
                touched_n += 1
            acc[j] += min(c_t, arena_cnt[q])
        stats[0] += lt
        if lt > 0:
            dirty = True
        p += c_t
        ti += 1

    for d in range(nd):
        local_idx[dtok[d]] = -1
    if k == 0:
        return 1 if found else 0
    if cnt < k:
        # Fewer than k items share a token: the rest of the top k are zero-score items in pool order.
        # (Nothing was pruned in that case, since `need` stayed below every bound: every item sharing a
        # token got its exact score and is `done`.)
        for j in range(n_items):
            if cnt == k:
                break
            if done[j] != qid:
                out_ids[cnt] = j
                out_scores[cnt] = 0.0
                cnt += 1
    return cnt


@njit(cache=True)
def add_item(
    item_toks,
    n_items,
    lengths,
    offsets,
    toks,
    post_start,
    post_len,
    post_cap,
    arena_ids,
    arena_cnt,
    arena_used,
):
    """Append item n_items; returns the new arena fill, or -1 (nothing changed) if the arena is full."""
    m = item_toks.shape[0]
    vals, counts = _runs(item_toks)
    # Space check first so that a full arena leaves everything untouched.
    need_space = 0
    for t in vals:
        if post_len[t] == post_cap[t]:
            need_space += max(4, 2 * post_cap[t])
    if arena_used + need_space > arena_ids.shape[0]:
        return -1
    start = offsets[n_items]
    for pos in range(m):
        toks[start + pos] = item_toks[pos]
    lengths[n_items] = m
    offsets[n_items + 1] = start + m
    for d in range(vals.shape[0]):
        t = vals[d]
        c = counts[d]
        ln = post_len[t]
        if ln == post_cap[t]:
            cap = max(4, 2 * post_cap[t])
            old = post_start[t]
            for q in range(ln):
                arena_ids[arena_used + q] = arena_ids[old + q]
                arena_cnt[arena_used + q] = arena_cnt[old + q]
            post_start[t] = arena_used
            post_cap[t] = cap
            arena_used += cap
        q = post_start[t] + ln
        arena_ids[q] = n_items
        arena_cnt[q] = c
        post_len[t] = ln + 1
    return arena_used


@njit(cache=True)
def add_dense(item_toks, j, min_df, share, drow, n_dense, dense, post_start, post_len, arena_ids, arena_cnt):
    """Item j (already in the flat postings) into the dense columns of its dense tokens; a token whose
    postings reach max(min_df, pool/share) becomes dense (its column filled from its postings).
    Returns the new number of dense rows, or -1 (nothing changed) when `dense` has no free row."""
    vals, counts = _runs(item_toks)
    n_pool = j + 1
    promote = 0
    for t in vals:
        if drow[t] < 0 and post_len[t] >= min_df and post_len[t] * share >= n_pool:
            promote += 1
    if n_dense + promote > dense.shape[0]:
        return -1
    for d in range(vals.shape[0]):
        t = vals[d]
        c = counts[d]
        r = drow[t]
        if r >= 0:
            dense[r, j] = min(c, DENSE_MAX)
        elif post_len[t] >= min_df and post_len[t] * share >= n_pool:
            r = n_dense
            n_dense += 1
            drow[t] = r
            st = post_start[t]
            for q in range(st, st + post_len[t]):
                dense[r, arena_ids[q]] = min(arena_cnt[q], DENSE_MAX)
    return n_dense
