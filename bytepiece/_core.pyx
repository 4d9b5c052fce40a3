# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled tokenizer core: matching, Viterbi and exact sampling (ALGORITHM.md §4-5).

Design
------
* The vocabulary is a double-array trie over reversed pieces (see ``_core.pxd``).
  For every end position ``e`` of a chunk we walk it backwards over
  ``text[e-1], text[e-2], ...``; each node holding a piece is a lattice edge
  ``text[k:e]``. Edges therefore come shortest first (start descending).
* Viterbi keeps, for each ``e``, the best ``best[k] + score``. The reference
  visits starts ascending with a strict ``>``; visiting them descending with
  ``>=`` picks the very same edge (the smallest start among equal sums), and
  the sums are the same float64 additions, so results match bit for bit.
* Sampling is forward-filtering / backward-sampling: ``mass[e]`` is the sum over
  all segmentations of ``text[:e]`` of ``prod(p ** alpha)``, kept in linear
  space as a double times a power of two (exact rescaling, no ``exp`` per
  edge); the backward pass draws each piece from its exact conditional. When
  ``alpha`` spreads the piece weights beyond what a double can hold the
  log-domain algorithm of the spec is used instead.
* Nothing here touches Python objects inside the loops; the GIL is released.
"""
import gc
import os
import threading

import numpy as np

cimport cython
from cpython.list cimport PyList_AsTuple, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.math cimport INFINITY, NAN, exp, frexp, ldexp, log1p
from libc.stdint cimport INT64_MIN, int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memchr, memcpy, memset

cdef extern from *:
    """
    static inline long long bp_fetch_add(long long *p, long long v) {
        return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    }
    /* A block's flag is set after its ids are written (release) and read
       before they are (acquire), so a reader of a set flag sees the ids. */
    static inline void bp_store_release(unsigned char *p, unsigned char v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline unsigned char bp_load_acquire(const unsigned char *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    /* The count of packed blocks is published the same way: the texts and
       offsets of a block are written before the count that covers it. */
    static inline void bp_store_release_ll(long long *p, long long v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline long long bp_load_acquire_ll(const long long *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    /* Native helper threads: they run C only and never take the GIL, so
       starting and joining one costs no GIL hand-over (a Python thread's
       start and join cost ~0.3 and up to ~1 ms of it per batch). */
    typedef void (*bp_thread_fn)(void *);
    typedef struct { bp_thread_fn fn; void *arg; } bp_thread_start_arg;
    #if defined(_WIN32)
    #include <windows.h>
    static inline void bp_yield(void) { SwitchToThread(); }
    typedef HANDLE bp_thread;
    static DWORD WINAPI bp_thread_main(LPVOID p) {
        bp_thread_start_arg *a = (bp_thread_start_arg *) p;
        a->fn(a->arg);
        return 0;
    }
    static int bp_thread_start(bp_thread *t, bp_thread_start_arg *a) {
        *t = CreateThread(NULL, 0, bp_thread_main, a, 0, NULL);
        return *t ? 0 : -1;
    }
    static void bp_thread_join(bp_thread t) { WaitForSingleObject(t, INFINITE); CloseHandle(t); }
    #else
    #include <sched.h>
    #include <pthread.h>
    static inline void bp_yield(void) { sched_yield(); }
    typedef pthread_t bp_thread;
    static void *bp_thread_main(void *p) {
        bp_thread_start_arg *a = (bp_thread_start_arg *) p;
        a->fn(a->arg);
        return NULL;
    }
    static int bp_thread_start(bp_thread *t, bp_thread_start_arg *a) {
        return pthread_create(t, NULL, bp_thread_main, a) ? -1 : 0;
    }
    static void bp_thread_join(bp_thread t) { pthread_join(t, NULL); }
    #endif
    /* Keep the better of the candidate (cand, node, k) and the best so far;
       ties go to the candidate. Written as selects so that compilers emit
       maxsd and cmov: which edge wins is unpredictable, and a branch here
       costs a pipeline flush on about every other lattice edge. The max is
       spelled "best > cand ? best : cand", the one form GCC maps to a
       single maxsd without -ffast-math. */
    static inline void bp_keep_best(double cand, int32_t node, int64_t k, double *best,
                                    int32_t *best_node, int64_t *best_k) {
        int take = cand >= *best;
        *best = *best > cand ? *best : cand;
        *best_node = take ? node : *best_node;
        *best_k = take ? k : *best_k;
    }
    """
    void bp_keep_best(double cand, int32_t node, int64_t k, double *best, int32_t *best_node,
                      int64_t *best_k) noexcept nogil
    long long bp_fetch_add(long long *p, long long v) noexcept nogil
    void bp_store_release(unsigned char *p, unsigned char v) noexcept nogil
    unsigned char bp_load_acquire(const unsigned char *p) noexcept nogil
    void bp_store_release_ll(long long *p, long long v) noexcept nogil
    long long bp_load_acquire_ll(const long long *p) noexcept nogil
    void bp_yield() noexcept nogil
    ctypedef void (*bp_thread_fn)(void *) noexcept nogil
    ctypedef struct bp_thread_start_arg:
        bp_thread_fn fn
        void *arg
    ctypedef struct bp_thread:
        pass
    int bp_thread_start(bp_thread *t, bp_thread_start_arg *a) noexcept nogil
    void bp_thread_join(bp_thread t) noexcept nogil

cdef extern from "Python.h":
    void **PySequence_Fast_ITEMS(object o)
    void PyObject_GC_UnTrack(object o)
    void PyObject_GC_Track(object o)


# Sampling runs in linear space while every piece weight p ** alpha stays above
# 2**-600: alpha * -min_score <= LINEAR_RANGE (< 600 ln 2). Forward masses
# are kept within [2**-400, 2**400] times a power of two, so that a mass times
# a weight is never subnormal and a sum of terms never overflows.
cdef double LINEAR_RANGE = 415.0
# Beyond this alpha * -min_score, sampling is Viterbi (and alpha * score would
# overflow towards -inf).
cdef double POINT_MASS = 1e280
cdef double SCALE_HI = ldexp(1.0, 400)
cdef double SCALE_LO = ldexp(1.0, -400)
cdef unsigned char NEWLINE = 10

# ---------------------------------------------------------------------------
# Random numbers: xoshiro256** seeded through splitmix64. Each call owns its
# state, so there is nothing to share between threads.
# ---------------------------------------------------------------------------

cdef inline uint64_t splitmix64(uint64_t *x) noexcept nogil:
    x[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = x[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef void rng_seed(Rng *rng, uint64_t seed) noexcept nogil:
    cdef uint64_t x = seed
    rng.s0 = splitmix64(&x)
    rng.s1 = splitmix64(&x)
    rng.s2 = splitmix64(&x)
    rng.s3 = splitmix64(&x)


cdef inline uint64_t rng_next(Rng *rng) noexcept nogil:
    cdef uint64_t result = rotl(rng.s1 * 5, 7) * 9
    cdef uint64_t t = rng.s1 << 17
    rng.s2 ^= rng.s0
    rng.s3 ^= rng.s1
    rng.s1 ^= rng.s2
    rng.s0 ^= rng.s3
    rng.s2 ^= t
    rng.s3 = rotl(rng.s3, 45)
    return result


cdef double rng_uniform(Rng *rng) noexcept nogil:
    """A uniform double in [0, 1) with 53 random bits."""
    return <double>(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0)


cdef inline uint64_t text_seed(uint64_t seed, int64_t index) noexcept nogil:
    """The seed of text ``index`` of a batch: depends on (seed, index) only."""
    cdef uint64_t x = seed ^ (<uint64_t>index * <uint64_t>0xD1B54A32D192ED03)
    return splitmix64(&x)


def mix_seed(uint64_t seed, int64_t index):
    """Python view of the per-text seed derivation (for tests and docs)."""
    return text_seed(seed, index)


# ---------------------------------------------------------------------------
# Double-array trie
# ---------------------------------------------------------------------------

cdef struct BuildItem:
    int32_t node
    int32_t depth
    int64_t lo
    int64_t hi


# A unit keeps a node's base in its top 23 bits (see trie_units).
cdef int64_t TRIE_MAX_CELLS = 1 << 23


cdef int trie_reserve(Trie *trie, int64_t need) noexcept nogil:
    """Grow the cell arrays so that indexes below ``need`` exist: 0, -1 when
    out of memory, -2 past ``TRIE_MAX_CELLS``."""
    cdef int64_t size, i
    cdef DACell *cells
    cdef int32_t *value
    cdef double *node_score
    cdef unsigned char *taken
    if need <= trie.size:
        return 0
    if need > TRIE_MAX_CELLS:
        return -2
    size = trie.size * 2 if trie.size else 1024
    while size < need:
        size *= 2
    if size > TRIE_MAX_CELLS:
        size = TRIE_MAX_CELLS
    taken = <unsigned char *> realloc(trie.base_taken, size)
    if taken == NULL:
        return -1
    trie.base_taken = taken
    memset(taken + trie.size, 0, size - trie.size)
    taken = <unsigned char *> realloc(trie.cell_used, size)
    if taken == NULL:
        return -1
    trie.cell_used = taken
    memset(taken + trie.size, 0, size - trie.size)
    cells = <DACell *> realloc(trie.cells, size * sizeof(DACell))
    if cells == NULL:
        return -1
    trie.cells = cells
    value = <int32_t *> realloc(trie.value, size * sizeof(int32_t))
    if value == NULL:
        return -1
    trie.value = value
    node_score = <double *> realloc(trie.node_score, size * sizeof(double))
    if node_score == NULL:
        return -1
    trie.node_score = node_score
    for i in range(trie.size, size):
        cells[i].base = 0
        cells[i].check = -1
        value[i] = trie.none
        node_score[i] = -INFINITY
    trie.size = size
    return 0


cdef int trie_build(Trie *trie, const unsigned char *keys, const int64_t *offsets,
                    const int32_t *ids, int64_t n) noexcept nogil:
    """Build the trie from ``n`` distinct keys sorted bytewise.

    Key ``i`` is ``keys[offsets[i]:offsets[i+1]]`` and maps to ``ids[i]``.
    Returns 0, or -1 when memory runs out.
    """
    cdef BuildItem *stack = NULL
    cdef int64_t stack_len = 0, stack_cap = 1024
    cdef BuildItem item
    cdef int64_t i, j, lo, first_free = 1, b
    cdef unsigned char *hit
    cdef int64_t hint[256]
    cdef int32_t depth, node, nchild, c
    cdef int ok, rc
    cdef unsigned char child_byte[256]
    cdef int64_t child_lo[257]
    cdef BuildItem *grown

    trie.size = 0
    trie.max_depth = 0
    if trie_reserve(trie, 1024) < 0:
        return -1
    for i in range(256):
        hint[i] = 1
    trie.cells[0].check = -2    # the root cell is taken and is nobody's child
    trie.cell_used[0] = 1
    stack = <BuildItem *> malloc(stack_cap * sizeof(BuildItem))
    if stack == NULL:
        return -1
    stack[0].node = 0
    stack[0].depth = 0
    stack[0].lo = 0
    stack[0].hi = n
    stack_len = 1
    while stack_len > 0:
        stack_len -= 1
        item = stack[stack_len]
        node = item.node
        depth = item.depth
        lo = item.lo
        if depth > trie.max_depth:
            trie.max_depth = depth
        # Sorted order puts the key that ends here (if any) first.
        if lo < item.hi and offsets[lo + 1] - offsets[lo] == depth:
            trie.value[node] = ids[lo]
            lo += 1
        if lo >= item.hi:
            continue
        # Group the remaining keys by their byte at this depth.
        nchild = 0
        i = lo
        while i < item.hi:
            c = keys[offsets[i] + depth]
            child_byte[nchild] = <unsigned char> c
            child_lo[nchild] = i
            nchild += 1
            i += 1
            while i < item.hi and keys[offsets[i] + depth] == c:
                i += 1
        child_lo[nchild] = item.hi
        # Find a base nobody has (see trie_units) where every child cell is
        # free. The scan jumps with memchr over runs of used cells and taken
        # bases, and starts where the last search for the same first byte
        # ended (hint): rescanning the dense front for every node made
        # building quadratic in the number of nodes.
        b = max(hint[child_byte[0]], first_free - child_byte[0])
        while True:
            rc = trie_reserve(trie, b + 257)
            if rc < 0:
                free(stack)
                return rc
            hit = <unsigned char *> memchr(trie.cell_used + b + child_byte[0], 0,
                                           trie.size - b - child_byte[0])
            if hit == NULL:
                b = trie.size - child_byte[0]
                continue
            b = (hit - trie.cell_used) - child_byte[0]
            hit = <unsigned char *> memchr(trie.base_taken + b, 0, trie.size - b)
            if hit == NULL:
                b = trie.size
                continue
            if hit - trie.base_taken != b:
                b = hit - trie.base_taken
                continue
            rc = trie_reserve(trie, b + 257)
            if rc < 0:
                free(stack)
                return rc
            ok = 1
            for j in range(1, nchild):
                if trie.cell_used[b + child_byte[j]]:
                    ok = 0
                    break
            if ok:
                break
            b += 1
        trie.cells[node].base = <int32_t> b
        trie.base_taken[b] = 1
        hint[child_byte[0]] = b + 1
        for j in range(nchild):
            trie.cells[b + child_byte[j]].check = node
            trie.cell_used[b + child_byte[j]] = 1
        while trie.cell_used[first_free]:
            first_free += 1
        if stack_len + nchild > stack_cap:
            stack_cap = (stack_len + nchild) * 2
            grown = <BuildItem *> realloc(stack, stack_cap * sizeof(BuildItem))
            if grown == NULL:
                free(stack)
                return -1
            stack = grown
        for j in range(nchild):
            stack[stack_len].node = <int32_t> (b + child_byte[j])
            stack[stack_len].depth = depth + 1
            stack[stack_len].lo = child_lo[j]
            stack[stack_len].hi = child_lo[j + 1]
            stack_len += 1
    free(stack)
    free(trie.base_taken)
    free(trie.cell_used)
    trie.base_taken = NULL
    trie.cell_used = NULL
    return trie_units(trie)


cdef inline int32_t trie_step(const uint32_t *unit, int32_t node, unsigned char c) noexcept nogil:
    """The child of ``node`` by byte ``c``, or -1 when there is none."""
    cdef int32_t nxt = (unit[node] >> 9) + c
    return nxt if (unit[nxt] & 0x1FF) == (0x100 | <uint32_t> c) else -1


cdef int trie_units(Trie *trie) noexcept nogil:
    """Pack each cell into the 4-byte unit the hot loops walk.

    A unit holds the node's base (where its children start) and, for a
    child cell, the byte that leads to it plus a "child" bit. Walking from
    ``node`` by byte ``c`` lands on ``cell = base(node) + c``; the step
    exists when that unit's low 9 bits are ``0x100 | c``. That identifies
    the parent because no two nodes share a base (``trie_build`` takes each
    base once, and leaves keep base 0, which no node has): a cell holding
    byte ``c`` is owned by the node whose base is ``cell - c``. Half the
    size of (base, check) pairs, so more of the trie stays in cache.
    """
    cdef int64_t c
    cdef int32_t parent
    cdef uint32_t u
    trie.unit = <uint32_t *> malloc(trie.size * sizeof(uint32_t))
    if trie.unit == NULL:
        return -1
    for c in range(trie.size):
        u = (<uint32_t> trie.cells[c].base) << 9
        parent = trie.cells[c].check
        if parent >= 0:
            u |= 0x100 | <uint32_t> (c - trie.cells[parent].base)
        trie.unit[c] = u
    free(trie.cells)        # only building needs the (base, check) pairs
    trie.cells = NULL
    return 0


cdef void trie_free(Trie *trie) noexcept nogil:
    free(trie.cells)
    free(trie.value)
    free(trie.node_score)
    free(trie.length)
    free(trie.unit)
    free(trie.base_taken)
    free(trie.cell_used)
    trie.unit = NULL
    trie.base_taken = NULL
    trie.cell_used = NULL
    trie.cells = NULL
    trie.value = NULL
    trie.node_score = NULL
    trie.length = NULL
    trie.size = 0


# ---------------------------------------------------------------------------
# Per-thread scratch space
# ---------------------------------------------------------------------------

cdef int scratch_reserve(Scratch *scratch, int64_t n) noexcept nogil:
    """Make room for a chunk of ``n`` bytes (positions 0..n). 0, or -1 on OOM."""
    cdef int64_t cap
    if n + 1 <= scratch.capacity:
        return 0
    cap = scratch.capacity * 2 if scratch.capacity else 256
    while cap < n + 1:
        cap *= 2
    scratch_free(scratch)
    scratch.best = <double *> malloc(cap * sizeof(double))
    scratch.scale = <int64_t *> malloc(cap * sizeof(int64_t))
    scratch.piece = <int32_t *> malloc(cap * sizeof(int32_t))
    scratch.path = <int32_t *> malloc(cap * sizeof(int32_t))
    if (scratch.best == NULL or scratch.scale == NULL
            or scratch.piece == NULL or scratch.path == NULL):
        scratch_free(scratch)
        return -1
    scratch.capacity = cap
    return 0


cdef void scratch_free(Scratch *scratch) noexcept nogil:
    free(scratch.best)
    free(scratch.scale)
    free(scratch.piece)
    free(scratch.path)
    scratch.best = NULL
    scratch.scale = NULL
    scratch.piece = NULL
    scratch.path = NULL
    scratch.capacity = 0


# ---------------------------------------------------------------------------
# Segmentation of one chunk. Each returns the number of pieces k and leaves
# their indexes in scratch.path[0:k] in *reverse* order; -1 on OOM.
# ---------------------------------------------------------------------------

cdef inline int64_t backtrack(const Trie *trie, Scratch *scratch, int64_t n) noexcept nogil:
    """Follow the last piece of each prefix back from ``n``.

    ``scratch.piece[e]`` holds the trie *node* of that piece: mapping nodes to
    pieces only along the chosen path saves a random load per position.
    """
    cdef int64_t k = 0, e = n
    cdef int32_t v
    while e > 0:
        v = trie.value[scratch.piece[e]]
        scratch.path[k] = v
        e -= trie.length[v]
        k += 1
    return k


cdef inline int64_t backtrack_packed(const Trie *trie, Scratch *scratch, int64_t n) noexcept nogil:
    """Viterbi's backtrack: ``scratch.scale[e]`` packs (node << 32) | start of
    the last piece of the best prefix ending at ``e``. Following the starts is
    a chain through one small array; nodes become pieces off that chain."""
    cdef int64_t k = 0, e = n, packed
    while e > 0:
        packed = scratch.scale[e]
        scratch.path[k] = trie.value[<int32_t> (packed >> 32)]
        e = packed & <int64_t> 0xFFFFFFFF
        k += 1
    return k


cdef inline void viterbi_ends(const Trie *trie, const unsigned char *text, int64_t e_lo,
                              int64_t e_hi, double *best, int64_t *back, bint bounded) noexcept nogil:
    """Viterbi's forward pass over the ends ``e_lo <= e < e_hi``.

    ``best[e]`` gets the score of the best segmentation of ``text[:e]``;
    ``back[e]`` packs (node << 32) | start of its last piece. ``bounded``
    stops the walk at the start of the text; without it the caller
    guarantees ``e > trie.max_depth``, so the walk ends in the trie first.
    Inlined with a constant ``bounded``, each loop compiles to its own copy.
    """
    cdef const double *node_score = trie.node_score
    cdef const uint32_t *unit = trie.unit
    cdef int32_t root_base = unit[0] >> 9
    cdef int64_t e, k, best_k
    cdef int32_t node, nxt, best_node
    cdef double best_value
    cdef uint32_t u, c
    for e in range(e_lo, e_hi):
        # Every single byte is a piece: the first step needs no check.
        node = root_base + text[e - 1]
        best_value = best[e - 1] + node_score[node]
        best_node = node
        best_k = e - 1
        u = unit[node]
        k = e - 2
        while not bounded or k >= 0:
            # trie_step, written out so that the unit loaded for the check is
            # kept in u and serves as the base of the next step.
            c = text[k]
            nxt = (u >> 9) + c
            u = unit[nxt]
            if (u & 0x1FF) != (0x100 | c):
                break
            # Each node carries the score of the piece ending there, -inf when
            # none does: no branch and no piece lookup in this hot loop.
            bp_keep_best(best[k] + node_score[nxt], nxt, k, &best_value, &best_node, &best_k)
            k -= 1
        best[e] = best_value
        back[e] = ((<int64_t> best_node) << 32) | best_k


cdef inline int64_t first_unchecked_end(const Trie *trie, int64_t n) noexcept nogil:
    """The first end whose walk needs no check against the start of the text:
    no walk is longer than the longest piece (n + 1 when none is that far)."""
    return min(n + 1, <int64_t> trie.max_depth + 1)


cdef int64_t viterbi(const Trie *trie, const unsigned char *text, int64_t n,
                     Scratch *scratch) noexcept nogil:
    """Deterministic segmentation (§4): the most probable one, ties to the
    longest last piece. The scores are the trie's (``node_score``)."""
    cdef int64_t split
    if scratch_reserve(scratch, n) < 0:
        return -1
    scratch.best[0] = 0.0
    split = first_unchecked_end(trie, n)
    viterbi_ends(trie, text, 1, split, scratch.best, scratch.scale, True)
    viterbi_ends(trie, text, split, n + 1, scratch.best, scratch.scale, False)
    return backtrack_packed(trie, scratch, n)


cdef inline double mass_into(const Trie *trie, const double *node_weight,
                             const unsigned char *text, int64_t e, const double *mass,
                             const int64_t *scale, int64_t *ref_out, bint bounded) noexcept nogil:
    """Sum of ``mass[k] * weight(text[k:e])`` over the pieces ending at ``e``.

    ``node_weight`` holds ``p ** alpha`` of the piece ending at each trie
    node and 0 where none does (a real piece's weight is never 0 on the
    linear path). Terms carry power-of-two scales; the sum is expressed at
    the largest scale among them, returned through ``ref_out``. ``bounded``
    as in ``viterbi_ends``.
    """
    cdef const uint32_t *unit = trie.unit
    cdef int64_t k = e - 2
    cdef int32_t node, nxt
    cdef int64_t s, ref
    cdef double acc, term, w
    cdef uint32_t u, c
    # The single byte text[e-1] is a piece, with a nonzero weight: its term
    # starts the sum and sets the scale.
    node = (unit[0] >> 9) + text[e - 1]
    acc = mass[e - 1] * node_weight[node]
    ref = scale[e - 1]
    u = unit[node]
    while not bounded or k >= 0:
        c = text[k]
        nxt = (u >> 9) + c
        u = unit[nxt]
        if (u & 0x1FF) != (0x100 | c):
            break
        w = node_weight[nxt]
        s = scale[k]
        if s == ref:
            # The common case, and no branch on whether a piece ends here:
            # where none does, w is 0 and the sum gains +0.0, which leaves it
            # exactly as it was.
            acc += mass[k] * w
        elif w != 0.0:
            term = mass[k] * w
            if s > ref:
                if acc != 0.0:
                    acc = ldexp(acc, ref - s)
                acc += term
                ref = s
            else:
                acc += ldexp(term, s - ref)
        k -= 1
    ref_out[0] = ref
    return acc


cdef inline void sample_forward(const Trie *trie, const double *node_weight,
                                const unsigned char *text, int64_t e_lo, int64_t e_hi,
                                double *mass, int64_t *scale, bint bounded) noexcept nogil:
    """Forward filtering over the ends ``e_lo <= e < e_hi``: mass[e] * 2**scale[e]
    = sum over segmentations of text[:e]."""
    cdef int64_t e, ref
    cdef double acc
    cdef int x
    for e in range(e_lo, e_hi):
        acc = mass_into(trie, node_weight, text, e, mass, scale, &ref, bounded)
        if acc > SCALE_HI or acc < SCALE_LO:
            acc = frexp(acc, &x)
            ref += x
        mass[e] = acc
        scale[e] = ref


cdef int64_t sample_linear(const Trie *trie, const double *node_weight, const unsigned char *text,
                           int64_t n, Scratch *scratch, Rng *rng) noexcept nogil:
    cdef const uint32_t *unit = trie.unit
    cdef double *mass = scratch.best
    cdef int64_t *scale = scratch.scale
    cdef int64_t e, k, count = 0, chosen_k, last_k, ref, split
    cdef int32_t nxt, chosen_node, last_node
    cdef double target, cum, term
    cdef uint32_t u, c
    mass[0] = 1.0
    scale[0] = 0
    split = first_unchecked_end(trie, n)
    sample_forward(trie, node_weight, text, 1, split, mass, scale, True)
    sample_forward(trie, node_weight, text, split, n + 1, mass, scale, False)
    # Backward sampling: draw the last piece of text[:e] from its exact conditional.
    # The forward pass left the total mass of text[:e] in mass[e] * 2**scale[e]
    # (frexp rescales exactly), so the terms are put on that scale instead of
    # being summed again: the same draw, one walk fewer per piece.
    e = n
    while e > 0:
        ref = scale[e]
        target = rng_uniform(rng) * mass[e]
        cum = 0.0
        chosen_k = -1
        chosen_node = -1
        last_k = e - 1
        last_node = (unit[0] >> 9) + text[e - 1]
        u = unit[0]
        k = e - 1
        while k >= 0:
            c = text[k]
            nxt = (u >> 9) + c
            u = unit[nxt]
            if (u & 0x1FF) != (0x100 | c):
                break
            # Where no piece ends, w is 0: the term is +0.0, which moves
            # neither the sum nor the last-positive choice (no branch on it).
            term = mass[k] * node_weight[nxt]
            if scale[k] != ref:
                term = ldexp(term, scale[k] - ref)
            if term > 0.0:
                last_k = k
                last_node = nxt
            cum += term
            if cum > target:
                chosen_k = k
                chosen_node = nxt
                break
            k -= 1
        if chosen_node < 0:        # rounding left the target just past the end
            chosen_k = last_k
            chosen_node = last_node
        scratch.path[count] = trie.value[chosen_node]
        count += 1
        e = chosen_k
    return count


cdef int64_t sample_log(const Trie *trie, const double *score, double alpha,
                        const unsigned char *text, int64_t n, Scratch *scratch,
                        Rng *rng) noexcept nogil:
    """§5 exactly as the spec writes it (log domain, one draw per edge)."""
    cdef const uint32_t *unit = trie.unit
    cdef double *best = scratch.best
    cdef int64_t e, k
    cdef int32_t node, nxt, v
    cdef double total, w
    best[0] = 0.0
    for e in range(1, n + 1):
        total = -INFINITY
        # The single byte text[e-1] is always a piece: a valid default even if
        # every weight underflows.
        scratch.piece[e] = (unit[0] >> 9) + text[e - 1]
        node = 0
        k = e - 1
        while k >= 0:
            nxt = trie_step(unit, node, text[k])
            if nxt < 0:
                break
            node = nxt
            v = trie.value[node]
            if v != trie.none:
                w = best[k] + alpha * score[v]
                total = logaddexp(total, w)
                if rng_uniform(rng) < exp(w - total):
                    scratch.piece[e] = node
            k -= 1
        best[e] = total
    return backtrack(trie, scratch, n)


cdef int64_t sample(const Trie *trie, const double *score, const Weights *weights,
                    const unsigned char *text, int64_t n, Scratch *scratch,
                    Rng *rng) noexcept nogil:
    """Draw a segmentation with probability proportional to prod(p ** alpha) (§5)."""
    if weights.log_domain == 2:
        return viterbi(trie, text, n, scratch)
    if scratch_reserve(scratch, n) < 0:
        return -1
    if weights.log_domain:
        return sample_log(trie, score, weights.alpha, text, n, scratch, rng)
    return sample_linear(trie, weights.node_weight, text, n, scratch, rng)


cdef int64_t edges_ending_at(const Trie *trie, const unsigned char *text, int64_t lo, int64_t e,
                             int64_t *starts, int64_t *ends, int32_t *ids) noexcept nogil:
    """Number of pieces text[k:e] with k >= lo; when ``starts`` is given, also
    write them (start ascending) with their ends and ids (index + 3)."""
    cdef const uint32_t *unit = trie.unit
    cdef int64_t k = e - 1, m = 0, j
    cdef int32_t node = 0, nxt, v
    while k >= lo:
        nxt = trie_step(unit, node, text[k])
        if nxt < 0:
            break
        node = nxt
        if trie.value[node] != trie.none:
            m += 1
        k -= 1
    if starts == NULL:
        return m
    j = m
    node = 0
    k = e - 1
    while j > 0:
        node = (unit[node] >> 9) + text[k]
        v = trie.value[node]
        if v != trie.none:
            j -= 1
            starts[j] = k
            ends[j] = e
            ids[j] = v + 3
        k -= 1
    return m


cdef double chunk_entropy(const Trie *trie, const double *score, double alpha,
                          const unsigned char *text, int64_t n, Scratch *scratch) noexcept nogil:
    """Entropy of P(seg) = prod(p ** alpha) / Z over the segmentations of one chunk.

    logz[e] = log sum over segmentations of text[:e] of prod(p ** alpha), and
    avg[e] = the expected sum of scores under that prefix distribution;
    H = log Z - alpha * E[sum of scores]. NaN when memory runs out.
    """
    cdef const uint32_t *unit = trie.unit
    cdef double *logz
    cdef double *avg
    cdef double total, w, acc
    cdef int64_t e, k
    cdef int32_t node, nxt, v
    if scratch_reserve(scratch, n) < 0:
        return NAN
    logz = scratch.best
    avg = <double *> scratch.scale     # int64 slots reused as doubles (same size)
    logz[0] = 0.0
    avg[0] = 0.0
    for e in range(1, n + 1):
        # pass 1: the normalizer
        total = -INFINITY
        node = 0
        k = e - 1
        while k >= 0:
            nxt = trie_step(unit, node, text[k])
            if nxt < 0:
                break
            node = nxt
            v = trie.value[node]
            if v != trie.none:
                total = logaddexp(total, logz[k] + alpha * score[v])
            k -= 1
        # pass 2: the expectation under the normalized edge weights
        acc = 0.0
        node = 0
        k = e - 1
        while k >= 0:
            nxt = trie_step(unit, node, text[k])
            if nxt < 0:
                break
            node = nxt
            v = trie.value[node]
            if v != trie.none:
                w = exp(logz[k] + alpha * score[v] - total)
                acc += w * (avg[k] + score[v])
            k -= 1
        logz[e] = total
        avg[e] = acc
    return logz[n] - alpha * avg[n]


# ---------------------------------------------------------------------------
# Whole texts: cut into chunks at newline runs, segment each chunk.
# ---------------------------------------------------------------------------

cdef inline int64_t chunk_end(const unsigned char *text, int64_t start, int64_t n) noexcept nogil:
    """End of the chunk starting at ``start``: non-newlines, then newlines (§1)."""
    cdef int64_t j = n
    # memchr scans many bytes per step; a byte loop here cost ~2% of encoding.
    cdef const void *hit = memchr(text + start, NEWLINE, n - start)
    if hit != NULL:
        j = <const unsigned char *> hit - text
    while j < n and text[j] == NEWLINE:
        j += 1
    return j


cdef struct EncodeTask:
    const Trie *trie
    const double *score
    const Weights *weights     # NULL: deterministic
    Scratch scratch
    Rng rng


cdef int64_t encode_text(EncodeTask *task, const unsigned char *text, int64_t n, bint chunked,
                         int32_t *out) noexcept nogil:
    """Write the ids (index + 3) of ``text`` to ``out``; returns their number or -1."""
    cdef int64_t start = 0, end, k, q, written = 0
    cdef int32_t *path
    while start < n:
        end = chunk_end(text, start, n) if chunked else n
        if task.weights == NULL:
            k = viterbi(task.trie, text + start, end - start, &task.scratch)
        else:
            k = sample(task.trie, task.score, task.weights, text + start, end - start,
                       &task.scratch, &task.rng)
        if k < 0:
            return -1
        path = task.scratch.path
        for q in range(k):
            out[written + q] = path[k - 1 - q] + 3
        written += k
        start = end
    return written


cdef struct BatchJob:
    const unsigned char *data
    const int64_t *offsets
    int64_t n_texts
    int32_t *out               # text i writes at out + offsets[i] + i * extra
    int64_t *counts
    const int64_t *weights     # split mode: weight of each text
    int64_t *piece_counts      # split mode: one row of n_pieces per worker
    int32_t n_pieces
    int add_bos
    int add_eos
    int chunked
    uint64_t seed
    int64_t first_index        # text i draws from the stream (seed, first_index + i)
    int64_t block              # texts per claim: block b is texts b*block .. (b+1)*block-1
    int64_t n_blocks
    unsigned char *done        # NULL, or one flag per block, set once its ids are written
    long long next_block
    long long next_worker
    # Blocks whose texts and offsets are written (published with release);
    # a worker waits for the block it claimed. Batches of Python texts are
    # packed by the calling thread while the helpers already segment.
    long long packed_blocks
    unsigned char aborted      # set when packing failed: waiting workers quit
    int failed
    # List mode (see _BatchRunner.lists): each worker points the items of
    # its blocks' new lists at the cached ints and counts the references.
    void **lists               # the new, untracked list of each text
    void **table               # the cached int object of each id
    int64_t *refs              # one row of n_ids per worker: references to add
    int64_t n_ids
    unsigned char *allocated   # per block: 0 not yet, 1 its lists exist, 2 given up


cdef void task_init(EncodeTask *task, const Trie *trie, const double *score,
                    const Weights *weights) noexcept nogil:
    memset(&task.scratch, 0, sizeof(Scratch))
    task.trie = trie
    task.score = score
    task.weights = weights


cdef int run_block(BatchJob *job, EncodeTask *task, int64_t *row, int64_t b) noexcept nogil:
    """Segment the texts of block ``b``: 0, or -1 (and ``job.failed``) when
    out of memory. Its ``done`` flag is set either way, so no reader waits
    forever."""
    cdef int64_t i, n, w, k, q, extra = job.add_bos + job.add_eos
    cdef int64_t hi = min(job.n_texts, (b + 1) * job.block)
    cdef int32_t *out
    cdef int rc = 0
    for i in range(b * job.block, hi):
        n = job.offsets[i + 1] - job.offsets[i]
        if row != NULL:
            # Split mode (trainer): segment each item whole, count its pieces.
            k = viterbi(task.trie, job.data + job.offsets[i], n, &task.scratch)
            if k < 0:
                rc = -1
                break
            for q in range(k):
                row[task.scratch.path[q]] += job.weights[i]
            continue
        if task.weights != NULL:
            rng_seed(&task.rng, text_seed(job.seed, job.first_index + i))
        out = job.out + job.offsets[i] + i * extra
        w = 0
        if job.add_bos:
            out[0] = 1
            w = 1
        k = encode_text(task, job.data + job.offsets[i], n, job.chunked, out + w)
        if k < 0:
            rc = -1
            break
        w += k
        if job.add_eos:
            out[w] = 2
            w += 1
        job.counts[i] = w
    if rc < 0:
        job.failed = 1
    if job.done != NULL:
        bp_store_release(&job.done[b], 1)
    return rc


cdef extern from *:
    """
    /* Point the items of the fresh list lst at table[ids[j]] and count each
       id in refs. No reference count is touched: the lists are untracked
       and known to no one else yet, and the caller adds the counted
       references under the GIL before anyone can see them. */
    static inline void bp_point_items(void *lst, const int32_t *ids, Py_ssize_t n,
                                      void *const *table, int64_t *refs) {
        PyObject **dst = ((PyListObject *) lst)->ob_item;
        Py_ssize_t j;
        for (j = 0; j < n; j++) {
            int32_t id = ids[j];
            dst[j] = (PyObject *) table[id];
            refs[id]++;
        }
    }
    /* Take refs[id] more references to each table[id] (under the GIL). */
    static void bp_add_refs(void *const *table, const int64_t *refs, Py_ssize_t n_ids, int rows) {
        Py_ssize_t i, k;
        int r;
        for (i = 0; i < n_ids; i++) {
            int64_t c = 0;
            for (r = 0; r < rows; r++) c += refs[(Py_ssize_t) r * n_ids + i];
            for (k = 0; k < c; k++) Py_INCREF((PyObject *) table[i]);
        }
    }
    """
    void bp_point_items(void *lst, const int32_t *ids, Py_ssize_t n, void **table,
                        int64_t *refs) noexcept nogil
    void bp_add_refs(void **table, const int64_t *refs, Py_ssize_t n_ids, int rows) noexcept


cdef inline bint wait_packed(BatchJob *job, int64_t b) noexcept nogil:
    """Wait until block ``b`` is packed; False when the job was aborted."""
    while bp_load_acquire_ll(&job.packed_blocks) <= b:
        if bp_load_acquire(&job.aborted):
            return False
        bp_yield()
    return True


cdef int drain_published(BatchJob *job) noexcept nogil:
    """Wait until every published block is segmented: 0, or -1 as soon as a
    worker has failed (the blocks it left may never be claimed). Afterwards
    no worker reads the texts or writes ids until more blocks are published."""
    cdef int64_t b
    for b in range(job.packed_blocks):
        while not bp_load_acquire(&job.done[b]):
            bp_yield()
        if job.failed:     # set before the flag it precedes
            return -1
    return 0


cdef struct FillQueue:
    # List mode: the blocks a worker segmented whose lists it has not filled.
    int64_t *blocks
    int64_t head, tail
    int64_t *refs              # this worker's row of job.refs


cdef int queue_init(FillQueue *q, BatchJob *job) noexcept nogil:
    q.head = q.tail = 0
    q.blocks = <int64_t *> malloc(max(1, job.n_blocks) * sizeof(int64_t))
    q.refs = job.refs + bp_fetch_add(&job.next_worker, 1) * job.n_ids
    return 0 if q.blocks != NULL else -1


cdef void fill_ready(BatchJob *job, FillQueue *q, bint wait) noexcept nogil:
    """Fill the lists of the queued blocks whose lists exist, in order; with
    ``wait``, wait for every queued block (or for the job to be given up)."""
    cdef int64_t b, i, hi, extra = job.add_bos + job.add_eos
    cdef unsigned char state
    while q.head < q.tail:
        b = q.blocks[q.head]
        state = bp_load_acquire(&job.allocated[b])
        if state == 0:
            if not wait:
                return
            bp_yield()
            continue
        if state == 1:
            hi = min(job.n_texts, (b + 1) * job.block)
            for i in range(b * job.block, hi):
                bp_point_items(job.lists[i], job.out + job.offsets[i] + i * extra,
                               job.counts[i], job.table, q.refs)
        q.head += 1


cdef void run_batch(BatchJob *job, const Trie *trie, const double *score,
                    const Weights *weights) noexcept nogil:
    """Worker loop: claim blocks of texts from a shared atomic counter until
    none are left. In list mode (``job.lists`` set, helpers only) it also
    fills, between blocks, the lists of the blocks it segmented as soon as
    the calling thread has allocated them (their ids still in this core's
    cache), and at the end waits for the rest."""
    cdef EncodeTask task
    cdef FillQueue q
    cdef int64_t b
    cdef int64_t *row = NULL
    cdef bint list_mode = job.lists != NULL
    if list_mode and queue_init(&q, job) < 0:
        free(q.blocks)
        job.failed = 1
        return
    task_init(&task, trie, score, weights)
    if job.piece_counts != NULL:
        row = job.piece_counts + bp_fetch_add(&job.next_worker, 1) * job.n_pieces
    while True:
        b = bp_fetch_add(&job.next_block, 1)
        if b >= job.n_blocks or not wait_packed(job, b) or run_block(job, &task, row, b) < 0:
            break
        if list_mode:
            q.blocks[q.tail] = b
            q.tail += 1
            fill_ready(job, &q, False)
    scratch_free(&task.scratch)
    if list_mode:
        fill_ready(job, &q, True)
        free(q.blocks)


cdef struct Worker:
    # What every worker thread of a job reads.
    BatchJob *job
    const Trie *trie
    const double *score
    const Weights *weights     # NULL: deterministic


cdef void worker_main(void *arg) noexcept nogil:
    """Body of every helper thread (and of the caller outside list mode)."""
    cdef Worker *w = <Worker *> arg
    run_batch(w.job, w.trie, w.score, w.weights)


cdef class _Packer


cdef class _BatchRunner:
    """Owns one batch job (its id buffer ``job.out`` included) and its native
    helper threads; the calling thread is a worker too."""
    cdef BatchJob job
    cdef Segmenter segmenter
    cdef Weights weights
    cdef bint sampling
    cdef object keep    # buffers the job points into
    cdef object out     # int32 array behind job.out
    cdef object counts
    cdef _Packer packer   # a batch of Python texts: packed while the helpers segment
    cdef Worker worker
    cdef bp_thread_start_arg start
    cdef bp_thread *threads
    cdef int n_threads

    cdef void prepare(self):
        self.worker.job = &self.job
        self.worker.trie = &self.segmenter.trie
        self.worker.score = self.segmenter.score
        self.worker.weights = &self.weights if self.sampling else NULL
        self.start.fn = worker_main
        self.start.arg = &self.worker

    cdef int start_helpers(self, int num_threads) except -1:
        """Start up to ``num_threads - 1`` helpers (fewer if the system
        refuses: the work is claimed, so the others do it)."""
        self.prepare()
        self.n_threads = 0
        if num_threads <= 1:
            return 0
        self.threads = <bp_thread *> malloc((num_threads - 1) * sizeof(bp_thread))
        if self.threads == NULL:
            raise MemoryError()
        with nogil:
            while self.n_threads < num_threads - 1:
                if bp_thread_start(&self.threads[self.n_threads], &self.start) != 0:
                    break
                self.n_threads += 1
        return 0

    cdef void join_helpers(self) noexcept nogil:
        cdef int t
        for t in range(self.n_threads):
            bp_thread_join(self.threads[t])
        free(self.threads)
        self.threads = NULL
        self.n_threads = 0

    def __dealloc__(self):
        self.join_helpers()

    cdef int alloc_out(self, int64_t text_bytes) except -1:
        """The id buffer, for texts of ``text_bytes`` in all: text i writes
        at ``out + offsets[i] + i * extra``, and a text of n bytes has at
        most n ids. A larger buffer keeps the ids written so far. NumPy
        owns it, and asks for huge pages on large arrays: a batch of the
        corpora takes ~100 page faults with it against ~300 with malloc
        (the time was the same, measured)."""
        cdef int64_t size = max(1, text_bytes + self.job.n_texts * (self.job.add_bos + self.job.add_eos))
        out = np.empty(size, dtype=np.int32)
        cdef int32_t[::1] view = out
        if self.out is not None:
            memcpy(&view[0], self.job.out, self.out.shape[0] * sizeof(int32_t))
        self.out = out
        self.job.out = &view[0]
        return 0

    cdef int publish_texts(self) except -1:
        """Let the workers at the texts, block by block. A job over packed
        bytes has them all at once. A job over Python texts packs them here
        (under the GIL): while helper threads run, each block is published
        as soon as it is packed, so on two threads the helper segments the
        first blocks while this thread packs the rest, and packing (about a
        twentieth of the work) no longer runs alone before the threads start.
        If packing raises, the helpers are released and joined first."""
        cdef BatchJob *job = &self.job
        cdef int64_t b
        if self.packer is None:
            bp_store_release_ll(&job.packed_blocks, job.n_blocks)
            return 0
        # The packer points back at this runner only while it packs: a
        # lasting cycle would keep each batch's buffers alive until the
        # cyclic collector runs (measured: memory and time grew per batch).
        self.packer.runner = self
        cdef unsigned char[::1] done_view
        try:
            if self.n_threads == 0:
                self.packer.write(0, job.n_texts)
                self.alloc_out(self.packer.pos)     # exact: packing is over
                bp_store_release_ll(&job.packed_blocks, job.n_blocks)
                return 0
            # The helpers write ids before packing ends: size the id buffer
            # from the most UTF-8 the texts can take (it grows with the text
            # buffer if that is short).
            self.alloc_out(self.packer.room)
            if job.done == NULL:
                # Growing the buffers waits on the blocks' flags (list mode
                # has them already). No helper reads the job before the first
                # block is published, so they may be set up here.
                done = np.zeros(job.n_blocks, dtype=np.uint8)
                done_view = done
                self.keep.append(done)
                job.done = &done_view[0]
            for b in range(job.n_blocks):
                self.packer.write(b * job.block, min(job.n_texts, (b + 1) * job.block))
                bp_store_release_ll(&job.packed_blocks, b + 1)
        except BaseException:
            self.abort()
            raise
        finally:
            self.packer.runner = None
        return 0

    cdef void abort(self) noexcept:
        """Stop the helpers early and join them: waiting ones quit, and in
        list mode every block without lists is marked given up."""
        cdef int64_t b
        bp_store_release(&self.job.aborted, 1)
        if self.job.allocated != NULL:
            for b in range(self.job.n_blocks):
                if not self.job.allocated[b]:
                    bp_store_release(&self.job.allocated[b], 2)   # release waiting helpers
        with nogil:
            self.join_helpers()

    cdef int alloc_lists(self, list result, int64_t lo_block, int64_t hi_block) except -1:
        """List mode: allocate the (untracked, unfilled) lists of the texts of
        blocks lo_block..hi_block-1 into ``result``, then flag the blocks."""
        cdef int64_t i, b
        cdef object lst
        for i in range(lo_block * self.job.block, min(self.job.n_texts, hi_block * self.job.block)):
            lst = PyList_New(self.job.counts[i])
            PyObject_GC_UnTrack(lst)
            self.job.lists[i] = <void *> lst
            Py_INCREF(lst)
            PyList_SET_ITEM(result, i, lst)
        for b in range(lo_block, hi_block):
            bp_store_release(&self.job.allocated[b], 1)
        return 0

    cdef list lists(self, int num_threads, tuple table):
        """Segment on ``num_threads`` threads and return the id lists.

        One thread segments everything, then builds each list straight from
        its ids. With more threads, building the lists under the GIL would
        be a long serial tail, so it is split: only allocating a list needs
        the GIL. The calling thread segments blocks like the helpers and,
        between its blocks, allocates the lists (untracked, items unset) of
        every block finished so far. Each thread points the items of its own
        blocks' lists at the cached ints of ``table`` once they exist (the
        ids are still in its cache), counting per id the references taken.
        At last the calling thread adds those counts to the ints' reference
        counts, id by id (each int's cache line is touched once, not at
        every item), and tracks the lists. Until then no one else can reach
        them (the result list is untracked too), and ``table``, a tuple,
        keeps its ints alive.
        """
        cdef BatchJob *job = &self.job
        cdef EncodeTask task
        cdef FillQueue q
        cdef int64_t ready = 0, upto, b = 0, i, n = job.n_texts
        cdef object lst
        cdef list result = PyList_New(n)
        if num_threads <= 1:
            self.prepare()
            self.publish_texts()
            with nogil:
                run_batch(job, self.worker.trie, self.worker.score, self.worker.weights)
            if job.failed:
                raise MemoryError("out of memory while segmenting")
            was_enabled = pause_gc()
            try:
                for i in range(n):
                    lst = ids_to_list(job.out + job.offsets[i] + i * (job.add_bos + job.add_eos),
                                      job.counts[i], table)
                    Py_INCREF(lst)
                    PyList_SET_ITEM(result, i, lst)
            finally:
                resume_gc(was_enabled)
            return result
        PyObject_GC_UnTrack(result)
        done = np.zeros(job.n_blocks, dtype=np.uint8)
        allocated = np.zeros(job.n_blocks, dtype=np.uint8)
        handles = np.zeros(n, dtype=np.uintp)
        refs = np.zeros((num_threads, len(table)), dtype=np.int64)
        cdef unsigned char[::1] done_view = done
        cdef unsigned char[::1] allocated_view = allocated
        cdef size_t[::1] handle_view = handles
        cdef int64_t[:, ::1] refs_view = refs
        job.done = &done_view[0]
        job.allocated = &allocated_view[0]
        job.lists = <void **> &handle_view[0]
        job.table = PySequence_Fast_ITEMS(table)
        job.refs = &refs_view[0, 0]
        job.n_ids = len(table)
        if queue_init(&q, job) < 0:
            free(q.blocks)
            raise MemoryError()
        self.start_helpers(num_threads)
        task_init(&task, self.worker.trie, self.worker.score, self.worker.weights)
        was_enabled = pause_gc()
        try:
            self.publish_texts()
            while ready < job.n_blocks:
                with nogil:
                    if b < job.n_blocks:
                        b = bp_fetch_add(&job.next_block, 1)
                        if b < job.n_blocks:
                            run_block(job, &task, NULL, b)
                            q.blocks[q.tail] = b
                            q.tail += 1
                    if b >= job.n_blocks:
                        # Nothing left to claim: wait for the helpers' next
                        # block in order (every claimed block gets its flag).
                        while not bp_load_acquire(&job.done[ready]):
                            bp_yield()
                    upto = ready
                    while upto < job.n_blocks and bp_load_acquire(&job.done[upto]):
                        upto += 1
                if job.failed:
                    break
                self.alloc_lists(result, ready, upto)
                ready = upto
                with nogil:
                    fill_ready(job, &q, False)
        finally:
            resume_gc(was_enabled)
            scratch_free(&task.scratch)
            self.abort()   # after a normal run: only joins
            free(q.blocks)
            job.done = NULL
            # Every filled item gets its reference, also when giving up: the
            # lists are then consistent and freed with the result.
            bp_add_refs(job.table, job.refs, job.n_ids, num_threads)
        if job.failed:
            raise MemoryError("out of memory while segmenting")
        for i in range(n):
            PyObject_GC_Track(<object> job.lists[i])
        PyObject_GC_Track(result)
        return result

    cdef use_weights(self, Segmenter segmenter, double alpha):
        """Point the job at ``segmenter`` and the sampling weights of ``alpha``."""
        self.segmenter = segmenter
        self.sampling = alpha >= 0.0
        if self.sampling:
            weights, log_domain, address = segmenter._weights_for(alpha)
            self.weights.alpha = alpha
            self.weights.log_domain = log_domain
            self.weights.node_weight = NULL
            if not log_domain:
                self.keep.append(weights)
                self.weights.node_weight = <double *> (<size_t> address)


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


cdef int _plan_threads(_BatchRunner runner, int num_threads, int64_t total_bytes,
                       int64_t bytes_per_thread):
    """The threads worth starting (0 asks for all cores); sets the block size.

    A thread costs ~50 us to start, so each gets at least
    ``bytes_per_thread`` of text. Texts are claimed in blocks: one atomic
    claim per text bounced the counter's cache line between the cores tens
    of thousands of times per batch. A block holds at most about 16 KB of
    text and 256 texts, and each thread gets at least 32 blocks, so that
    the threads finish close together.
    """
    cdef int64_t n = runner.job.n_texts, block
    if num_threads <= 0:
        num_threads = _cpu_count()
    num_threads = max(1, min(num_threads, n, 1 + total_bytes // bytes_per_thread))
    block = min(256, n // (32 * num_threads))
    if total_bytes > 0:
        block = min(block, n * 16384 // total_bytes)
    block = max(1, block)
    runner.job.block = block
    runner.job.n_blocks = (n + block - 1) // block
    return num_threads


cdef _run_threads(_BatchRunner runner, int num_threads, int64_t total_bytes,
                  int64_t bytes_per_thread=65536):
    """Run the job on ``num_threads`` native threads (the caller's included)."""
    num_threads = _plan_threads(runner, num_threads, total_bytes, bytes_per_thread)
    runner.start_helpers(num_threads)
    runner.publish_texts()
    with nogil:
        worker_main(&runner.worker)
        runner.join_helpers()
    if runner.job.failed:
        raise MemoryError("out of memory while segmenting")


cdef check_offsets(const int64_t[::1] off, int64_t size):
    """Offsets must be non-decreasing and inside the buffer."""
    cdef int64_t i
    for i in range(off.shape[0] - 1):
        if off[i] > off[i + 1]:
            raise ValueError(f"offsets must be non-decreasing (offsets[{i}] > offsets[{i + 1}])")
    if off.shape[0] and (off[0] < 0 or off[off.shape[0] - 1] > size):
        raise ValueError(f"offsets must lie within the data (0..{size})")


cdef extern from *:
    """
    /* A new list of the cached int objects table[ids[0..n-1]]: one reference
       count update per item (Cython's item-by-item code does three). The
       caller has checked that every id indexes the table. */
    static PyObject *bp_ids_to_list(const int32_t *ids, Py_ssize_t n, PyObject *table) {
        PyObject *list = PyList_New(n);
        PyObject **items, **dst;
        Py_ssize_t j;
        if (list == NULL) return NULL;
        items = PySequence_Fast_ITEMS(table);
        dst = PySequence_Fast_ITEMS(list);
        for (j = 0; j < n; j++) {
            PyObject *o = items[ids[j]];
            Py_INCREF(o);
            dst[j] = o;
        }
        return list;
    }
    """
    list bp_ids_to_list(const int32_t *ids, Py_ssize_t n, object table)


cdef inline list ids_to_list(const int32_t *ids, int64_t n, object table):
    """A Python list of cached int objects (no new int per id); ``table`` is
    a list or tuple the caller has checked."""
    return bp_ids_to_list(ids, n, table)


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void *PyUnicode_DATA(object o)
    int PyUnicode_KIND(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    bytes PyBytes_FromStringAndSize(const char *v, Py_ssize_t n)
    bytearray PyByteArray_FromStringAndSize(const char *v, Py_ssize_t n)
    char *PyByteArray_AS_STRING(object o)
    int PyByteArray_Resize(object o, Py_ssize_t n) except -1


cdef extern from "_nfc_table.h":
    int BP_NFC_SAFE_RANGES
    int BP_NFC_SAFE_ASTRAL
    const unsigned short bp_nfc_safe_ranges[][2]
    const unsigned int bp_nfc_safe_astral[][2]


cdef extern from *:
    """
    /* One bit per BMP code point: set when the code point is NFC on its own
       (see _nfc_table.h). A string of such code points is NFC already. */
    static uint64_t bp_nfc_safe[1024];

    static inline int bp_is_nfc_safe(uint32_t cp) {
        int lo = 0, hi = BP_NFC_SAFE_ASTRAL - 1, mid;
        if (cp < 0x10000) return (bp_nfc_safe[cp >> 6] >> (cp & 63)) & 1;
        while (lo <= hi) {   /* above the BMP (rarer): binary search of the ranges */
            mid = (lo + hi) >> 1;
            if (cp < bp_nfc_safe_astral[mid][0]) hi = mid - 1;
            else if (cp > bp_nfc_safe_astral[mid][1]) lo = mid + 1;
            else return 1;
        }
        return 0;
    }

    /* 1 when s[0..n) is valid UTF-8 of code points that are each NFC on
       their own, with no carriage return: such bytes are NFC text with \n
       line ends as they are. 0 means "not shown": the caller decodes and
       normalizes (and reports invalid UTF-8) the exact way. */
    static int bp_utf8_is_plain_nfc(const unsigned char *s, Py_ssize_t n) {
        Py_ssize_t i = 0;
        uint32_t cp;
        while (i < n) {
            unsigned char b = s[i];
            if (b < 0x80) {
                if (b == 13) return 0;   /* carriage return */
                i++;
                continue;
            }
            if (b >= 0xC2 && b <= 0xDF) {
                if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
                cp = ((uint32_t) (b & 0x1F) << 6) | (s[i + 1] & 0x3F);
                i += 2;
                if (cp >= 0x300 && !bp_is_nfc_safe(cp)) return 0;
                continue;
            }
            if (b >= 0xE0 && b <= 0xEF) {
                if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
                cp = ((uint32_t) (b & 0x0F) << 12) | ((uint32_t) (s[i + 1] & 0x3F) << 6)
                     | (s[i + 2] & 0x3F);
                /* overlong forms and surrogates are not in the table either */
                if (cp < 0x800 || !bp_is_nfc_safe(cp)) return 0;
                i += 3;
                continue;
            }
            if (b >= 0xF0 && b <= 0xF4) {
                if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80
                        || (s[i + 3] & 0xC0) != 0x80) return 0;
                cp = ((uint32_t) (b & 0x07) << 18) | ((uint32_t) (s[i + 1] & 0x3F) << 12)
                     | ((uint32_t) (s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
                /* overlong forms and values past U+10FFFF are not in the table */
                if (cp < 0x10000 || !bp_is_nfc_safe(cp)) return 0;
                i += 4;
                continue;
            }
            return 0;            /* invalid bytes */
        }
        return 1;
    }

    /* Room bp_nfc_utf8_write may need per code point of a str of this kind. */
    static inline Py_ssize_t bp_utf8_room(int kind) { return kind == 1 ? 2 : kind == 2 ? 3 : 4; }

    /* Write the UTF-8 of a non-ASCII str's n code points to out (which has
       room for bp_utf8_room(kind) bytes each) and return its size, or -1 as
       soon as a code point is not NFC on its own (out then holds a partial
       write). Checking and encoding in one loop: the branch on the class of
       each code point is taken once. One loop per storage width, so that
       each knows its width (and kind 2 that no code point needs 4 bytes). */
    #define BP_NFC_WRITE_LOOP(T, ASTRAL)                                         \
        {                                                                        \
            const T *d = (const T *) data;                                       \
            for (i = 0; i < n; i++) {                                            \
                uint32_t cp = d[i];                                              \
                if (cp < 0x80) {                                                 \
                    *o++ = (unsigned char) cp;                                   \
                    continue;                                                    \
                }                                                                \
                if (cp >= 0x300 && !bp_is_nfc_safe(cp)) return -1;               \
                if (cp < 0x800) {                                                \
                    o[0] = (unsigned char) (0xC0 | (cp >> 6));                   \
                    o[1] = (unsigned char) (0x80 | (cp & 0x3F));                 \
                    o += 2;                                                      \
                } else if (!ASTRAL || cp < 0x10000) {                            \
                    o[0] = (unsigned char) (0xE0 | (cp >> 12));                  \
                    o[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));          \
                    o[2] = (unsigned char) (0x80 | (cp & 0x3F));                 \
                    o += 3;                                                      \
                } else {                                                         \
                    o[0] = (unsigned char) (0xF0 | (cp >> 18));                  \
                    o[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));         \
                    o[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));          \
                    o[3] = (unsigned char) (0x80 | (cp & 0x3F));                 \
                    o += 4;                                                      \
                }                                                                \
            }                                                                    \
        }
    static Py_ssize_t bp_nfc_utf8_write(int kind, const void *data, Py_ssize_t n, char *out) {
        Py_ssize_t i;
        unsigned char *o = (unsigned char *) out;
        if (kind == 1) {   /* Latin-1 is NFC on its own */
            const uint8_t *d = (const uint8_t *) data;
            for (i = 0; i < n; i++) {
                if (d[i] < 0x80) {
                    *o++ = d[i];
                } else {
                    o[0] = (unsigned char) (0xC0 | (d[i] >> 6));
                    o[1] = (unsigned char) (0x80 | (d[i] & 0x3F));
                    o += 2;
                }
            }
        }
        else if (kind == 2) BP_NFC_WRITE_LOOP(uint16_t, 0)
        else BP_NFC_WRITE_LOOP(uint32_t, 1)
        return (char *) o - out;
    }

    /* The most UTF-8 the str and bytes items[0..n) can take (other items
       count 0: the packer grows its buffer for them). Each item's
       header is fetched 16 items ahead: the texts lie all over the heap,
       and waiting for one header at a time made this loop (which runs
       before the helper threads have anything to do) take 0.45 ms of a
       24 ms two-thread batch of 33k lines; prefetched it takes 0.25 ms. */
    #if defined(__GNUC__) || defined(__clang__)
    #define BP_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define BP_PREFETCH(p) ((void) 0)
    #endif
    static Py_ssize_t bp_sized_room(void **items, Py_ssize_t n) {
        Py_ssize_t i, room = 0;
        for (i = 0; i < n; i++) {
            PyObject *t = (PyObject *) items[i];
            if (i + 16 < n) BP_PREFETCH(items[i + 16]);
            if (PyUnicode_CheckExact(t)) {
                Py_ssize_t size = PyUnicode_GET_LENGTH(t);
                room += PyUnicode_IS_ASCII(t) ? size : size * bp_utf8_room(PyUnicode_KIND(t));
            } else if (PyBytes_CheckExact(t)) {
                room += PyBytes_GET_SIZE(t);
            }
        }
        return room;
    }

    /* The NFC UTF-8 of a non-ASCII str as bytes, or None when a code point
       is not NFC on its own. Written at the most UTF-8 the str can take,
       then cut in place: no second pass, no copy (the pages past the end
       are never touched). */
    static PyObject *bp_str_nfc_utf8_bytes(int kind, const void *data, Py_ssize_t n) {
        PyObject *out = PyBytes_FromStringAndSize(NULL, n * bp_utf8_room(kind));
        Py_ssize_t size;
        if (out == NULL) return NULL;
        size = bp_nfc_utf8_write(kind, data, n, PyBytes_AS_STRING(out));
        if (size < 0) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        if (_PyBytes_Resize(&out, size) < 0) return NULL;
        return out;
    }
    """
    uint64_t bp_nfc_safe[1024]
    Py_ssize_t bp_sized_room(void **items, Py_ssize_t n) noexcept
    bint bp_is_nfc_safe(uint32_t cp) noexcept nogil
    bint bp_utf8_is_plain_nfc(const unsigned char *s, Py_ssize_t n) noexcept nogil
    Py_ssize_t bp_utf8_room(int kind) noexcept nogil
    Py_ssize_t bp_nfc_utf8_write(int kind, const void *data, Py_ssize_t n, char *out) noexcept nogil
    object bp_str_nfc_utf8_bytes(int kind, const void *data, Py_ssize_t n)


cdef void _init_nfc_table() noexcept:
    cdef int r
    cdef uint32_t cp
    memset(bp_nfc_safe, 0, sizeof(bp_nfc_safe))
    for r in range(BP_NFC_SAFE_RANGES):
        for cp in range(bp_nfc_safe_ranges[r][0], bp_nfc_safe_ranges[r][1] + 1):
            bp_nfc_safe[cp >> 6] |= (<uint64_t> 1) << (cp & 63)

_init_nfc_table()


def str_nfc_utf8(str text not None, nfc_utf8):
    """The NFC UTF-8 of ``text``: in C when ``text`` is provably NFC (see
    :func:`pack_texts`), else ``nfc_utf8(text)``."""
    if PyUnicode_IS_ASCII(text):
        return PyBytes_FromStringAndSize(<const char *> PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
    out = bp_str_nfc_utf8_bytes(PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
    return nfc_utf8(text) if out is None else out


def is_plain_nfc_utf8(const unsigned char[::1] view not None):
    """True when ``view`` (bytes-like) is valid UTF-8, has no ``\\r`` and is
    NFC as it is, shown with the table of code points that are NFC on their
    own; False means only "not shown" (decode and normalize it the exact way)."""
    cdef bint ok
    if view.shape[0] == 0:
        return True
    with nogil:
        ok = bp_utf8_is_plain_nfc(&view[0], view.shape[0])
    return ok


def nfc_safe_ranges():
    """The inclusive code point ranges the fast NFC path takes as NFC on
    their own (for tests: they must agree with ``unicodedata``)."""
    return ([(bp_nfc_safe_ranges[r][0], bp_nfc_safe_ranges[r][1]) for r in range(BP_NFC_SAFE_RANGES)]
            + [(bp_nfc_safe_astral[r][0], bp_nfc_safe_astral[r][1]) for r in range(BP_NFC_SAFE_ASTRAL)])


def pack_texts(texts, nfc_utf8):
    """Lay the UTF-8 of every text back to back: ``(data, offsets)``.

    ``str`` items are NFC-normalized and ``bytes`` items taken as they are.
    Most strings are provably NFC already and are encoded here in C: pure
    ASCII (its storage is its UTF-8) and strings whose code points are all
    NFC on their own (``_nfc_table.h``: Latin-1, most scripts, CJK with its
    extensions, Hangul syllables, emoji). The rest go through ``nfc_utf8``, which also
    raises the descriptive errors. Batch encoding packs the same way
    (:class:`_Packer`), a block of texts at a time while its threads run.
    """
    cdef _Packer packer = _Packer()
    packer.size(texts, nfc_utf8)
    packer.write(0, packer.n)
    PyByteArray_Resize(packer.data, packer.pos)
    return packer.data, packer.offsets


def _sized_room(texts):
    """The bytes the packer reserves for ``texts`` before writing them (for tests)."""
    cdef _Packer packer = _Packer()
    packer.size(texts, None)
    return packer.room


cdef class _Packer:
    """Writes the UTF-8 of a sequence of texts back to back into a bytearray,
    a range of texts at a time (see :func:`pack_texts`).

    One pass over the texts: the buffer is sized first from the string
    lengths (the most UTF-8 each can take), then each text is written in
    place, a non-ASCII one checked and encoded in the same loop. Texts the
    sizing cannot count (bytearray, memoryview, strings NFC makes longer)
    grow the buffer. With ``runner`` set (while the runner packs), the
    buffer is that job's text buffer and the job's id buffer, once made,
    grows along; if the runner has helper threads, they may be segmenting
    the blocks published so far, so growing first waits until they are done
    with them (the only moment the buffers move).
    """
    cdef object texts
    cdef object nfc_utf8
    cdef object data            # bytearray: the packed UTF-8
    cdef object offsets         # int64 array of n + 1: text i is data[offsets[i]:offsets[i+1]]
    cdef int64_t *off
    cdef char *dst
    cdef Py_ssize_t n, room, pos
    cdef _BatchRunner runner    # while it packs: the job whose buffers these are

    cdef int size(self, texts, nfc_utf8) except -1:
        """Take the texts and size the buffer. The packer holds a snapshot
        of them for the whole call: a tuple as it is, a list copied into a
        tuple (one pointer copy per text), any other sequence read once,
        item by item, into a tuple. The caller's list may then change at any
        moment (another thread, or a ``str`` subclass's ``__str__`` run while
        packing) without the packer reading freed or missing items."""
        if type(texts) is list:
            texts = PyList_AsTuple(texts)
        elif type(texts) is not tuple:
            texts = tuple([texts[i] for i in range(len(texts))])
        cdef Py_ssize_t n = len(texts)
        self.texts = texts
        self.nfc_utf8 = nfc_utf8
        self.n = n
        self.offsets = np.empty(n + 1, dtype=np.int64)
        cdef int64_t[::1] off = self.offsets
        self.off = &off[0]
        self.room = bp_sized_room(PySequence_Fast_ITEMS(texts), n)
        self.pos = 0
        self.off[0] = 0
        self.data = PyByteArray_FromStringAndSize(NULL, self.room)
        self.dst = PyByteArray_AS_STRING(self.data)
        return 0

    cdef int write(self, Py_ssize_t lo, Py_ssize_t hi) except -1:
        """Append texts ``lo .. hi - 1`` (the next ones) and their offsets."""
        cdef Py_ssize_t i, size
        cdef char *dst = self.dst
        for i in range(lo, hi):
            t = self.texts[i]
            if type(t) is str:
                size = PyUnicode_GET_LENGTH(t)
                if PyUnicode_IS_ASCII(t):
                    dst = self.fit(self.pos + size)
                    memcpy(dst + self.pos, PyUnicode_DATA(t), size)
                else:
                    dst = self.fit(self.pos + size * bp_utf8_room(PyUnicode_KIND(t)))
                    size = bp_nfc_utf8_write(PyUnicode_KIND(t), PyUnicode_DATA(t), size, dst + self.pos)
                    if size < 0:
                        t = self.nfc_utf8(t)   # not shown NFC by the table: the exact path
                        size = -1
            elif type(t) is not bytes:
                if isinstance(t, (bytearray, memoryview)):
                    t = bytes(t)
                elif isinstance(t, str):
                    t = self.nfc_utf8(str(t))
                else:
                    raise TypeError(f"text {i} must be str or bytes, got {type(t).__name__}")
                size = -1
            else:
                size = -1
            if size < 0:    # t is bytes now
                if type(t) is not bytes:
                    raise TypeError(f"nfc_utf8 must return bytes, got {type(t).__name__}")
                size = PyBytes_GET_SIZE(t)
                dst = self.fit(self.pos + size)
                memcpy(dst + self.pos, PyBytes_AS_STRING(t), size)
            self.pos += size
            self.off[i + 1] = self.pos
        return 0

    cdef char *fit(self, Py_ssize_t need) except NULL:
        """The buffer, grown to hold at least ``need`` bytes if it does not."""
        cdef Py_ssize_t room
        cdef BatchJob *job
        cdef int rc
        if need <= self.room:
            return self.dst
        room = max(need, 2 * self.room)
        if self.runner is not None:
            job = &self.runner.job
            if self.runner.n_threads > 0:
                with nogil:
                    rc = drain_published(job)
                if rc < 0:
                    raise MemoryError("out of memory while segmenting")
            if self.runner.out is not None:
                self.runner.alloc_out(room)
        PyByteArray_Resize(self.data, room)
        self.room = room
        self.dst = PyByteArray_AS_STRING(self.data)
        if self.runner is not None:
            job.data = <const unsigned char *> self.dst
        return self.dst


cdef check_table(table, int64_t n_ids):
    """An id table must be a tuple or list with an entry for every id."""
    if type(table) is not tuple and type(table) is not list:
        raise TypeError(f"table must be a tuple or list, got {type(table).__name__}")
    if len(table) < n_ids:
        raise ValueError(f"table must hold an entry for each of the {n_ids} ids")


def split_lists(ids, bounds, table):
    """``[ids[bounds[i]:bounds[i+1]] as lists of ints]``, ints taken from ``table``."""
    cdef const int32_t[::1] flat = np.ascontiguousarray(ids, dtype=np.int32)
    cdef const int64_t[::1] b = np.ascontiguousarray(bounds, dtype=np.int64)
    cdef Py_ssize_t i, n = b.shape[0] - 1
    cdef list result
    cdef object item
    check_offsets(b, flat.shape[0])
    check_table(table, 0)
    if flat.shape[0] and (np.min(ids) < 0 or np.max(ids) >= len(table)):
        raise ValueError("ids must lie within the table")
    result = PyList_New(max(n, 0))
    was_enabled = pause_gc()
    try:
        for i in range(n):
            item = ids_to_list(&flat[b[i]] if b[i + 1] > b[i] else NULL, b[i + 1] - b[i], table)
            Py_INCREF(item)
            PyList_SET_ITEM(result, i, item)
    finally:
        resume_gc(was_enabled)
    return result


cdef bint pause_gc():
    """Stop the cyclic collector while many id lists are built; returns
    whether it was running. Every new list is a GC-tracked object, so
    building tens of thousands of them sets off collection after collection
    over lists that hold nothing but ints (half the time of building them,
    measured). No Python code runs while the lists are built, so the pause
    is invisible to users."""
    was_enabled = gc.isenabled()
    gc.disable()
    return was_enabled


cdef void resume_gc(bint was_enabled):
    if was_enabled:
        gc.enable()


cdef _packed_offsets(data, offsets, str name):
    """``offsets`` as a contiguous int64 array, after checking that ``data``
    is a buffer (not None, which a memoryview would take as empty) and that
    ``offsets`` is a 1-D array of integers: TypeError naming the argument."""
    if data is None:
        raise TypeError(f"{name}: data must be a bytes-like object, got None")
    arr = np.asarray(offsets) if offsets is not None else None
    if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError(f"{name}: offsets must be a 1-D array of integers, got {type(offsets).__name__}")
    return np.ascontiguousarray(arr, dtype=np.int64)


cdef _BatchRunner _new_runner(Segmenter segmenter, int64_t n, double alpha, uint64_t seed,
                              bint chunked, bint add_bos, bint add_eos, int64_t first_index):
    """A job over ``n`` texts whose ids are written to ``job.out`` (see
    :meth:`_BatchRunner.alloc_out`), their number to ``counts``."""
    cdef _BatchRunner runner = _BatchRunner()
    counts = np.zeros(max(1, n), dtype=np.int64)
    cdef int64_t[::1] count_view = counts
    runner.keep = [counts]
    runner.counts = counts
    memset(&runner.job, 0, sizeof(BatchJob))
    runner.job.n_texts = n
    runner.job.counts = &count_view[0]
    runner.job.add_bos = add_bos
    runner.job.add_eos = add_eos
    runner.job.chunked = chunked
    runner.job.seed = seed
    runner.job.first_index = first_index
    runner.use_weights(segmenter, alpha)
    return runner


cdef _BatchRunner _batch_job(Segmenter segmenter, data, offsets, double alpha, uint64_t seed,
                             bint chunked, bint add_bos, bint add_eos, int64_t first_index,
                             str name):
    """A job over the packed texts ``data[offsets[i]:offsets[i+1]]``."""
    cdef const int64_t[::1] off = _packed_offsets(data, offsets, name)
    cdef const unsigned char[::1] view = data
    cdef int64_t n = off.shape[0] - 1
    if n < 0:
        raise ValueError("offsets must hold at least one value")
    check_offsets(off, view.shape[0])
    cdef _BatchRunner runner = _new_runner(segmenter, n, alpha, seed, chunked, add_bos, add_eos,
                                           first_index)
    # The view is kept too: it holds the buffer exported, so a bytearray
    # cannot be resized (freed) by another thread while the job reads it.
    runner.keep += [data, off, view]
    runner.job.data = &view[0] if view.shape[0] else <const unsigned char *> ""
    runner.job.offsets = &off[0]
    runner.alloc_out(off[n])
    return runner


cdef _BatchRunner _text_job(Segmenter segmenter, texts, nfc_utf8, double alpha, uint64_t seed,
                            bint add_bos, bint add_eos, int64_t first_index):
    """A job over Python texts (str or bytes-like), packed as the job runs
    (:meth:`_BatchRunner.publish_texts`), which also makes its id buffer."""
    cdef _Packer packer = _Packer()
    packer.size(texts, nfc_utf8)
    cdef _BatchRunner runner = _new_runner(segmenter, packer.n, alpha, seed, True, add_bos,
                                           add_eos, first_index)
    runner.packer = packer
    runner.job.data = <const unsigned char *> packer.dst
    runner.job.offsets = packer.off
    return runner


cdef tuple _flat_result(_BatchRunner runner):
    """``(ids, bounds)`` of a finished job: its ids laid end to end."""
    cdef int64_t n = runner.job.n_texts, i, extra = runner.job.add_bos + runner.job.add_eos
    counts = runner.counts
    bounds = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts[:n], out=bounds[1:])
    result = np.empty(bounds[n], dtype=np.int32)
    cdef int32_t[::1] res_view = result
    cdef int64_t[::1] b_view = bounds
    cdef const int32_t *out = runner.job.out
    cdef const int64_t *count = runner.job.counts
    cdef const int64_t *off = runner.job.offsets
    with nogil:
        for i in range(n):
            if count[i]:
                memcpy(&res_view[b_view[i]], &out[off[i] + i * extra], count[i] * sizeof(int32_t))
    return result, bounds


cdef class Segmenter:
    """The compiled vocabulary: a reversed-piece trie plus float64 scores.

    ``Segmenter(pieces, scores)``: ``pieces[i]`` (non-empty bytes, all
    distinct, every single byte present) has id ``i + 3`` and log-probability
    ``scores[i]``. The object is immutable and safe to share between threads.
    """

    def __cinit__(self):
        self.score = NULL
        memset(&self.trie, 0, sizeof(Trie))

    def __init__(self, pieces, scores, bint check=True):
        cdef int64_t n, i, pos
        cdef int rc
        if self.score != NULL:
            raise TypeError("a Segmenter is immutable: it is already initialized")
        if not isinstance(pieces, (list, tuple)):
            raise TypeError(f"pieces must be a list of bytes, got {type(pieces).__name__}")
        n = len(pieces)
        if n == 0:
            raise ValueError("the vocabulary is empty")
        if n > 0x7FFFFF00 - 3:
            raise ValueError(f"too many pieces: {n}")
        scores_arr = np.ascontiguousarray(scores, dtype=np.float64)
        if scores_arr.ndim != 1 or scores_arr.shape[0] != n:
            raise ValueError(f"scores must be a 1-d array of {n} floats, got shape {scores_arr.shape}")
        if not np.all(np.isfinite(scores_arr)):
            raise ValueError("scores must be finite")
        if check and np.any(scores_arr > 0):
            # The sampler relies on p ** alpha <= 1 (no overflow in its sums).
            raise ValueError("scores must be log-probabilities (<= 0)")
        if check:
            # The trie builder relies on these; check=False is for callers that
            # validated already (Tokenizer via model_io), never for user input.
            seen = set()
            for i in range(n):
                p = pieces[i]
                if not isinstance(p, bytes):
                    raise TypeError(f"piece {i} must be bytes, got {type(p).__name__}")
                if not p:
                    raise ValueError(f"piece {i} (id {i + 3}) is empty")
                if p in seen:
                    raise ValueError(f"piece {p!r} appears twice")
                seen.add(p)
            missing = [b for b in range(256) if bytes([b]) not in seen]
            if missing:
                raise ValueError(f"single-byte pieces missing: {missing[:8]} (all 256 are required)")
        self.trie.none = <int32_t> n
        reversed_pieces = [p[::-1] for p in pieces]
        order = sorted(range(n), key=reversed_pieces.__getitem__)
        ordered = [reversed_pieces[i] for i in order]
        keys = b"".join(ordered)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, ordered), dtype=np.int64, count=n), out=offsets[1:])
        ids = np.asarray(order, dtype=np.int32)
        cdef const unsigned char[::1] keys_view = keys
        cdef const int64_t[::1] off_view = offsets
        cdef const int32_t[::1] id_view = ids
        with nogil:
            rc = trie_build(&self.trie, &keys_view[0], &off_view[0], &id_view[0], n)
        if rc < 0:
            trie_free(&self.trie)
            if rc == -2:
                raise ValueError(f"vocabulary too large: its trie needs more than {TRIE_MAX_CELLS} cells")
            raise MemoryError("out of memory while building the vocabulary trie")
        self.score = <double *> malloc((n + 1) * sizeof(double))
        self.trie.length = <int32_t *> malloc(n * sizeof(int32_t))
        if self.score == NULL or self.trie.length == NULL:
            raise MemoryError()
        for i in range(n):
            self.score[i] = scores_arr[i]
            self.trie.length[i] = <int32_t> len(pieces[i])
        self.score[n] = -INFINITY    # trie.none: the "no piece" index
        for i in range(self.trie.size):
            self.trie.node_score[i] = self.score[self.trie.value[i]]
        self.n_pieces = <int32_t> n
        self._pieces = list(pieces)
        self._scores = scores_arr
        self._weights_cache = {}
        self._weights_lock = threading.Lock()

    def __dealloc__(self):
        trie_free(&self.trie)
        free(self.score)

    def __reduce__(self):
        # The trie units travel as raw bytes: unpickling is a memcpy, no rebuild.
        units = (<char *> self.trie.unit)[:self.trie.size * sizeof(uint32_t)]
        values = (<char *> self.trie.value)[:self.trie.size * sizeof(int32_t)]
        return (_segmenter_from_state,
                (self._pieces, self._scores, units, values, self.trie.max_depth, TRIE_LAYOUT))

    @property
    def n_pieces(self):
        """Number of pieces (the vocabulary size without the 3 special ids)."""
        return self.n_pieces

    @property
    def max_piece_length(self):
        """Length in bytes of the longest piece."""
        return self.trie.max_depth

    @property
    def trie_cells(self):
        """Number of double-array cells (memory use is 16 bytes per cell:
        a 4-byte unit, a piece index and a score)."""
        return self.trie.size

    # -- sampling weights ---------------------------------------------------

    cdef object _node_weights(self, double alpha):
        """``p ** alpha`` of the piece ending at each trie node, 0 where none
        does: one load per lattice edge instead of node -> piece -> weight.
        The value for a piece is exactly ``exp(alpha * score)``."""
        cdef int64_t i, size = self.trie.size
        cdef const double *node_score = self.trie.node_score
        weights = np.zeros(size, dtype=np.float64)
        cdef double[::1] w = weights
        with nogil:
            for i in range(size):
                if node_score[i] != -INFINITY:
                    w[i] = exp(alpha * node_score[i])
        return weights

    cdef object _weights_for(self, double alpha):
        """(weights array, log_domain, address of the weights) for ``alpha``,
        cached for the few last alphas (the address is cached too: asking
        NumPy for it costs more than sampling a short line)."""
        if not (alpha >= 0.0) or alpha == INFINITY:
            raise ValueError(f"alpha must be a finite number >= 0 for sampling, got {alpha}")
        hit = self._weights_cache.get(alpha)   # a dict read is atomic; writes take the lock
        if hit is not None:
            return hit
        # Weights must be exactly p ** alpha: any per-piece rescaling would
        # favour segmentations with fewer or more pieces. Scores are <= 0, so
        # weights are <= 1; the linear path needs them >= 2**-600.
        spread = alpha * -float(self._scores.min())
        if spread > POINT_MASS:
            # Any two segmentations that differ at all differ by > 1e270 nats:
            # the distribution is the Viterbi path (exact ties aside).
            log_domain = 2
        else:
            log_domain = int(spread > LINEAR_RANGE)
        weights = None if log_domain else self._node_weights(alpha)
        hit = (weights, log_domain, 0 if weights is None else weights.ctypes.data)
        with self._weights_lock:
            if len(self._weights_cache) >= 4:
                self._weights_cache.pop(next(iter(self._weights_cache)))
            self._weights_cache[alpha] = hit
        return hit

    # -- encoding -------------------------------------------------------------

    def encode_bytes(self, data, double alpha=-1.0, uint64_t seed=0, bint add_bos=False,
                     bint add_eos=False, int out_type=0, table=None):
        """Segment one byte string (chunked at newline runs).

        ``out_type``: 0 ids as a list of ints (taken from ``table``, a tuple
        or list indexed by id), 1 pieces as a list of bytes (``table`` indexed by id),
        2 a NumPy int32 array of ids. ``alpha < 0`` is deterministic; with
        ``alpha >= 0`` the segmentation is sampled with the stream ``seed``.
        """
        if data is None:
            raise TypeError("data must be a bytes-like object, not None")
        if out_type != 2:
            check_table(table, self.n_pieces + 3)
        cdef const unsigned char[::1] view = data
        cdef int64_t n = view.shape[0], k, w = 0
        cdef EncodeTask task
        cdef Weights weights
        cdef int32_t *ids
        cdef int32_t[::1] arr_view
        memset(&task, 0, sizeof(EncodeTask))
        task.trie = &self.trie
        task.score = self.score
        task.weights = NULL
        keep = None
        if alpha >= 0.0:
            keep, log_domain, address = self._weights_for(alpha)
            weights.alpha = alpha
            weights.log_domain = log_domain
            weights.node_weight = NULL if log_domain else <double *> (<size_t> address)
            task.weights = &weights
            rng_seed(&task.rng, text_seed(seed, 0))
        ids = <int32_t *> malloc((n + 2) * sizeof(int32_t))
        if ids == NULL:
            raise MemoryError()
        try:
            if add_bos:
                ids[0] = 1
                w = 1
            with nogil:
                k = encode_text(&task, &view[0] if n else NULL, n, True, ids + w)
                scratch_free(&task.scratch)
            if k < 0:
                raise MemoryError("out of memory while segmenting")
            w += k
            if add_eos:
                ids[w] = 2
                w += 1
            if out_type == 2:
                arr = np.empty(w, dtype=np.int32)
                if w:
                    arr_view = arr
                    memcpy(&arr_view[0], ids, w * sizeof(int32_t))
                return arr
            return ids_to_list(ids, w, table)
        finally:
            free(ids)

    def encode_concat(self, data, offsets, double alpha=-1.0, uint64_t seed=0,
                      int num_threads=1, bint chunked=True, bint add_bos=False,
                      bint add_eos=False, int64_t first_index=0):
        """Segment many texts given as one buffer and ``n + 1`` offsets.

        Returns ``(ids, bounds)``: the ids of text ``i`` are
        ``ids[bounds[i]:bounds[i+1]]`` (int32, int64). Texts are spread over
        ``num_threads`` native threads (0: all cores); with sampling, text ``i``
        uses a random stream that depends only on ``(seed, first_index + i)``,
        so the result does not depend on the number of threads or on how a
        stream of texts is cut into batches.
        """
        cdef _BatchRunner runner = _batch_job(self, data, offsets, alpha, seed, chunked, add_bos,
                                              add_eos, first_index, "encode_concat")
        cdef int64_t n = runner.job.n_texts
        cdef const int64_t *off = runner.job.offsets
        if n:
            _run_threads(runner, num_threads, off[n] - off[0])
        return _flat_result(runner)

    def encode_lists(self, data, offsets, table, double alpha=-1.0, uint64_t seed=0,
                     int num_threads=1, bint add_bos=False, bint add_eos=False,
                     int64_t first_index=0):
        """Like :meth:`encode_concat`, but returns one list of ints (taken from
        ``table``) per text, built straight from the workers' output (no flat
        copy in between)."""
        check_table(table, self.n_pieces + 3)
        cdef _BatchRunner runner = _batch_job(self, data, offsets, alpha, seed, True, add_bos,
                                              add_eos, first_index, "encode_lists")
        cdef int64_t n = runner.job.n_texts
        cdef const int64_t *off = runner.job.offsets
        if not n:
            return []
        return runner.lists(_plan_threads(runner, num_threads, off[n] - off[0], 65536),
                            table if type(table) is tuple else tuple(table))

    def batch_concat(self, texts, nfc_utf8, double alpha=-1.0, uint64_t seed=0,
                     int num_threads=1, bint add_bos=False, bint add_eos=False,
                     int64_t first_index=0):
        """:func:`pack_texts` and :meth:`encode_concat` in one: ``(ids, bounds)``
        of Python texts. On several threads the calling thread packs while
        the helpers already segment the texts packed so far."""
        cdef _BatchRunner runner = _text_job(self, texts, nfc_utf8, alpha, seed, add_bos, add_eos,
                                             first_index)
        if runner.job.n_texts:
            _run_threads(runner, num_threads, runner.packer.room)
        return _flat_result(runner)

    def batch_lists(self, texts, nfc_utf8, table, double alpha=-1.0, uint64_t seed=0,
                    int num_threads=1, bint add_bos=False, bint add_eos=False,
                    int64_t first_index=0):
        """:func:`pack_texts` and :meth:`encode_lists` in one: one list of ints
        (from ``table``) per Python text, packed while the helpers segment."""
        check_table(table, self.n_pieces + 3)
        cdef _BatchRunner runner = _text_job(self, texts, nfc_utf8, alpha, seed, add_bos, add_eos,
                                             first_index)
        if not runner.job.n_texts:
            return []
        return runner.lists(_plan_threads(runner, num_threads, runner.packer.room, 65536),
                            table if type(table) is tuple else tuple(table))

    def split_counts(self, data, offsets, weights, int num_threads=1):
        """Trainer helper (§6.4 ``split``): segment each item whole, weight its pieces.

        Item ``i`` is ``data[offsets[i]:offsets[i+1]]`` segmented as one chunk
        (deterministic Viterbi); ``weights[i]`` is added to the count of every
        piece its segmentation uses. Returns int64 counts indexed by piece.
        """
        cdef const int64_t[::1] off = _packed_offsets(data, offsets, "split_counts")
        cdef const unsigned char[::1] view = data
        cdef const int64_t[::1] wts = np.ascontiguousarray(weights, dtype=np.int64)
        cdef int64_t n = off.shape[0] - 1
        if n < 0 or wts.shape[0] != n:
            raise ValueError(f"need len(offsets) == len(weights) + 1, got {off.shape[0]} and {wts.shape[0]}")
        check_offsets(off, view.shape[0])
        if num_threads <= 0:
            num_threads = _cpu_count()
        rows = np.zeros((max(1, num_threads), self.n_pieces), dtype=np.int64)
        cdef int64_t[:, ::1] row_view = rows
        cdef _BatchRunner runner = _BatchRunner()
        runner.keep = [data, off, wts, rows]
        memset(&runner.job, 0, sizeof(BatchJob))
        runner.job.data = &view[0] if view.shape[0] else <const unsigned char *> ""
        runner.job.offsets = &off[0]
        runner.job.n_texts = n
        runner.job.weights = &wts[0] if n else NULL
        runner.job.piece_counts = &row_view[0, 0]
        runner.job.n_pieces = self.n_pieces
        runner.job.next_worker = 0
        runner.use_weights(self, -1.0)
        if n:
            _run_threads(runner, rows.shape[0], off[n] - off[0], 16384)
        return rows.sum(axis=0)

    # -- analysis -------------------------------------------------------------

    def entropy(self, data, double alpha=1.0):
        """Shannon entropy (nats) of the segmentation distribution of ``data``
        used by sampling: P(seg) = prod(p ** alpha) / Z, chunk by chunk (chunks
        are independent, so their entropies add). Exact, log domain."""
        cdef const unsigned char[::1] view = data
        cdef int64_t n = view.shape[0], start = 0, end
        cdef double total = 0.0, h
        cdef Scratch scratch
        if not (alpha >= 0.0) or alpha == INFINITY:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
        if alpha * -float(self._scores.min()) > POINT_MASS:
            return 0.0   # the distribution is the Viterbi path: no uncertainty
        memset(&scratch, 0, sizeof(Scratch))
        try:
            with nogil:
                while start < n:
                    end = chunk_end(&view[0], start, n)
                    h = chunk_entropy(&self.trie, self.score, alpha, &view[start], end - start, &scratch)
                    if h != h:
                        break
                    total += h
                    start = end
            if start < n:
                raise MemoryError("out of memory while computing the entropy")
            return total
        finally:
            scratch_free(&scratch)

    def edges(self, data):
        """The lattice of ``data`` as arrays: every vocabulary occurrence that
        lies inside one chunk, as ``(starts, ends, ids)`` (int64, int64, int32),
        ordered by end, then start ascending (the visiting order of §4)."""
        cdef const unsigned char[::1] view = data
        cdef int64_t n = view.shape[0], start, end, e, count = 0
        # Two passes over the text: count, then fill.
        start = 0
        while start < n:
            end = chunk_end(&view[0], start, n)
            for e in range(start + 1, end + 1):
                count += edges_ending_at(&self.trie, &view[0], start, e, NULL, NULL, NULL)
            start = end
        starts = np.empty(count, dtype=np.int64)
        ends = np.empty(count, dtype=np.int64)
        ids = np.empty(count, dtype=np.int32)
        cdef int64_t[::1] s_view = starts
        cdef int64_t[::1] e_view = ends
        cdef int32_t[::1] i_view = ids
        count = 0
        start = 0
        with nogil:
            while start < n:
                end = chunk_end(&view[0], start, n)
                for e in range(start + 1, end + 1):
                    count += edges_ending_at(&self.trie, &view[0], start, e, &s_view[count] if count < s_view.shape[0] else NULL,
                                             &e_view[count] if count < e_view.shape[0] else NULL,
                                             &i_view[count] if count < i_view.shape[0] else NULL)
                start = end
        return starts, ends, ids

    # -- introspection (tests, the readable twin) -----------------------------

    def matches(self, data):
        """Every vocabulary occurrence ``(start, end, id)`` in ``data`` (one chunk),
        ordered by end, then start ascending: the visiting order of §4."""
        cdef const unsigned char[::1] view = data
        cdef int64_t n = view.shape[0], e, k
        cdef int32_t node, nxt, v
        result = []
        for e in range(1, n + 1):
            found = []
            node = 0
            k = e - 1
            while k >= 0:
                nxt = trie_step(self.trie.unit, node, view[k])
                if nxt < 0:
                    break
                node = nxt
                v = self.trie.value[node]
                if v != self.trie.none:
                    found.append((k, e, v + 3))
                k -= 1
            result.extend(reversed(found))
        return result


# Bumped whenever the pickled trie arrays change (3: 4-byte units), so that
# a pickle from another layout is rebuilt instead of misread.
TRIE_LAYOUT = 3


cdef int64_t trie_depth(const uint32_t *unit, int64_t size) noexcept nogil:
    """Depth of the deepest node a walk from the root can reach, or -1 when
    the units are not a trie (two nodes share a base), -2 out of memory.

    The hot walks stop only when the trie has no child (past the longest
    piece they do not check the start of the text), so a Segmenter made
    from foreign arrays must be shown to have no path longer than its
    ``max_depth``. A cell holding byte ``c`` is the child of the node whose
    base is ``cell - c``; following those parents from every cell gives
    its depth. Cells whose parents never reach the root (a loop, or no
    owner) are out of every walk's reach and do not count.
    """
    cdef int32_t *owner = <int32_t *> malloc(size * sizeof(int32_t))
    cdef int32_t *depth = <int32_t *> malloc(size * sizeof(int32_t))
    cdef int32_t *chain = <int32_t *> malloc(size * sizeof(int32_t))
    cdef int64_t c, b, p, length, deepest = 0, d
    cdef uint32_t u
    if owner == NULL or depth == NULL or chain == NULL:
        free(owner)
        free(depth)
        free(chain)
        return -2
    for c in range(size):
        owner[c] = -1
        depth[c] = -1          # not known yet
    for c in range(size):
        b = unit[c] >> 9
        u = unit[c]
        # Base 0 is every leaf's: a cell holding byte c at index c would be
        # a child of all of them. No trie has one.
        if (b != 0 and owner[b] != -1) or ((u & 0x100) and c == (u & 0xFF)):
            deepest = -1
            break
        if b != 0:
            owner[b] = <int32_t> c
    # Viterbi steps to root_base + byte without a check: all 256 must be the
    # root's children.
    b = unit[0] >> 9
    for c in range(256):
        if deepest < 0 or b + c >= size or (unit[b + c] & 0x1FF) != (0x100 | <uint32_t> c):
            deepest = -1
            break
    depth[0] = 0
    c = 0
    while deepest >= 0 and c < size:
        # Walk up from c until a cell of known depth (or none), then set
        # the depths on the way back down. -2 marks "unreachable", -3 "on
        # the chain being resolved" (meeting it again is a loop).
        length = 0
        p = c
        while depth[p] == -1:
            depth[p] = -3
            chain[length] = <int32_t> p
            length += 1
            u = unit[p]
            if not (u & 0x100) or p < (u & 0xFF) or owner[p - (u & 0xFF)] < 0:
                p = -1
                break
            p = owner[p - (u & 0xFF)]
        d = -2 if p < 0 or depth[p] < 0 else depth[p]
        while length > 0:
            length -= 1
            if d >= 0:
                d += 1
                if d > deepest:
                    deepest = d
            depth[chain[length]] = <int32_t> d
        c += 1
    free(owner)
    free(depth)
    free(chain)
    return deepest


def _segmenter_from_state(pieces, scores, bytes units, bytes values, int32_t max_depth, int layout):
    """Unpickle a Segmenter: copy the trie arrays instead of rebuilding them."""
    cdef Segmenter seg
    cdef int64_t n = len(pieces), i, size
    if (layout != TRIE_LAYOUT or len(units) % sizeof(uint32_t) != 0
            or len(values) != len(units) or len(units) < 257 * sizeof(uint32_t)):
        return Segmenter(pieces, scores)
    size = len(units) // sizeof(uint32_t)
    scores_arr = np.ascontiguousarray(scores, dtype=np.float64)
    if scores_arr.shape[0] != n:
        raise ValueError("corrupt Segmenter pickle: pieces and scores differ in length")
    seg = Segmenter.__new__(Segmenter)
    seg.trie.none = <int32_t> n
    seg.trie.max_depth = max_depth
    seg.trie.unit = <uint32_t *> malloc(len(units))
    seg.trie.value = <int32_t *> malloc(len(values))
    seg.trie.node_score = <double *> malloc(size * sizeof(double))
    seg.trie.length = <int32_t *> malloc(n * sizeof(int32_t))
    seg.score = <double *> malloc((n + 1) * sizeof(double))
    seg.trie.size = size
    if (seg.trie.unit == NULL or seg.trie.value == NULL or seg.trie.node_score == NULL
            or seg.trie.length == NULL or seg.score == NULL):
        raise MemoryError()
    memcpy(seg.trie.unit, <const char *> units, len(units))
    memcpy(seg.trie.value, <const char *> values, len(values))
    for i in range(n):
        seg.trie.length[i] = <int32_t> len(pieces[i])
        seg.score[i] = scores_arr[i]
    seg.score[n] = -INFINITY
    for i in range(size):
        if seg.trie.value[i] < 0 or seg.trie.value[i] > n:
            raise ValueError("corrupt Segmenter pickle: piece index out of range")
        if (seg.trie.unit[i] >> 9) + 256 > size:
            raise ValueError("corrupt Segmenter pickle: trie base out of range")
        seg.trie.node_score[i] = seg.score[seg.trie.value[i]]
    depth = trie_depth(seg.trie.unit, size)
    if depth == -2:
        raise MemoryError()
    if depth != max_depth:
        raise ValueError("corrupt Segmenter pickle: the trie arrays do not form the trie of its pieces")
    seg.n_pieces = <int32_t> n
    seg._pieces = list(pieces)
    seg._scores = scores_arr
    seg._weights_cache = {}
    seg._weights_lock = threading.Lock()
    return seg
