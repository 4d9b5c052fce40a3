# cython: language_level=3
"""Compiled kernels of the compression-first trainer (``algorithm="compress"``).

Three pieces of work are done here, all on raw byte buffers with the GIL
released:

* :func:`count_candidates` enumerates every repeated substring of the corpus
  (2..L bytes, optionally on UTF-8 character boundaries) with its exact
  occurrence count, using a suffix array sorted to depth L by prefix doubling
  and the LCP intervals over it. Only the ``top_k`` best candidates by
  ``count * (length - 1)`` are kept, with a running threshold, so the memory
  is O(corpus + top_k) however many distinct substrings there are.
* :class:`PieceSet` is a hash-trie over a vocabulary. It spells every piece
  with the fewest tokens of the *other* pieces (the split cost of pruning)
  and can run the §4 Viterbi over weighted chunks (used when the lead's
  ``bytepiece._core`` is not built).
"""
from libc.stdint cimport int32_t, int64_t, uint64_t, uint8_t
from libc.stdlib cimport malloc, calloc, free, qsort
from libc.string cimport memset, memcpy
from libc.math cimport INFINITY

import numpy as np



cdef inline bint is_cont(uint8_t b) noexcept nogil:
    """True for a UTF-8 continuation byte (0x80-0xBF): no character starts there."""
    return (b & 0xC0) == 0x80


# ---------------------------------------------------------------------------
# Suffix array to a bounded depth
# ---------------------------------------------------------------------------

cdef int radix_pass(const int32_t *key, const int32_t *src, int32_t *dst,
                    int64_t n, int64_t nkeys, int64_t *cnt) noexcept nogil:
    """Stable counting sort of the indexes ``src`` by ``key[src[i]]`` into ``dst``."""
    cdef int64_t i, s = 0, c
    memset(cnt, 0, (nkeys + 1) * sizeof(int64_t))
    for i in range(n):
        cnt[key[src[i]]] += 1
    for i in range(nkeys + 1):
        c = cnt[i]
        cnt[i] = s
        s += c
    for i in range(n):
        c = key[src[i]]
        dst[cnt[c]] = src[i]
        cnt[c] += 1
    return 0


cdef int suffix_sort(const uint8_t *text, const int32_t *cend, int64_t n, int depth,
                     int32_t *sa) noexcept nogil:
    """Sort the suffixes of ``text`` by their first ``depth`` bytes, each suffix
    truncated at the end of its chunk (``cend[i]``). Prefix doubling: after the
    round with step ``k`` the ranks order the first ``2k`` bytes. Returns -1 when
    out of memory."""
    cdef int32_t *rank = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int32_t *key2 = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int32_t *tmp = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int64_t *cnt = <int64_t *> malloc((n + 258) * sizeof(int64_t))
    cdef int64_t i, k = 1, r, nranks = 257
    cdef int32_t a, b
    if rank == NULL or key2 == NULL or tmp == NULL or cnt == NULL:
        free(rank); free(key2); free(tmp); free(cnt)
        return -1
    for i in range(n):
        rank[i] = text[i] + 1
        tmp[i] = <int32_t> i
    radix_pass(rank, tmp, sa, n, 257, cnt)
    # Ranks now order the first byte; after each round they order 2k bytes.
    while k < depth:
        for i in range(n):
            if i + k < cend[i]:
                key2[i] = rank[i + k]
            else:
                key2[i] = 0
        radix_pass(key2, sa, tmp, n, nranks, cnt)
        radix_pass(rank, tmp, sa, n, nranks, cnt)
        # New ranks: 1 + number of distinct (rank, key2) pairs before.
        r = 1
        tmp[sa[0]] = 1
        for i in range(1, n):
            a = sa[i - 1]
            b = sa[i]
            if rank[a] != rank[b] or key2[a] != key2[b]:
                r += 1
            tmp[b] = <int32_t> r
        memcpy(rank, tmp, n * sizeof(int32_t))
        nranks = r + 1
        k *= 2
        if r == n:
            break
    free(rank); free(key2); free(tmp); free(cnt)
    return 0


