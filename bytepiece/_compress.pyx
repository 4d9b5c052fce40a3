# cython: language_level=3
"""Compiled kernels of the compression-first trainer (``algorithm="compress"``).

All work is done on raw byte buffers with the GIL released (no Python object
per byte), so ``bytepiece.compress`` can share it among threads:

* :func:`count_candidates` enumerates every repeated substring of the corpus
  (2..L bytes, optionally on UTF-8 character boundaries) with its exact
  weighted occurrence count, using a suffix array sorted to depth L by prefix
  doubling and one pass over its LCP intervals. Only the ``top_k`` best
  candidates by ``count * (length - 1)`` are kept, behind a rising admission
  threshold, so memory is about 21 bytes per corpus byte plus 16 per kept
  candidate however many distinct substrings there are.
* :func:`count_chars` counts the multi-byte characters (character coverage).
* :class:`PieceSet` is a hash-trie over a vocabulary (one 64-bit cell per
  edge). It gives every piece's split cost (the tokens needed without it:
  fewest pieces, or what the §4 Viterbi spends), runs the §4 Viterbi over
  weighted chunks (hard EM; bit-identical to ``bytepiece._core`` and leaner to
  build for huge candidate sets) and forward-backward (soft EM).
"""
from bytepiece._core cimport logaddexp
from libc.stdint cimport int32_t, int64_t, uint64_t, uint8_t, uint32_t
from libc.stdlib cimport malloc, free, qsort, realloc
from libc.string cimport memset, memcpy
from libc.math cimport INFINITY, exp, log1p

import numpy as np


cdef inline bint is_cont(uint8_t b) noexcept nogil:
    """True for a UTF-8 continuation byte (0x80-0xBF): no character starts there."""
    return (b & 0xC0) == 0x80


# ---------------------------------------------------------------------------
# Suffix array to a bounded depth
# ---------------------------------------------------------------------------
#
# Memory: besides the corpus, one int32 per byte for the chunk id and one for
# the suffix array; sorting needs three more int32 per byte for a moment.
# Nothing else grows with the corpus.

cdef inline int32_t second_key(const int32_t *rank, const int32_t *cid, const int64_t *offsets,
                               int64_t i, int64_t k) noexcept nogil:
    """Rank of the suffix ``k`` bytes after ``i``, or 0 past the end of its chunk."""
    if i + k < offsets[cid[i] + 1]:
        return rank[i + k]
    return 0


cdef int suffix_sort(const uint8_t *text, const int32_t *cid, const int64_t *offsets,
                     int64_t n, int depth, int32_t *sa) noexcept nogil:
    """Sort the suffixes of ``text`` by their first ``depth`` bytes, each suffix
    truncated at the end of its chunk. Prefix doubling with two stable counting
    sorts per round: after the round with step ``k`` the ranks order the first
    ``2k`` bytes. Returns -1 when out of memory."""
    cdef int32_t *rank = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int32_t *tmp = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int64_t ncnt = (n if n > 65792 else 65792) + 258
    cdef int32_t *cnt = <int32_t *> malloc(ncnt * sizeof(int32_t))
    cdef int64_t i, k = 2, r, nranks = 65793, s, c
    cdef int32_t a, b, key
    if rank == NULL or tmp == NULL or cnt == NULL:
        free(rank); free(tmp); free(cnt)
        return -1
    # first two bytes at once: key = byte0 * 257 + (byte1 + 1, or 0 past the chunk end)
    memset(cnt, 0, (nranks + 1) * sizeof(int32_t))
    for i in range(n):
        if i + 1 < offsets[cid[i] + 1]:
            rank[i] = 1 + text[i] * 257 + text[i + 1] + 1
        else:
            rank[i] = 1 + text[i] * 257
        cnt[rank[i]] += 1
    s = 0
    for i in range(nranks + 1):
        c = cnt[i]; cnt[i] = <int32_t> s; s += c
    for i in range(n):
        sa[cnt[rank[i]]] = <int32_t> i
        cnt[rank[i]] += 1
    while k < depth:
        # stable sort by the second key (sa -> tmp), then by the first (tmp -> sa)
        memset(cnt, 0, (nranks + 1) * sizeof(int32_t))
        for i in range(n):
            cnt[second_key(rank, cid, offsets, i, k)] += 1
        s = 0
        for i in range(nranks + 1):
            c = cnt[i]; cnt[i] = <int32_t> s; s += c
        for i in range(n):
            key = second_key(rank, cid, offsets, sa[i], k)
            tmp[cnt[key]] = sa[i]
            cnt[key] += 1
        memset(cnt, 0, (nranks + 1) * sizeof(int32_t))
        for i in range(n):
            cnt[rank[i]] += 1
        s = 0
        for i in range(nranks + 1):
            c = cnt[i]; cnt[i] = <int32_t> s; s += c
        for i in range(n):
            key = rank[tmp[i]]
            sa[cnt[key]] = tmp[i]
            cnt[key] += 1
        # new ranks: 1 + number of distinct (rank, second key) pairs before
        r = 1
        tmp[sa[0]] = 1
        for i in range(1, n):
            a = sa[i - 1]
            b = sa[i]
            if rank[a] != rank[b] or second_key(rank, cid, offsets, a, k) != second_key(rank, cid, offsets, b, k):
                r += 1
            tmp[b] = <int32_t> r
        memcpy(rank, tmp, n * sizeof(int32_t))
        nranks = r + 1
        k *= 2
        if r == n:
            break
    free(rank); free(tmp); free(cnt)
    return 0


# ---------------------------------------------------------------------------
# Candidate collection with a bounded buffer
# ---------------------------------------------------------------------------

cdef struct Cand:
    int64_t count
    int32_t pos
    int32_t length


cdef struct CandBuf:
    Cand *items
    int64_t size
    int64_t capacity
    int64_t top_k
    int64_t threshold      # candidates scoring below this cannot enter the top k


cdef inline int64_t cand_score(const Cand *c) noexcept nogil:
    """Tokens saved if every occurrence became one token: ``count * (length - 1)``."""
    return c.count * (c.length - 1)


cdef int cmp_cand_desc(const void *x, const void *y) noexcept nogil:
    cdef const Cand *a = <const Cand *> x
    cdef const Cand *b = <const Cand *> y
    cdef int64_t sa = cand_score(a), sb = cand_score(b)
    if sa != sb:
        return -1 if sa > sb else 1
    # Deterministic order among ties: longer first, then position.
    if a.length != b.length:
        return -1 if a.length > b.length else 1
    if a.pos != b.pos:
        return -1 if a.pos < b.pos else 1
    return 0


cdef int64_t kth_largest(int64_t *v, int64_t n, int64_t k) noexcept nogil:
    """The ``k``-th largest value of ``v[:n]`` (0-based; ``v`` is reordered).
    Hoare quickselect with a median-of-three pivot."""
    cdef int64_t lo = 0, hi = n - 1, i, j, mid
    cdef int64_t pivot, t, a, b, c
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
    cdef int64_t i, w = 0, ties, thr, sc
    cdef int64_t *tmp
    if buf.size <= buf.top_k:
        return
    tmp = <int64_t *> malloc(buf.size * sizeof(int64_t))
    if tmp == NULL:
        # No memory for the fast path: fall back to sorting in place.
        qsort(buf.items, buf.size, sizeof(Cand), cmp_cand_desc)
        buf.size = buf.top_k
        buf.threshold = cand_score(&buf.items[buf.top_k - 1])
        return
    for i in range(buf.size):
        tmp[i] = cand_score(&buf.items[i])
    thr = kth_largest(tmp, buf.size, buf.top_k - 1)
    free(tmp)
    ties = buf.top_k
    for i in range(buf.size):
        if cand_score(&buf.items[i]) > thr:
            ties -= 1
    for i in range(buf.size):
        sc = cand_score(&buf.items[i])
        if sc > thr or (sc == thr and ties > 0):
            if sc == thr:
                ties -= 1
            buf.items[w] = buf.items[i]
            w += 1
    buf.size = w
    buf.threshold = thr


cdef inline int candbuf_add(CandBuf *buf, int32_t pos, int32_t length, int64_t count) noexcept nogil:
    if count * (length - 1) < buf.threshold:
        return 0
    if buf.size == buf.capacity:
        candbuf_shrink(buf)
        if count * (length - 1) < buf.threshold:
            return 0
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