# ---------------------------------------------------------------------------
# Candidate collection with a bounded buffer
# ---------------------------------------------------------------------------

cdef struct Cand:
    double score
    int64_t count
    int32_t pos
    int32_t length


cdef struct CandBuf:
    Cand *items
    int64_t size
    int64_t capacity
    int64_t top_k
    double threshold      # candidates scoring below this cannot enter the top k


cdef int cmp_cand_desc(const void *x, const void *y) noexcept nogil:
    cdef const Cand *a = <const Cand *> x
    cdef const Cand *b = <const Cand *> y
    if a.score > b.score:
        return -1
    if a.score < b.score:
        return 1
    # Deterministic order among ties: longer first, then position.
    if a.length != b.length:
        return -1 if a.length > b.length else 1
    if a.pos != b.pos:
        return -1 if a.pos < b.pos else 1
    return 0


cdef double kth_largest(double *v, int64_t n, int64_t k) noexcept nogil:
    """The ``k``-th largest value of ``v[:n]`` (0-based; ``v`` is reordered).
    Hoare quickselect with a median-of-three pivot."""
    cdef int64_t lo = 0, hi = n - 1, i, j, mid
    cdef double pivot, t, a, b, c
    while lo < hi:
        mid = lo + (hi - lo) // 2
        a = v[lo]; b = v[mid]; c = v[hi]
        if (a >= b) == (b >= c):
            pivot = b
        elif (b >= a) == (a >= c):
            pivot = a
        else:
            pivot = c
        i = lo
        j = hi
        while i <= j:
            while v[i] > pivot:
                i += 1
            while v[j] < pivot:
                j -= 1
            if i <= j:
                t = v[i]; v[i] = v[j]; v[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return v[k]
    return v[k]


cdef void candbuf_shrink(CandBuf *buf) noexcept nogil:
    """Keep the ``top_k`` best candidates and raise the admission threshold.

    Linear time: the k-th best score is found by quickselect, then the buffer
    is compacted in place keeping its order (ties at the threshold are kept
    first come, first kept), so the result is deterministic."""
    cdef int64_t i, w = 0, ties
    cdef double thr
    cdef double *tmp
    if buf.size <= buf.top_k:
        return
    tmp = <double *> malloc(buf.size * sizeof(double))
    if tmp == NULL:
        # No memory for the fast path: fall back to sorting in place.
        qsort(buf.items, buf.size, sizeof(Cand), cmp_cand_desc)
        buf.size = buf.top_k
        buf.threshold = buf.items[buf.top_k - 1].score
        return
    for i in range(buf.size):
        tmp[i] = buf.items[i].score
    thr = kth_largest(tmp, buf.size, buf.top_k - 1)
    free(tmp)
    ties = buf.top_k
    for i in range(buf.size):
        if buf.items[i].score > thr:
            ties -= 1
    for i in range(buf.size):
        if buf.items[i].score > thr or (buf.items[i].score == thr and ties > 0):
            if buf.items[i].score == thr:
                ties -= 1
            buf.items[w] = buf.items[i]
            w += 1
    buf.size = w
    buf.threshold = thr


cdef inline int candbuf_add(CandBuf *buf, int32_t pos, int32_t length, int64_t count) noexcept nogil:
    cdef double score = <double> count * (length - 1)
    if score < buf.threshold:
        return 0
    if buf.size == buf.capacity:
        candbuf_shrink(buf)
        if score < buf.threshold:
            return 0
    buf.items[buf.size].score = score
    buf.items[buf.size].count = count
    buf.items[buf.size].pos = pos
    buf.items[buf.size].length = length
    buf.size += 1
    return 0


cdef inline bint boundary_ok(const uint8_t *text, int64_t p, int64_t m, int64_t end,
                             int mode) noexcept nogil:
    """May ``text[p:p+m]`` be a piece? mode 0: any bytes; 1: whole characters;
    2: starts on a character, may end inside one (a partial-character prefix)."""
    if mode == 0:
        return True
    if is_cont(text[p]):
        return False
    if mode == 2:
        return True
    return p + m == end or not is_cont(text[p + m])


cdef void report(CandBuf *buf, const uint8_t *text, const int32_t *cend, int64_t p,
                 int64_t lo, int64_t hi, int64_t count, int64_t min_count,
                 int mode) noexcept nogil:
    """Offer the substrings ``text[p:p+m]`` for ``lo < m <= hi`` (all with ``count``)."""
    cdef int64_t m
    if count < min_count or hi < 2:
        return
    if lo < 1:
        lo = 1
    if mode != 0 and is_cont(text[p]):
        return
    for m in range(lo + 1, hi + 1):
        if boundary_ok(text, p, m, cend[p], mode):
            candbuf_add(buf, <int32_t> p, <int32_t> m, count)


def count_candidates(const uint8_t[::1] data, const int64_t[::1] offsets,
                     const int64_t[::1] weights, int max_len, long long min_count,
                     long long top_k, int mode=1):
    """Exact counts of the best repeated substrings of a weighted chunk corpus.

    ``data[offsets[i]:offsets[i+1]]`` is chunk ``i``, occurring ``weights[i]``
    times. Every substring of 2..``max_len`` bytes inside one chunk whose
    weighted count is at least ``min_count`` is considered (``mode`` as in
    ``boundary_ok``: 1 keeps whole UTF-8 characters, 2 also allows pieces that
    end inside a character, 0 allows any bytes); the ``top_k`` with the largest
    ``count * (length - 1)`` are returned as ``(pieces, counts)``, best first.
    """
    cdef int64_t n = data.shape[0]
    cdef int64_t nchunks = offsets.shape[0] - 1
    cdef int64_t i, j, c, p, q, l, lim, top_lcp, parent, lb, cur
    cdef int64_t depth = max_len
    if nchunks < 0 or offsets[0] != 0 or offsets[nchunks] != n:
        raise ValueError("offsets must start at 0 and end at len(data)")
    if weights.shape[0] != nchunks:
        raise ValueError("need one weight per chunk")
    if n >= (1 << 31) - 2:
        raise ValueError("corpus too large for 32-bit suffix positions; sample it")
    if max_len < 2 or top_k < 1:
        return [], np.zeros(0, dtype=np.int64)
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    cdef const uint8_t *text = &data[0]
    cdef int32_t *cend = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int32_t *cid = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int32_t *sa = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int32_t *lcp = <int32_t *> malloc((n + 1) * sizeof(int32_t))
    cdef int64_t *wsum = <int64_t *> malloc((n + 1) * sizeof(int64_t))
    cdef int64_t *st_lcp = <int64_t *> malloc((depth + 2) * sizeof(int64_t))
    cdef int64_t *st_lb = <int64_t *> malloc((depth + 2) * sizeof(int64_t))
    cdef CandBuf buf
    cdef int sp
    cdef int rc = 0
    buf.top_k = top_k
    buf.capacity = 4 * top_k + 1024
    buf.size = 0
    buf.threshold = -1.0
    buf.items = <Cand *> malloc(buf.capacity * sizeof(Cand))
    try:
        if (cend == NULL or cid == NULL or sa == NULL or lcp == NULL or wsum == NULL
                or st_lcp == NULL or st_lb == NULL or buf.items == NULL):
            raise MemoryError()
        with nogil:
            for c in range(nchunks):
                for i in range(offsets[c], offsets[c + 1]):
                    cend[i] = <int32_t> offsets[c + 1]
                    cid[i] = <int32_t> c
            rc = suffix_sort(text, cend, n, depth, sa)
        if rc != 0:
            raise MemoryError()
        with nogil:
            # lcp[j] = common prefix of suffixes sa[j-1] and sa[j], capped at depth.
            lcp[0] = 0
            lcp[n] = 0
            wsum[0] = 0
            for j in range(n):
                wsum[j + 1] = wsum[j] + weights[cid[sa[j]]]
            for j in range(1, n):
                p = sa[j - 1]
                q = sa[j]
                lim = cend[p] - p
                if cend[q] - q < lim:
                    lim = cend[q] - q
                if lim > depth:
                    lim = depth
                l = 0
                while l < lim and text[p + l] == text[q + l]:
                    l += 1
                lcp[j] = <int32_t> l
            # Leaves: substrings seen at one suffix only, repeated by its chunk weight.
            for j in range(n):
                p = sa[j]
                lb = lcp[j] if lcp[j] > lcp[j + 1] else lcp[j + 1]
                lim = cend[p] - p
                if lim > depth:
                    lim = depth
                report(&buf, text, cend, p, lb, lim, weights[cid[p]], min_count, mode)
            # Internal LCP intervals (stack-based bottom-up traversal).
            sp = 0
            st_lcp[0] = 0
            st_lb[0] = 0
            for j in range(1, n + 1):
                cur = lcp[j]
                lb = j - 1
                while cur < st_lcp[sp]:
                    top_lcp = st_lcp[sp]
                    lb = st_lb[sp]
                    sp -= 1
                    parent = st_lcp[sp] if st_lcp[sp] > cur else cur
                    # suffixes lb..j-1 share exactly the lengths parent+1..top_lcp
                    report(&buf, text, cend, sa[lb], parent, top_lcp,
                           wsum[j] - wsum[lb], min_count, mode)
                if cur > st_lcp[sp]:
                    sp += 1
                    st_lcp[sp] = cur
                    st_lb[sp] = lb
            candbuf_shrink(&buf)
            qsort(buf.items, buf.size, sizeof(Cand), cmp_cand_desc)
        pieces = [(<const char *> text)[buf.items[i].pos: buf.items[i].pos + buf.items[i].length]
                  for i in range(buf.size)]
        counts = np.empty(buf.size, dtype=np.int64)
        for i in range(buf.size):
            counts[i] = buf.items[i].count
        return pieces, counts
    finally:
        free(cend); free(cid); free(sa); free(lcp); free(wsum)
        free(st_lcp); free(st_lb); free(buf.items)


# ---------------------------------------------------------------------------
# Hash-trie over a vocabulary
# ---------------------------------------------------------------------------

cdef inline uint64_t mix(uint64_t x) noexcept nogil:
    x ^= x >> 33
    x *= 0xff51afd7ed558ccdULL
    x ^= x >> 33
    return x


cdef class PieceSet:
    """A vocabulary as a trie whose edges live in one open-addressing table.

    Node 0 is the root; ``value[node]`` is the index of the piece ending at
    that node, or -1. All operations run without the GIL.
    """
    def __cinit__(self, pieces):
        """``pieces``: a list of distinct non-empty ``bytes``; piece i has index i."""
        cdef int64_t total = 0, cap = 16, i, j, node, slot, key
        cdef const uint8_t *s
        cdef int64_t m
        self.keys = NULL
        self.child = NULL
        self.value = NULL
        self.n_pieces = len(pieces)
        self._blob = b"".join(pieces)
        offs = np.zeros(self.n_pieces + 1, dtype=np.int64)
        for i, piece in enumerate(pieces):
            if not piece:
                raise ValueError("empty piece")
            total += len(piece)
            offs[i + 1] = total
        self._offsets = offs
        while cap < 2 * total + 16:
            cap *= 2
        self.mask = cap - 1
        self.keys = <int64_t *> malloc(cap * sizeof(int64_t))
        self.child = <int32_t *> malloc(cap * sizeof(int32_t))
        self.value = <int32_t *> malloc((total + 1) * sizeof(int32_t))
        if self.keys == NULL or self.child == NULL or self.value == NULL:
            raise MemoryError()
        memset(self.keys, 0xFF, cap * sizeof(int64_t))
        self.value[0] = -1
        self.n_nodes = 1
        self.max_len = 0
        cdef const uint8_t[::1] blob = self._blob
        for i in range(self.n_pieces):
            node = 0
            m = offs[i + 1] - offs[i]
            if m > self.max_len:
                self.max_len = <int32_t> m
            for j in range(offs[i], offs[i + 1]):
                key = node * 256 + blob[j]
                slot = mix(<uint64_t> key) & self.mask
                while self.keys[slot] != -1 and self.keys[slot] != key:
                    slot = (slot + 1) & self.mask
                if self.keys[slot] == -1:
                    self.keys[slot] = key
                    self.child[slot] = <int32_t> self.n_nodes
                    self.value[self.n_nodes] = -1
                    self.n_nodes += 1
                node = self.child[slot]
            if self.value[node] != -1:
                raise ValueError(f"duplicate piece {pieces[i]!r}")
            self.value[node] = <int32_t> i

    def __dealloc__(self):
        free(self.keys)
        free(self.child)
        free(self.value)

    def __len__(self):
        return self.n_pieces

    cdef int64_t step(self, int64_t node, uint8_t b) noexcept nogil:
        cdef int64_t key = node * 256 + b
        cdef int64_t slot = mix(<uint64_t> key) & self.mask
        while True:
            if self.keys[slot] == key:
                return self.child[slot]
            if self.keys[slot] == -1:
                return -1
            slot = (slot + 1) & self.mask

    cdef int64_t fewest(self, const uint8_t *t, int64_t n, int32_t exclude,
                        int32_t *dp) noexcept nogil:
        """Fewest pieces spelling ``t[:n]``, never using piece ``exclude``;
        -1 if impossible."""
        cdef int64_t s, e, node
        cdef int32_t v
        for e in range(1, n + 1):
            dp[e] = 0x3FFFFFFF
        dp[0] = 0
        for s in range(n):
            if dp[s] >= 0x3FFFFFFF:
                continue
            node = 0
            for e in range(s + 1, n + 1):
                node = self.step(node, t[e - 1])
                if node < 0:
                    break
                v = self.value[node]
                if v >= 0 and v != exclude and dp[s] + 1 < dp[e]:
                    dp[e] = dp[s] + 1
        return -1 if dp[n] >= 0x3FFFFFFF else dp[n]

    def split_cost(self, long long lo=0, long long hi=-1):
        """For pieces ``lo..hi-1`` (default all), the fewest *other* pieces that
        spell each one (-1 if none). Runs without the GIL, so threads can share
        the work.

        ``count * (split_cost - 1)`` is how many more tokens the corpus would
        need if the piece were removed and each of its uses were spelled again
        inside its own span: an upper bound of the true loss, since Viterbi may
        also re-segment across the neighbouring pieces.
        """
        if hi < 0 or hi > self.n_pieces:
            hi = self.n_pieces
        if lo < 0:
            lo = 0
        if hi < lo:
            hi = lo
        cdef int32_t[::1] out = np.empty(hi - lo, dtype=np.int32)
        cdef const uint8_t *blob = self._blob
        cdef int64_t i
        cdef int32_t *dp = <int32_t *> malloc((self.max_len + 1) * sizeof(int32_t))
        if dp == NULL:
            raise MemoryError()
        with nogil:
            for i in range(lo, hi):
                out[i - lo] = <int32_t> self.fewest(blob + self._offsets[i],
                                                    self._offsets[i + 1] - self._offsets[i],
                                                    <int32_t> i, dp)
        free(dp)
        return np.asarray(out)

    cdef int64_t viterbi_tokens(self, const double *score, const uint8_t *t, int64_t n,
                                int32_t exclude, double *best, int32_t *back) noexcept nogil:
        """Tokens of the §4 Viterbi of ``t[:n]`` never using piece ``exclude``."""
        cdef int64_t s, e, node, k = 0
        cdef int32_t v
        cdef double cand
        best[0] = 0.0
        for e in range(1, n + 1):
            best[e] = -INFINITY
        for s in range(n):
            if best[s] == -INFINITY:
                continue
            node = 0
            for e in range(s + 1, n + 1):
                node = self.step(node, t[e - 1])
                if node < 0:
                    break
                v = self.value[node]
                if v >= 0 and v != exclude:
                    cand = best[s] + score[v]
                    if cand > best[e]:
                        best[e] = cand
                        back[e] = <int32_t> s
        if best[n] == -INFINITY:
            return -1
        e = n
        while e > 0:
            k += 1
            e = back[e]
        return k

    def split_cost_viterbi(self, const double[::1] scores, long long lo=0, long long hi=-1):
        """Like :meth:`split_cost`, but the tokens the §4 Viterbi with ``scores``
        spends on each piece without it (what the tokenizer would do inside
        the piece's span)."""
        if scores.shape[0] != self.n_pieces:
            raise ValueError("need one score per piece")
        if hi < 0 or hi > self.n_pieces:
            hi = self.n_pieces
        if lo < 0:
            lo = 0
        if hi < lo:
            hi = lo
        cdef int32_t[::1] out = np.empty(hi - lo, dtype=np.int32)
        cdef const uint8_t *blob = self._blob
        cdef int64_t i
        cdef double *best = <double *> malloc((self.max_len + 1) * sizeof(double))
        cdef int32_t *back = <int32_t *> malloc((self.max_len + 1) * sizeof(int32_t))
        if best == NULL or back == NULL:
            free(best); free(back)
            raise MemoryError()
        with nogil:
            for i in range(lo, hi):
                out[i - lo] = <int32_t> self.viterbi_tokens(
                    &scores[0], blob + self._offsets[i], self._offsets[i + 1] - self._offsets[i],
                    <int32_t> i, best, back)
        free(best); free(back)
        return np.asarray(out)

    cdef void viterbi_count(self, const double *score, const uint8_t *t, int64_t n,
                            int64_t w, double *best, int32_t *back, int32_t *which,
                            int64_t *counts) noexcept nogil:
        """ALGORITHM.md §4 on ``t[:n]``, adding ``w`` to the count of each piece used."""
        cdef int64_t s, e, node
        cdef int32_t v
        cdef double cand
        best[0] = 0.0
        for e in range(1, n + 1):
            best[e] = -INFINITY
        # Visiting starts in ascending order and, from each start, ends in
        # ascending order compares the candidates of every end in ascending
        # start order, and best[s] is final before start s is visited: the
        # same result as the end-major order of §4.
        for s in range(n):
            if best[s] == -INFINITY:
                continue
            node = 0
            for e in range(s + 1, n + 1):
                node = self.step(node, t[e - 1])
                if node < 0:
                    break
                v = self.value[node]
                if v >= 0:
                    cand = best[s] + score[v]
                    if cand > best[e]:
                        best[e] = cand
                        back[e] = <int32_t> s
                        which[e] = v
        e = n
        while e > 0:
            counts[which[e]] += w
            e = back[e]

    def split_counts(self, const uint8_t[::1] data, const int64_t[::1] offsets,
                     const int64_t[::1] weights, const double[::1] scores,
                     long long lo=0, long long hi=-1):
        """Hard-EM counts over chunks ``lo..hi-1`` (default all): Viterbi of every
        chunk, adding its weight to each piece used. Same contract as
        ``bytepiece._core.Segmenter.split_counts`` (the vocabulary must hold all
        single bytes). Runs without the GIL, so threads can share the chunks."""
        cdef int64_t nchunks = offsets.shape[0] - 1
        cdef int64_t maxn = 0, i
        if scores.shape[0] != self.n_pieces:
            raise ValueError("need one score per piece")
        if weights.shape[0] != nchunks:
            raise ValueError("need one weight per chunk")
        if hi < 0 or hi > nchunks:
            hi = nchunks
        if lo < 0:
            lo = 0
        for i in range(lo, hi):
            if offsets[i + 1] - offsets[i] > maxn:
                maxn = offsets[i + 1] - offsets[i]
        cdef int64_t[::1] counts = np.zeros(self.n_pieces, dtype=np.int64)
        if hi <= lo or self.n_pieces == 0:
            return np.asarray(counts)
        cdef double *best = <double *> malloc((maxn + 1) * sizeof(double))
        cdef int32_t *back = <int32_t *> malloc((maxn + 1) * sizeof(int32_t))
        cdef int32_t *which = <int32_t *> malloc((maxn + 1) * sizeof(int32_t))
        cdef const uint8_t *base = &data[0] if data.shape[0] > 0 else NULL
        try:
            if best == NULL or back == NULL or which == NULL:
                raise MemoryError()
            with nogil:
                for i in range(lo, hi):
                    self.viterbi_count(&scores[0], base + offsets[i], offsets[i + 1] - offsets[i],
                                       weights[i], best, back, which, &counts[0])
        finally:
            free(best); free(back); free(which)
        return np.asarray(counts)