cdef void report(CandBuf *buf, const uint8_t *text, int64_t end, int64_t p,
                 int64_t lo, int64_t hi, int64_t count, int64_t min_count,
                 int mode) noexcept nogil:
    """Offer the substrings ``text[p:p+m]`` for ``lo < m <= hi`` (all with ``count``);
    ``end`` is the end of the chunk holding ``p``."""
    cdef int64_t m
    if count < min_count or hi < 2:
        return
    if lo < 1:
        lo = 1
    if mode != 0 and is_cont(text[p]):
        return
    for m in range(lo + 1, hi + 1):
        if boundary_ok(text, p, m, end, mode):
            candbuf_add(buf, <int32_t> p, <int32_t> m, count)


cdef inline int64_t common_prefix(const uint8_t *text, const int32_t *cid, const int64_t *offsets,
                                  int64_t p, int64_t q, int64_t depth) noexcept nogil:
    """Common prefix of the suffixes at ``p`` and ``q`` within their chunks, capped at ``depth``."""
    cdef int64_t lim = offsets[cid[p] + 1] - p, l = 0
    if offsets[cid[q] + 1] - q < lim:
        lim = offsets[cid[q] + 1] - q
    if lim > depth:
        lim = depth
    while l < lim and text[p + l] == text[q + l]:
        l += 1
    return l


def count_candidates(const uint8_t[::1] data, const int64_t[::1] offsets,
                     const int64_t[::1] weights, int max_len, long long min_count,
                     long long top_k, int mode=1):
    """Exact counts of the best repeated substrings of a weighted chunk corpus.

    ``data[offsets[i]:offsets[i+1]]`` is chunk ``i``, occurring ``weights[i]``
    times. Every substring of 2..``max_len`` bytes inside one chunk whose
    weighted count is at least ``min_count`` is considered (``mode``: 1 keeps
    whole UTF-8 characters, 2 also allows pieces that end inside a character,
    0 allows any bytes); the ``top_k`` with the largest
    ``count * (length - 1)`` are returned as ``(pieces, counts)``, best first.

    One pass over the suffix array visits every LCP interval (a substring
    shared by several suffixes: its count is the summed weight of the
    interval) and every leaf (a substring seen at one position only, counted
    with its chunk's weight), so each distinct substring is offered once.
    """
    cdef int64_t n = data.shape[0]
    cdef int64_t nchunks = offsets.shape[0] - 1
    cdef int64_t i, j, c, p, lim, top_lcp, parent, lb, cur, prev_lcp, next_lcp, w, wsum, lb_wsum
    cdef int64_t depth = max_len
    if nchunks < 0 or offsets[0] != 0 or offsets[nchunks] != n:
        raise ValueError("offsets must start at 0 and end at len(data)")
    if weights.shape[0] != nchunks:
        raise ValueError("need one weight per chunk")
    if n >= (1 << 31) - 300:
        raise ValueError("corpus too large for 32-bit suffix positions; sample it")
    if max_len < 2 or top_k < 1 or n == 0:
        return [], np.zeros(0, dtype=np.int64)
    cdef const uint8_t *text = &data[0]
    cdef const int64_t *offs = &offsets[0]
    cdef int32_t *cid = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int32_t *sa = <int32_t *> malloc(n * sizeof(int32_t))
    cdef int64_t *st_lcp = <int64_t *> malloc((depth + 2) * sizeof(int64_t))
    cdef int64_t *st_lb = <int64_t *> malloc((depth + 2) * sizeof(int64_t))
    cdef int64_t *st_w = <int64_t *> malloc((depth + 2) * sizeof(int64_t))
    cdef CandBuf buf
    cdef int sp
    cdef int rc = 0
    buf.top_k = top_k
    buf.capacity = 2 * top_k + 1024
    buf.size = 0
    buf.threshold = -1
    buf.items = NULL
    try:
        if cid == NULL or sa == NULL or st_lcp == NULL or st_lb == NULL or st_w == NULL:
            raise MemoryError()
        with nogil:
            for c in range(nchunks):
                for i in range(offs[c], offs[c + 1]):
                    cid[i] = <int32_t> c
            rc = suffix_sort(text, cid, offs, n, depth, sa)
        if rc != 0:
            raise MemoryError()
        buf.items = <Cand *> malloc(buf.capacity * sizeof(Cand))
        if buf.items == NULL:
            raise MemoryError()
        with nogil:
            # One left-to-right pass; lcp between sa[j-1] and sa[j] computed on
            # the fly; wsum = summed weight of sa[0..j-1]; the stack holds the
            # open LCP intervals (lcp, left bound, wsum at the left bound).
            sp = 0
            st_lcp[0] = 0
            st_lb[0] = 0
            st_w[0] = 0
            prev_lcp = 0
            wsum = 0
            for j in range(n + 1):
                if j < n - 1:
                    next_lcp = common_prefix(text, cid, offs, sa[j], sa[j + 1], depth)
                else:
                    next_lcp = 0
                if j < n:
                    # leaf: lengths longer than both neighbouring lcps occur only here
                    p = sa[j]
                    w = weights[cid[p]]
                    lim = offs[cid[p] + 1] - p
                    if lim > depth:
                        lim = depth
                    report(&buf, text, offs[cid[p] + 1], p,
                           prev_lcp if prev_lcp > next_lcp else next_lcp, lim, w, min_count, mode)
                    # close the intervals that end at j (lcp(j, j+1) is smaller)
                    wsum += w
                    cur = next_lcp
                else:
                    cur = 0
                # intervals are closed after suffix j is added: [lb, j]
                lb = j
                lb_wsum = wsum - w if j < n else wsum
                while cur < st_lcp[sp]:
                    top_lcp = st_lcp[sp]
                    lb = st_lb[sp]
                    lb_wsum = st_w[sp]
                    sp -= 1
                    parent = st_lcp[sp] if st_lcp[sp] > cur else cur
                    # suffixes lb..j share exactly the lengths parent+1..top_lcp
                    report(&buf, text, offs[cid[sa[lb]] + 1], sa[lb], parent, top_lcp,
                           wsum - lb_wsum, min_count, mode)
                if cur > st_lcp[sp]:
                    sp += 1
                    st_lcp[sp] = cur
                    st_lb[sp] = lb
                    st_w[sp] = lb_wsum
                prev_lcp = next_lcp
            candbuf_shrink(&buf)
            qsort(buf.items, buf.size, sizeof(Cand), cmp_cand_desc)
        pieces = [(<const char *> text)[buf.items[i].pos: buf.items[i].pos + buf.items[i].length]
                  for i in range(buf.size)]
        counts = np.empty(buf.size, dtype=np.int64)
        for i in range(buf.size):
            counts[i] = buf.items[i].count
        return pieces, counts
    finally:
        free(cid); free(sa); free(st_lcp); free(st_lb); free(st_w); free(buf.items)


def count_chars(const uint8_t[::1] data, const int64_t[::1] offsets,
                const int64_t[::1] weights):
    """Weighted count of every multi-byte UTF-8 character: ``(code points, counts)``.

    Malformed sequences are skipped (training text comes from ``str`` and is
    valid UTF-8 anyway)."""
    cdef int64_t nchunks = offsets.shape[0] - 1
    cdef int64_t c, i, end, k, m, w
    cdef uint32_t cp
    cdef uint8_t b
    if weights.shape[0] != nchunks:
        raise ValueError("need one weight per chunk")
    table = np.zeros(0x110000, dtype=np.int64)
    cdef int64_t[::1] t = table
    with nogil:
        for c in range(nchunks):
            w = weights[c]
            i = offsets[c]
            end = offsets[c + 1]
            while i < end:
                b = data[i]
                if b < 0x80:
                    i += 1
                    continue
                if b >= 0xF0 and b <= 0xF4:
                    m = 4
                    cp = b & 0x07
                elif b >= 0xE0 and b < 0xF0:
                    m = 3
                    cp = b & 0x0F
                elif b >= 0xC2 and b < 0xE0:
                    m = 2
                    cp = b & 0x1F
                else:
                    i += 1
                    continue
                if i + m > end:
                    i += 1
                    continue
                for k in range(1, m):
                    if not is_cont(data[i + k]):
                        m = -k
                        break
                    cp = (cp << 6) | (data[i + k] & 0x3F)
                if m < 0:
                    i += -m
                    continue
                if cp < 0x110000:
                    t[cp] += w
                i += m
    cps = np.flatnonzero(table)
    return cps, table[cps]


# ---------------------------------------------------------------------------
# Hash-trie over a vocabulary
# ---------------------------------------------------------------------------

# One table cell = (parent node << 8 | byte) << 32 | child node; all ones when free.
cdef uint64_t EMPTY = 0xFFFFFFFFFFFFFFFFULL
cdef int64_t MAX_NODES = (1 << 24) - 1


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
        cdef int64_t total = 0, i, j, node, slot
        cdef uint64_t key
        cdef int64_t m
        self.slots = NULL
        self.value = NULL
        self.n_pieces = len(pieces)
        self._blob = b"".join(pieces)
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=self.n_pieces)
        if self.n_pieces and lengths.min() == 0:
            raise ValueError("empty piece")
        offs = np.zeros(self.n_pieces + 1, dtype=np.int64)
        np.cumsum(lengths, out=offs[1:])
        self._offsets = offs
        # The table starts small and doubles at half load: its size follows the
        # number of trie nodes, not the total length of the pieces.
        self.mask = 1023
        self.value_cap = 1024
        self.slots = <uint64_t *> malloc((self.mask + 1) * sizeof(uint64_t))
        self.value = <int32_t *> malloc(self.value_cap * sizeof(int32_t))
        if self.slots == NULL or self.value == NULL:
            raise MemoryError()
        memset(self.slots, 0xFF, (self.mask + 1) * sizeof(uint64_t))
        self.value[0] = -1
        self.n_nodes = 1
        self.max_len = 0
        cdef const uint8_t[::1] blob = self._blob
        cdef const int64_t[::1] ov = offs
        for i in range(self.n_pieces):
            node = 0
            m = ov[i + 1] - ov[i]
            if m > self.max_len:
                self.max_len = <int32_t> m
            for j in range(ov[i], ov[i + 1]):
                key = (<uint64_t> node << 8) | blob[j]
                slot = mix(key) & self.mask
                while self.slots[slot] != EMPTY and (self.slots[slot] >> 32) != key:
                    slot = (slot + 1) & self.mask
                if self.slots[slot] == EMPTY:
                    if self.n_nodes >= MAX_NODES:
                        raise ValueError("vocabulary too large for the hash-trie (2**24 nodes)")
                    if 2 * self.n_nodes > self.mask or self.n_nodes + 1 >= self.value_cap:
                        if self.grow() != 0:
                            raise MemoryError()
                        slot = mix(key) & self.mask
                        while self.slots[slot] != EMPTY:
                            slot = (slot + 1) & self.mask
                    self.slots[slot] = (key << 32) | <uint64_t> self.n_nodes
                    self.value[self.n_nodes] = -1
                    self.n_nodes += 1
                node = <int64_t> (self.slots[slot] & 0xFFFFFFFFULL)
            if self.value[node] != -1:
                raise ValueError(f"duplicate piece {pieces[i]!r}")
            self.value[node] = <int32_t> i
        # The root's children are looked up directly: every walk starts there.
        for j in range(256):
            self.root[j] = -1
            self.root[j] = <int32_t> self.lookup(0, <uint8_t> j)

    cdef int grow(self) noexcept:
        """Double the edge table (rehashing every edge) and the node array."""
        cdef int64_t old_size = self.mask + 1, new_mask = 2 * old_size - 1, i, slot
        cdef uint64_t *slots = <uint64_t *> malloc((new_mask + 1) * sizeof(uint64_t))
        cdef int32_t *value = <int32_t *> realloc(self.value, 2 * self.value_cap * sizeof(int32_t))
        if value != NULL:
            self.value = value
            self.value_cap *= 2
        if slots == NULL or value == NULL:
            free(slots)
            return -1
        memset(slots, 0xFF, (new_mask + 1) * sizeof(uint64_t))
        for i in range(old_size):
            if self.slots[i] != EMPTY:
                slot = mix(self.slots[i] >> 32) & new_mask
                while slots[slot] != EMPTY:
                    slot = (slot + 1) & new_mask
                slots[slot] = self.slots[i]
        free(self.slots)
        self.slots = slots
        self.mask = new_mask
        return 0

    def __dealloc__(self):
        free(self.slots)
        free(self.value)

    def __len__(self):
        return self.n_pieces

    cdef int64_t lookup(self, int64_t node, uint8_t b) noexcept nogil:
        """The child of ``node`` along byte ``b`` from the table, or -1."""
        cdef uint64_t key = (<uint64_t> node << 8) | b
        cdef int64_t slot = mix(key) & self.mask
        cdef uint64_t cell
        while True:
            cell = self.slots[slot]
            if cell == EMPTY:
                return -1
            if (cell >> 32) == key:
                return <int64_t> (cell & 0xFFFFFFFFULL)
            slot = (slot + 1) & self.mask

    cdef inline int64_t step(self, int64_t node, uint8_t b) noexcept nogil:
        """The child of ``node`` along byte ``b``, or -1."""
        if node == 0:
            return self.root[b]
        return self.lookup(node, b)

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

    cdef void forward_backward(self, const double *score, const uint8_t *t, int64_t n,
                               double w, double *fw, double *bw, double *counts) noexcept nogil:
        """Soft EM on ``t[:n]``: add ``w`` times the posterior number of uses of
        every piece (all segmentations weighted by ``prod(p(piece))``)."""
        cdef int64_t s, e, node
        cdef int32_t v
        cdef double x, z
        fw[0] = 0.0
        for e in range(1, n + 1):
            fw[e] = -INFINITY
        for s in range(n):
            if fw[s] == -INFINITY:
                continue
            node = 0
            for e in range(s + 1, n + 1):
                node = self.step(node, t[e - 1])
                if node < 0:
                    break
                v = self.value[node]
                if v >= 0:
                    x = fw[s] + score[v]
                    fw[e] = logaddexp(fw[e], x)
        bw[n] = 0.0
        for s in range(n - 1, -1, -1):
            bw[s] = -INFINITY
            node = 0
            for e in range(s + 1, n + 1):
                node = self.step(node, t[e - 1])
                if node < 0:
                    break
                v = self.value[node]
                if v >= 0:
                    bw[s] = logaddexp(bw[s], score[v] + bw[e])
        z = fw[n]
        for s in range(n):
            if fw[s] == -INFINITY:
                continue
            node = 0
            for e in range(s + 1, n + 1):
                node = self.step(node, t[e - 1])
                if node < 0:
                    break
                v = self.value[node]
                if v >= 0:
                    counts[v] += w * exp(fw[s] + score[v] + bw[e] - z)

    def expected_counts(self, const uint8_t[::1] data, const int64_t[::1] offsets,
                        const int64_t[::1] weights, const double[::1] scores,
                        long long lo=0, long long hi=-1):
        """Soft-EM counts over chunks ``lo..hi-1``: posterior expected uses of
        every piece under the unigram model ``scores`` (float64)."""
        cdef int64_t nchunks = offsets.shape[0] - 1
        cdef int64_t maxn = 0, i
        if scores.shape[0] != self.n_pieces or weights.shape[0] != nchunks:
            raise ValueError("need one score per piece and one weight per chunk")
        if hi < 0 or hi > nchunks:
            hi = nchunks
        if lo < 0:
            lo = 0
        for i in range(lo, hi):
            if offsets[i + 1] - offsets[i] > maxn:
                maxn = offsets[i + 1] - offsets[i]
        cdef double[::1] counts = np.zeros(self.n_pieces, dtype=np.float64)
        if hi <= lo or self.n_pieces == 0:
            return np.asarray(counts)
        cdef double *fw = <double *> malloc((maxn + 1) * sizeof(double))
        cdef double *bw = <double *> malloc((maxn + 1) * sizeof(double))
        cdef const uint8_t *base = &data[0]
        try:
            if fw == NULL or bw == NULL:
                raise MemoryError()
            with nogil:
                for i in range(lo, hi):
                    self.forward_backward(&scores[0], base + offsets[i], offsets[i + 1] - offsets[i],
                                          <double> weights[i], fw, bw, &counts[0])
        finally:
            free(fw); free(bw)
        return np.asarray(counts)

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
