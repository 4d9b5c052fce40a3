# cython: language_level=3
"""Compiled training phases: byte n-gram counts, their pruning, n-gram segmentation.

This implements ALGORITHM.md §6.1-6.3 without a Python object per byte or per
n-gram. The counting phases produce *mergeable partial results*:

* :class:`NgramCounts` (§6.1) and :class:`PieceCounts` (§6.3) can each be filled
  from any shard of the corpus (``add``), combined (``merge``) and pickled
  cheaply (one ``bytes`` blob), so shards may be counted by threads,
  processes or a distributed engine; counts are plain sums, so the result
  never depends on how the corpus was split.
* :meth:`NgramCounts.prune` (§6.2) turns the total into an :class:`NgramModel`
  of conditional log-probabilities, computing every log with ``np.log`` on
  float64 counts exactly like the reference.
* :meth:`NgramModel.count_pieces` (§6.3) runs the hidden-state Viterbi over
  chunks with the GIL released and counts the pieces into a
  :class:`PieceCounts`.

Chunks are passed *packed*: one ``bytes`` holding them back to back plus an
int64 array of ``n + 1`` offsets (chunk ``i`` is ``data[offsets[i]:offsets[i+1]]``).
"""
import threading
from pickle import PickleBuffer

import numpy as np

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

cdef extern from *:
    """
    #define BP_PREFETCH(p) __builtin_prefetch((const void *)(p))
    """
    void BP_PREFETCH(const void *p) noexcept nogil

cdef uint64_t EMPTY_KEY = 0xFFFFFFFFFFFFFFFFULL  # no n-gram of <= 7 bytes packs to this
cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL
cdef uint64_t MIX = 0xFF51AFD7ED558CCDULL
#: End of the hash space that memory budgets split (see :func:`range_hash`).
cdef uint64_t RANGE_END = 0x8000000000000000ULL
cdef uint64_t BLOB_MAGIC_NGRAMS = 0x314D4152474504EULL   # "NPtGRAM1"
cdef uint64_t BLOB_MAGIC_PIECES = 0x3153434549507450ULL  # "PtPIECS1"
cdef uint64_t BLOB_MAGIC_NGRAMS_RANGED = 0x324D4152474504EULL   # with budget and ranges
cdef uint64_t BLOB_MAGIC_MODEL = 0x324C444F4D74504EULL   # "NPtMODL2" (pruned counts)
#: NgramCounts as an image of its tables' slots (see NgramCounts.to_bytes).
cdef uint64_t BLOB_MAGIC_NGRAMS_IMAGE = 0x334D4152474504EULL


def _blob_for_pickle(bytes blob, protocol):
    """``blob`` as a pickle argument: a ``PickleBuffer`` under protocol 5, which
    a pickler with a buffer callback (Ray's object store) keeps out of band,
    not copied into the pickle stream; ``from_bytes`` then reads it where it
    lies. Plain pickling with any protocol stores it as bytes."""
    if protocol >= 5:
        return PickleBuffer(blob)
    return blob


# ----------------------------------------------------------------------------
# U64Table: packed n-gram -> count (or double)
# ----------------------------------------------------------------------------

cdef inline int64_t u64_slot(const U64Table *t, uint64_t key) noexcept nogil:
    cdef uint64_t h = (key ^ (key >> 29)) * GOLDEN
    return <int64_t>(h >> t.shift)


cdef int _u64_alloc(U64Table *t, int64_t cap) noexcept nogil:
    cdef int bits = 0
    cdef int64_t i
    while (<int64_t>1 << bits) < cap:
        bits += 1
    cap = <int64_t>1 << bits
    t.slots = <U64Entry *>malloc(cap * sizeof(U64Entry))
    if t.slots == NULL:
        t.cap = 0
        return -1
    for i in range(cap):
        t.slots[i].key = EMPTY_KEY
    t.cap = cap
    t.size = 0
    t.shift = 64 - bits
    return 0


cdef int64_t capacity_for(int64_t min_keys) noexcept nogil:
    """Slots (a power of two, at least 16) that hold ``min_keys`` keys below
    the maximum load factor of 0.7."""
    cdef int64_t cap = 16
    while cap * 7 < min_keys * 10 + 10:
        cap *= 2
    return cap


cdef int u64_init(U64Table *t, int64_t min_keys) noexcept nogil:
    """Allocate room for ``min_keys`` keys below the maximum load factor."""
    return _u64_alloc(t, capacity_for(min_keys))


cdef void u64_free(U64Table *t) noexcept nogil:
    free(t.slots)
    t.slots = NULL
    t.cap = 0; t.size = 0


cdef int _u64_grow(U64Table *t) noexcept nogil:
    cdef U64Table old = t[0]
    cdef int64_t i, s
    if _u64_alloc(t, old.cap * 2) < 0:
        t[0] = old
        return -1
    for i in range(old.cap):
        if (old.slots[i].key != EMPTY_KEY):
            s = u64_slot(t, old.slots[i].key)
            while (t.slots[s].key != EMPTY_KEY):
                s = (s + 1) & (t.cap - 1)
            t.slots[s].key = old.slots[i].key
            t.slots[s].val.count = old.slots[i].val.count
    t.size = old.size
    u64_free(&old)
    return 0


cdef int u64_add(U64Table *t, uint64_t key, uint64_t inc) noexcept nogil:
    """``table[key] += inc`` (inserting the key if new). -1 when out of memory."""
    cdef int64_t s, mask
    if t.cap == 0:
        if u64_init(t, 0) < 0:
            return -1
    mask = t.cap - 1
    s = u64_slot(t, key)
    while (t.slots[s].key != EMPTY_KEY):
        if t.slots[s].key == key:
            t.slots[s].val.count += inc
            return 0
        s = (s + 1) & mask
    t.slots[s].key = key
    t.slots[s].val.count = inc
    t.size += 1
    if t.size * 10 > t.cap * 7:
        return _u64_grow(t)
    return 0


cdef int64_t u64_find(const U64Table *t, uint64_t key) noexcept nogil:
    """The slot holding ``key``, or -1."""
    cdef int64_t s, mask
    if t.cap == 0:
        return -1
    mask = t.cap - 1
    s = u64_slot(t, key)
    while (t.slots[s].key != EMPTY_KEY):
        if t.slots[s].key == key:
            return s
        s = (s + 1) & mask
    return -1


# ----------------------------------------------------------------------------
# PackedTable: n-gram -> count in one 8-byte word per slot
# ----------------------------------------------------------------------------

cdef inline int64_t pt_slot(const PackedTable *t, uint64_t key) noexcept nogil:
    cdef uint64_t h = (key ^ (key >> 29)) * GOLDEN
    return <int64_t>(h >> t.shift)


cdef inline uint64_t pt_key(const PackedTable *t, uint64_t entry) noexcept nogil:
    return entry >> t.cbits


cdef inline uint64_t pt_sat(const PackedTable *t) noexcept nogil:
    """The count field's largest value, which means "see the overflow table"."""
    return (<uint64_t>1 << t.cbits) - 1


cdef void pt_setup(PackedTable *t, int length) noexcept nogil:
    """An empty, unallocated table for n-grams of ``length`` bytes (1..7)."""
    memset(t, 0, sizeof(PackedTable))
    t.cbits = 64 - 8 * length


cdef int _pt_alloc(PackedTable *t, int64_t cap) noexcept nogil:
    cdef int bits = 0
    while (<int64_t>1 << bits) < cap:
        bits += 1
    cap = <int64_t>1 << bits
    t.slots = <uint64_t *>calloc(cap, sizeof(uint64_t))
    if t.slots == NULL:
        t.cap = 0
        return -1
    t.cap = cap
    t.size = 0
    t.shift = 64 - bits
    return 0


cdef int pt_init(PackedTable *t, int64_t min_keys) noexcept nogil:
    """Allocate room for ``min_keys`` keys below the maximum load factor."""
    return _pt_alloc(t, capacity_for(min_keys))


cdef void pt_free(PackedTable *t) noexcept nogil:
    free(t.slots)
    t.slots = NULL
    t.cap = 0
    t.size = 0
    u64_free(&t.overflow)


cdef int pt_copy(PackedTable *dst, const PackedTable *src) noexcept nogil:
    """``dst`` = an independent copy of ``src`` (``dst`` must be empty)."""
    pt_setup(dst, (64 - src.cbits) // 8)
    if src.cap:
        dst.slots = <uint64_t *>malloc(src.cap * sizeof(uint64_t))
        if dst.slots == NULL:
            return -1
        memcpy(dst.slots, src.slots, src.cap * sizeof(uint64_t))
        dst.cap = src.cap
        dst.size = src.size
        dst.shift = src.shift
    if src.overflow.cap:
        dst.overflow.slots = <U64Entry *>malloc(src.overflow.cap * sizeof(U64Entry))
        if dst.overflow.slots == NULL:
            pt_free(dst)
            return -1
        memcpy(dst.overflow.slots, src.overflow.slots, src.overflow.cap * sizeof(U64Entry))
        dst.overflow.cap = src.overflow.cap
        dst.overflow.size = src.overflow.size
        dst.overflow.shift = src.overflow.shift
    return 0


cdef int _pt_rehash(PackedTable *t, int64_t cap) noexcept nogil:
    """Move every entry into fresh slots of capacity ``cap``; on OOM the
    table is left as it was. 0 or -1."""
    cdef PackedTable old = t[0]
    cdef int64_t i, s, mask
    if _pt_alloc(t, cap) < 0:
        t[0] = old
        return -1
    mask = t.cap - 1
    for i in range(old.cap):
        if old.slots[i]:
            s = pt_slot(t, pt_key(t, old.slots[i]))
            while t.slots[s]:
                s = (s + 1) & mask
            t.slots[s] = old.slots[i]
    t.size = old.size
    free(old.slots)
    return 0


cdef int _pt_grow(PackedTable *t) noexcept nogil:
    return _pt_rehash(t, t.cap * 2)


cdef int64_t pt_find(const PackedTable *t, uint64_t key) noexcept nogil:
    """The slot holding ``key``, or -1."""
    cdef int64_t s, mask
    if t.cap == 0:
        return -1
    mask = t.cap - 1
    s = pt_slot(t, key)
    while t.slots[s]:
        if pt_key(t, t.slots[s]) == key:
            return s
        s = (s + 1) & mask
    return -1


cdef inline uint64_t pt_count_at(const PackedTable *t, int64_t s) noexcept nogil:
    """The count of the key in (occupied) slot ``s``."""
    cdef uint64_t c = t.slots[s] & pt_sat(t)
    cdef int64_t o
    if c == pt_sat(t):
        o = u64_find(&t.overflow, pt_key(t, t.slots[s]))
        return t.overflow.slots[o].val.count if o >= 0 else c
    return c


cdef int pt_add(PackedTable *t, uint64_t key, uint64_t inc) noexcept nogil:
    """``table[key] += inc`` (inserting the key if new). -1 when out of memory.

    ``inc == 0`` does nothing: a count of 0 is an absent key.
    """
    cdef int64_t s, mask
    cdef uint64_t sat = pt_sat(t), c
    if inc == 0:
        return 0
    if t.cap == 0:
        if pt_init(t, 0) < 0:
            return -1
    mask = t.cap - 1
    s = pt_slot(t, key)
    while t.slots[s]:
        if pt_key(t, t.slots[s]) == key:
            c = t.slots[s] & sat
            if c == sat:
                return u64_add(&t.overflow, key, inc)
            if inc < sat - c:
                t.slots[s] += inc
                return 0
            # The count field saturates: the full count moves to the overflow table.
            t.slots[s] |= sat
            return u64_add(&t.overflow, key, c + inc)
        s = (s + 1) & mask
    if inc < sat:
        t.slots[s] = (key << t.cbits) | inc
    else:
        t.slots[s] = (key << t.cbits) | sat
        if u64_add(&t.overflow, key, inc) < 0:
            return -1
    t.size += 1
    if t.size * 10 > t.cap * 7:
        return _pt_grow(t)
    return 0


cdef void _pt_delete(PackedTable *t, int64_t hole) noexcept nogil:
    """Empty slot ``hole``, shifting later entries of its cluster back (no tombstones)."""
    cdef int64_t mask = t.cap - 1, j = hole, home
    cdef bint stays
    while True:
        j = (j + 1) & mask
        if t.slots[j] == 0:
            break
        home = pt_slot(t, pt_key(t, t.slots[j]))
        # The entry at j may fill the hole unless its home lies in (hole, j], cyclically.
        if hole <= j:
            stays = hole < home and home <= j
        else:
            stays = home > hole or home <= j
        if not stays:
            t.slots[hole] = t.slots[j]
            hole = j
    t.slots[hole] = 0
    t.size -= 1


cdef int pt_shrink(PackedTable *t) noexcept nogil:
    """Move the keys to the smallest capacity that holds them (after :func:`pt_prune`).

    Pruning usually removes about half of the longest n-grams; shrinking
    returns that memory before the segmentation pass needs its own.
    """
    cdef int64_t cap = capacity_for(t.size)
    if cap >= t.cap:
        return 0
    return _pt_rehash(t, cap)


cdef inline uint64_t range_hash(uint64_t key, int length) noexcept nogil:
    """Where an n-gram falls in the hash space that memory budgets split into
    passes: 63 bits, independent of the slot hash (so that keeping part of
    the range does not leave part of a table's slots empty)."""
    cdef uint64_t h = (key + <uint64_t>length * GOLDEN) * MIX
    h ^= h >> 33
    h *= GOLDEN
    h ^= h >> 29
    return h >> 1


cdef void _pt_remove_if(PackedTable *t, uint64_t min_count, uint64_t hi, int length) noexcept nogil:
    """Remove, in place, every key counted fewer than ``min_count`` times or
    whose :func:`range_hash` is ``hi`` or more (``hi == RANGE_END``: none).

    No second table is built, so this needs no memory. Overflow entries of
    removed keys are left behind; nothing looks them up.
    """
    cdef int64_t i, start = 0, steps = 0, mask = t.cap - 1
    cdef bint ranged = hi < RANGE_END
    if t.cap == 0:
        return
    # Start just after a free slot: clusters then never wrap around the scan,
    # and an entry shifted back by a deletion lands on the slot being examined
    # or on a later one, so each entry is examined.
    while t.slots[start]:
        start += 1
    i = (start + 1) & mask
    while steps < t.cap:
        if t.slots[i] and (pt_count_at(t, i) < min_count
                           or (ranged and range_hash(pt_key(t, t.slots[i]), length) >= hi)):
            _pt_delete(t, i)
            continue  # slot i may now hold a shifted entry: examine it
        i = (i + 1) & mask
        steps += 1


cdef void pt_prune(PackedTable *t, uint64_t min_count) noexcept nogil:
    """Remove, in place, every key counted fewer than ``min_count`` times."""
    _pt_remove_if(t, min_count, RANGE_END, 0)


cdef void narrow_range(PackedTable *t, int length, uint64_t lo, uint64_t *hi, int64_t max_keys) noexcept nogil:
    """Halve the hash range ``[lo, hi)`` of a table (dropping the keys of the
    upper half) until it holds at most ``max_keys`` keys.

    The keys left were all counted since the range was opened, so their
    counts stay exact; the dropped half is counted by a later pass.
    """
    while t.size > max_keys and hi[0] - lo > 1:
        hi[0] = lo + (hi[0] - lo) // 2
        _pt_remove_if(t, 0, hi[0], length)


# ----------------------------------------------------------------------------
# ByteTable: byte string (arena) -> int64 count
# ----------------------------------------------------------------------------

cdef inline uint64_t hash_bytes(const unsigned char *p, int64_t n) noexcept nogil:
    cdef uint64_t h = GOLDEN ^ <uint64_t>n
    cdef uint64_t w
    while n >= 8:
        memcpy(&w, p, 8)
        h = (h ^ w) * MIX
        h ^= h >> 32
        p += 8
        n -= 8
    w = 0
    memcpy(&w, p, <size_t>n)
    h = (h ^ w) * MIX
    h ^= h >> 29
    h *= GOLDEN
    return h ^ (h >> 32)


cdef int _bt_alloc(ByteTable *t, int64_t cap) noexcept nogil:
    cdef int bits = 0
    while (<int64_t>1 << bits) < cap:
        bits += 1
    cap = <int64_t>1 << bits
    t.offs = <int64_t *>malloc(cap * sizeof(int64_t))
    t.lens = <uint32_t *>calloc(cap, sizeof(uint32_t))
    t.hashes = <uint32_t *>malloc(cap * sizeof(uint32_t))
    t.counts = <int64_t *>malloc(cap * sizeof(int64_t))
    if t.offs == NULL or t.lens == NULL or t.hashes == NULL or t.counts == NULL:
        free(t.offs); free(t.lens); free(t.hashes); free(t.counts)
        t.offs = NULL; t.lens = NULL; t.hashes = NULL; t.counts = NULL
        t.cap = 0
        return -1
    t.cap = cap
    t.size = 0
    t.shift = 64 - bits
    return 0


cdef int bt_init(ByteTable *t, int64_t min_keys) noexcept nogil:
    """An empty table with room for ``min_keys`` keys."""
    cdef int64_t cap = capacity_for(min_keys)
    t.arena = NULL
    t.arena_len = 0
    t.arena_cap = 0
    return _bt_alloc(t, cap)


cdef void bt_free(ByteTable *t) noexcept nogil:
    free(t.offs); free(t.lens); free(t.hashes); free(t.counts); free(t.arena)
    t.offs = NULL; t.lens = NULL; t.hashes = NULL; t.counts = NULL; t.arena = NULL
    t.cap = 0; t.size = 0; t.arena_len = 0; t.arena_cap = 0


cdef inline int64_t bt_slot(const ByteTable *t, uint64_t h) noexcept nogil:
    return <int64_t>((h * GOLDEN) >> t.shift)


cdef int _bt_grow(ByteTable *t) noexcept nogil:
    cdef ByteTable old = t[0]
    cdef int64_t i, s
    cdef uint64_t h
    if _bt_alloc(t, old.cap * 2) < 0:
        t[0] = old
        return -1
    for i in range(old.cap):
        if old.lens[i]:
            h = hash_bytes(old.arena + old.offs[i], old.lens[i])
            s = bt_slot(t, h)
            while t.lens[s]:
                s = (s + 1) & (t.cap - 1)
            t.offs[s] = old.offs[i]
            t.lens[s] = old.lens[i]
            t.hashes[s] = old.hashes[i]
            t.counts[s] = old.counts[i]
    t.size = old.size
    free(old.offs); free(old.lens); free(old.hashes); free(old.counts)
    return 0


cdef int64_t bt_find(const ByteTable *t, const unsigned char *key, int64_t n) noexcept nogil:
    """The slot holding ``key[:n]``, or -1."""
    cdef uint64_t h
    cdef uint32_t h32
    cdef int64_t s, mask
    if t.cap == 0 or n <= 0:
        return -1
    h = hash_bytes(key, n)
    h32 = <uint32_t>h
    mask = t.cap - 1
    s = bt_slot(t, h)
    while t.lens[s]:
        if t.hashes[s] == h32 and t.lens[s] == <uint32_t>n and \
                memcmp(t.arena + t.offs[s], key, <size_t>n) == 0:
            return s
        s = (s + 1) & mask
    return -1


cdef int bt_add(ByteTable *t, const unsigned char *key, int64_t n, int64_t inc) noexcept nogil:
    """``table[key[:n]] += inc``; -1 when out of memory or ``n`` is out of range."""
    cdef uint64_t h
    cdef uint32_t h32
    cdef int64_t s, mask, cap
    cdef unsigned char *arena
    if n <= 0 or n > <int64_t>0xFFFFFFFF:
        return -1
    if t.cap == 0:
        if bt_init(t, 0) < 0:
            return -1
    h = hash_bytes(key, n)
    h32 = <uint32_t>h
    mask = t.cap - 1
    s = bt_slot(t, h)
    while t.lens[s]:
        if t.hashes[s] == h32 and t.lens[s] == <uint32_t>n and \
                memcmp(t.arena + t.offs[s], key, <size_t>n) == 0:
            t.counts[s] += inc
            return 0
        s = (s + 1) & mask
    if t.arena_len + n > t.arena_cap:
        cap = t.arena_cap * 2 if t.arena_cap else 4096
        while cap < t.arena_len + n:
            cap *= 2
        arena = <unsigned char *>realloc(t.arena, <size_t>cap)
        if arena == NULL:
            return -1
        t.arena = arena
        t.arena_cap = cap
    memcpy(t.arena + t.arena_len, key, <size_t>n)
    t.offs[s] = t.arena_len
    t.lens[s] = <uint32_t>n
    t.hashes[s] = h32
    t.counts[s] = inc
    t.arena_len += n
    t.size += 1
    if t.size * 10 > t.cap * 7:
        return _bt_grow(t)
    return 0


# ----------------------------------------------------------------------------
# §6.1: counting
# ----------------------------------------------------------------------------

@cython.cdivision(True)
cdef int count_ngrams(const unsigned char *data, const int64_t *offsets, int64_t nchunks,
                      int order, uint64_t *total, uint64_t *unigrams,
                      PackedTable *tables, int part, int parts,
                      const uint64_t *lo, uint64_t *hi, const int64_t *max_keys) noexcept nogil:
    """Add the n-grams of every chunk to the tables (only full-length keys).

    Only the lengths ``j`` with ``(j - 1) % parts == part`` are counted (length 1
    and the total belong to part 0), so ``parts`` threads can fill one set of
    tables at the same time, each its own lengths, without copies to merge.

    With ``max_keys`` (not NULL), table ``j`` counts only the n-grams whose
    :func:`range_hash` lies in ``[lo[j], hi[j])``, and narrows that range
    (lowering ``hi[j]``) whenever it holds more than ``max_keys[j]`` keys.
    """
    cdef int64_t c, i, start, end, limit
    cdef int j
    cdef uint64_t key, h
    cdef uint64_t keys[MAX_ORDER + 1]
    cdef bint wanted[MAX_ORDER + 1]
    cdef bint ranged = max_keys != NULL
    for c in range(nchunks):
        start = offsets[c]
        end = offsets[c + 1]
        if part == 0:
            total[0] += <uint64_t>(end - start)
        for i in range(start, end):
            if part == 0:
                unigrams[data[i]] += 1
            key = data[i]
            limit = end - i
            if limit > order:
                limit = order
            # Hash every length first and prefetch, so that the cache misses
            # of the different tables overlap instead of queueing up.
            for j in range(2, limit + 1):
                key |= (<uint64_t>data[i + j - 1]) << (8 * (j - 1))
                keys[j] = key
                wanted[j] = (j - 1) % parts == part
                if wanted[j] and ranged and (lo[j] != 0 or hi[j] != RANGE_END):
                    h = range_hash(key, j)
                    wanted[j] = lo[j] <= h and h < hi[j]
                if wanted[j] and tables[j].cap:
                    BP_PREFETCH(&tables[j].slots[pt_slot(&tables[j], key)])
            j = 2 + (part + parts - 1) % parts
            while j <= limit:
                if wanted[j]:
                    if pt_add(&tables[j], keys[j], 1) < 0:
                        return -1
                    if ranged and tables[j].size > max_keys[j]:
                        narrow_range(&tables[j], j, lo[j], &hi[j], max_keys[j])
                j += parts
    return 0


cdef object _packed_arrays(object chunks):
    """``(data, offsets)`` for a sequence of ``bytes`` chunks."""
    cdef list items = [bytes(c) if not isinstance(c, bytes) else c for c in chunks]
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    if items:
        np.cumsum([len(c) for c in items], out=offsets[1:])
    return b"".join(items), offsets


cdef inline void _check_packed(const unsigned char[::1] data, const int64_t[::1] offsets) except *:
    cdef Py_ssize_t n = offsets.shape[0], i
    if n < 1:
        raise ValueError("offsets must hold at least one value (n chunks need n + 1)")
    if offsets[0] < 0 or offsets[n - 1] > data.shape[0]:
        raise ValueError("offsets point outside data")
    for i in range(n - 1):
        if offsets[i + 1] < offsets[i]:
            raise ValueError("offsets must be non-decreasing")


@cython.cdivision(True)
cdef int64_t _budget_keys(int64_t budget, int order, int64_t *max_keys) noexcept nogil:
    """Split ``budget`` bytes over tables ``2..order``; ``max_keys[j]`` = keys table ``j``
    may hold. Returns the bytes given out.

    Each table gets the largest power-of-two capacity within its share (at
    least 16 slots), but never more than all its possible keys need (the
    2-gram table: 1 MB), and what a table does not take goes to the longer
    ones. A table holding ``max_keys[j] + 1`` keys has not grown past that
    capacity (it grows beyond a load of 0.7).
    """
    cdef int j
    cdef int64_t cap, share, used = 0, need
    for j in range(2, order + 1):
        share = (budget - used) // (order - j + 1)
        cap = 16
        while cap * 2 * <int64_t>sizeof(uint64_t) <= share:
            cap *= 2
        if j <= 3:
            need = capacity_for(<int64_t>1 << (8 * j))
            if cap > need:
                cap = need
        max_keys[j] = cap * 7 // 10 - 1
        used += cap * <int64_t>sizeof(uint64_t)
    return used


cdef class NgramCounts:
    """Byte n-gram counts of a corpus shard (ALGORITHM.md §6.1); a mergeable partial result.

    Table ``j`` (``0 <= j <= order``) counts every ``j``-byte string starting at
    each position of each chunk; slices cut short by the end of a chunk are not
    stored, since §6.2 discards them anyway. ``order`` is at most 7.
    Instances may be filled from several shards (:meth:`add`), combined
    (:meth:`merge`, exact integer sums, so the order of merging never matters)
    and pickled as one compact blob.

    **Memory budget.** ``NgramCounts(order, memory_budget=BYTES)`` keeps the
    tables of n-grams of 2 bytes and more within about ``BYTES`` (each table
    gets a share; growing a table briefly needs half its size again). When a
    table would outgrow its share, it keeps counting only part of the
    n-grams, exactly: every n-gram has a fixed place in a hash space, each
    table counts one range of it, and a full table halves its range, dropping
    the n-grams of the upper half. The n-grams it keeps were counted from
    the start, so their counts are exact; the ones it dropped are left to a
    later pass over the corpus::

        counts = NgramCounts(6, memory_budget=512 << 20)
        model = None
        while counts is not None:
            counts.add_packed(data, offsets)      # the whole corpus, any shards
            model = counts.prune(2, release=True, into=model)
            counts = counts.next_pass()           # None once every range is done

    Pruning keeps or drops each n-gram by its own count, and the model keeps
    the pruned counts (see :class:`NgramModel`), so the model built over the
    passes is identical to the one built in a single pass, for any budget.
    The budget bounds the counting tables only; the model (the n-grams seen
    at least ``min_count`` times) grows with the corpus.
    """

    def __cinit__(self, int order=6, memory_budget=None):
        cdef int j
        if order < 1 or order > MAX_ORDER:
            raise ValueError(f"order must be between 1 and {MAX_ORDER}, got {order}")
        self.order = order
        self.n_bytes = 0
        memset(self.unigrams, 0, sizeof(self.unigrams))
        for j in range(MAX_ORDER + 1):
            pt_setup(&self.tables[j], j if j else 1)
            self.lo[j] = 0
            self.hi[j] = RANGE_END
            self.max_keys[j] = 0x7FFFFFFFFFFFFFFF
        self.budget = 0
        if memory_budget is not None:
            if isinstance(memory_budget, bool) or not isinstance(memory_budget, (int, np.integer)):
                raise TypeError(f"memory_budget must be an int (bytes) or None, got {type(memory_budget).__name__}")
            if memory_budget < 1:
                raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget}")
            self.budget = <int64_t>min(memory_budget, <int64_t>1 << 62)
            _budget_keys(self.budget, order, self.max_keys)
        self._lock = threading.Lock()
        self._locks = [threading.Lock() for _ in range(MAX_ORDER + 1)]

    def __dealloc__(self):
        cdef int j
        for j in range(MAX_ORDER + 1):
            pt_free(&self.tables[j])

    @property
    def memory_budget(self):
        """The budget in bytes of the n-gram tables, or ``None``."""
        return self.budget if self.budget else None

    @property
    def complete(self) -> bool:
        """True if no n-gram is left for a later pass (always, without a budget)."""
        cdef int j
        for j in range(2, self.order + 1):
            if self.hi[j] != RANGE_END:
                return False
        return True

    @property
    def first_pass(self) -> bool:
        """True unless these counts continue earlier passes (see :meth:`next_pass`)."""
        cdef int j
        for j in range(2, self.order + 1):
            if self.lo[j] != 0:
                return False
        return True

    @property
    def nbytes(self) -> int:
        """Bytes held by the n-gram tables now."""
        cdef int j
        cdef int64_t n = 0
        for j in range(2, self.order + 1):
            n += self.tables[j].cap * <int64_t>sizeof(uint64_t)
            n += self.tables[j].overflow.cap * <int64_t>sizeof(U64Entry)
        return n

    def next_pass(self):
        """Empty counts for the next pass over the corpus, or ``None`` if :attr:`complete`.

        Each table of the new counts starts its range where this one's
        ended; a table whose range is done counts nothing more.
        """
        cdef NgramCounts nxt
        cdef int j
        if self.complete:
            return None
        nxt = NgramCounts(self.order, self.memory_budget)
        for j in range(2, self.order + 1):
            nxt.lo[j] = self.hi[j]
        return nxt

    def add(self, chunks) -> None:
        """Count the n-grams of a sequence of ``bytes`` chunks."""
        data, offsets = _packed_arrays(chunks)
        self.add_packed(data, offsets)

    cdef bint _ranged(self) noexcept:
        """True if some table counts only part of the n-grams (a budget, or a later pass)."""
        cdef int j
        if self.budget:
            return True
        for j in range(2, self.order + 1):
            if self.lo[j] != 0 or self.hi[j] != RANGE_END:
                return True
        return False

    def add_packed(self, const unsigned char[::1] data, const int64_t[::1] offsets,
                   int part=0, int parts=1) -> None:
        """Count packed chunks (``data[offsets[i]:offsets[i+1]]``) with the GIL released.

        With ``parts > 1`` only the n-gram lengths of ``part`` are counted
        (length ``j`` belongs to part ``(j - 1) % parts``): ``parts`` threads may
        then count the same batches into this one object concurrently, one
        part each, and the result equals ``add_packed(data, offsets)``.
        """
        cdef int rc
        cdef bint ranged
        _check_packed(data, offsets)
        if parts < 1 or not 0 <= part < parts:
            raise ValueError(f"need 0 <= part < parts, got part={part}, parts={parts}")
        if offsets.shape[0] < 2:
            return
        lock = self._locks[part] if parts > 1 else self._lock
        ranged = self._ranged()
        with lock:
            with nogil:
                rc = count_ngrams(&data[0] if data.shape[0] else NULL, &offsets[0],
                                  offsets.shape[0] - 1, self.order, &self.n_bytes,
                                  self.unigrams, self.tables, part, parts, self.lo, self.hi,
                                  self.max_keys if ranged else NULL)
        if rc < 0:
            raise MemoryError("out of memory while counting n-grams")

    def merge(self, NgramCounts other):
        """Add ``other``'s counts into this one (in place); returns ``self``.

        Under a memory budget both must belong to the same pass (same range
        starts); a table keeps the narrower of the two ranges (dropping the
        n-grams beyond it) and narrows it further if the sum outgrows the
        budget, so a merged result is as exact as its parts.
        """
        cdef int j, rc = 0
        cdef int64_t i
        cdef uint64_t key
        cdef bint ranged
        cdef PackedTable *src
        if other.order != self.order:
            raise ValueError(f"cannot merge n-gram counts of order {other.order} into order {self.order}")
        if other is self:
            raise ValueError("cannot merge n-gram counts into themselves")
        for j in range(2, self.order + 1):
            if self.lo[j] != other.lo[j]:
                raise ValueError("cannot merge n-gram counts of different passes (see NgramCounts.next_pass)")
        with self._lock, other._lock:
            ranged = self._ranged() or other._ranged()
            with nogil:
                self.n_bytes += other.n_bytes
                for j in range(256):
                    self.unigrams[j] += other.unigrams[j]
                for j in range(2, self.order + 1):
                    src = &other.tables[j]
                    if other.hi[j] < self.hi[j]:
                        self.hi[j] = other.hi[j]
                        _pt_remove_if(&self.tables[j], 0, self.hi[j], j)
                    for i in range(src.cap):
                        if src.slots[i]:
                            key = pt_key(src, src.slots[i])
                            if ranged and range_hash(key, j) >= self.hi[j]:
                                continue
                            if pt_add(&self.tables[j], key, pt_count_at(src, i)) < 0:
                                rc = -1
                                break
                            if ranged and self.tables[j].size > self.max_keys[j]:
                                narrow_range(&self.tables[j], j, self.lo[j], &self.hi[j], self.max_keys[j])
                    if rc < 0:
                        break
        if rc < 0:
            raise MemoryError("out of memory while merging n-gram counts")
        return self

    @property
    def total(self) -> int:
        """Number of bytes counted (table 0: the empty string once per byte)."""
        return self.n_bytes

    def __len__(self) -> int:
        """Number of distinct n-grams of length 1..order stored."""
        cdef int j
        cdef int64_t n = 0
        for j in range(256):
            n += self.unigrams[j] > 0
        for j in range(2, self.order + 1):
            n += self.tables[j].size
        return n

    def count(self, gram: bytes) -> int:
        """How often ``gram`` (0..order bytes) was counted; 0 if never."""
        cdef const unsigned char[::1] g = gram
        cdef int n = len(gram), j
        cdef uint64_t key = 0
        cdef int64_t s
        if n == 0:
            return self.n_bytes
        if n > self.order:
            return 0
        if n == 1:
            return self.unigrams[g[0]]
        for j in range(n):
            key |= (<uint64_t>g[j]) << (8 * j)
        s = pt_find(&self.tables[n], key)
        return pt_count_at(&self.tables[n], s) if s >= 0 else 0

    def to_dicts(self) -> list:
        """``[table_0, ..., table_order]`` as ``{bytes: int}`` dicts (for tests; slow)."""
        tables = [{b"": self.n_bytes} if self.n_bytes else {}]
        tables.append({bytes([b]): self.unigrams[b] for b in range(256) if self.unigrams[b]})
        for j in range(2, self.order + 1):
            tables.append(_table_dict(&self.tables[j]))
        return tables

    def to_bytes(self) -> bytes:
        """A binary image of the counts (used by pickling).

        Words of 8 bytes: magic, order, total, 256 unigram counts, the memory
        budget (0: none), then per length ``j`` from 2 the range ``lo``,
        ``hi`` and the table as it lies in memory (capacity, size, slots,
        overflow table): loading it copies the tables instead of inserting
        every key again, which cuts the time to fetch a merged table from
        Ray by 40 % (0.20 s to 0.12 s for the 8.2 M keys of 120 MB of text).
        About as large as a list of keys and counts, since a slot packs key
        and count into one word.
        """
        cdef int j
        cdef int64_t k
        cdef uint64_t *out
        cdef Py_ssize_t size = 8 * (4 + 256)
        with self._lock:
            for j in range(2, self.order + 1):
                size += 8 * (2 + _image_words(&self.tables[j]))
            blob = PyBytes_FromStringAndSize(NULL, size)
            out = <uint64_t *>PyBytes_AS_STRING(blob)
            with nogil:
                out[0] = BLOB_MAGIC_NGRAMS_IMAGE
                out[1] = <uint64_t>self.order
                out[2] = self.n_bytes
                memcpy(&out[3], self.unigrams, 256 * sizeof(uint64_t))
                out[3 + 256] = <uint64_t>self.budget
                k = 4 + 256
                for j in range(2, self.order + 1):
                    out[k] = self.lo[j]
                    out[k + 1] = self.hi[j]
                    k = _write_image(&self.tables[j], out, k + 2)
        return blob

    @staticmethod
    def from_bytes(blob):
        """Rebuild counts from :meth:`to_bytes` (or from the key lists of earlier releases)."""
        cdef const unsigned char[::1] raw = blob
        cdef Py_ssize_t size = raw.shape[0]
        cdef const uint64_t *words
        cdef int64_t nwords, k
        cdef int j, order
        cdef bint ranged, image
        cdef NgramCounts counts
        if size < 8 * (3 + 256) or size % 8:
            raise ValueError("not an NgramCounts blob")
        words = <const uint64_t *>&raw[0]
        nwords = size // 8
        ranged = words[0] == BLOB_MAGIC_NGRAMS_RANGED
        image = words[0] == BLOB_MAGIC_NGRAMS_IMAGE
        if (words[0] != BLOB_MAGIC_NGRAMS and not ranged and not image) \
                or words[1] < 1 or words[1] > MAX_ORDER:
            raise ValueError("not an NgramCounts blob")
        order = <int>words[1]
        counts = NgramCounts(order)
        counts.n_bytes = words[2]
        memcpy(counts.unigrams, &words[3], 256 * sizeof(uint64_t))
        k = 3 + 256
        if image:
            if k >= nwords:
                raise ValueError("truncated NgramCounts blob")
            counts._load_budget(words[k])
            k += 1
            for j in range(2, order + 1):
                if k + 2 > nwords:
                    raise ValueError("truncated NgramCounts blob")
                counts._load_range(j, words[k], words[k + 1])
                k = _read_image(&counts.tables[j], words, nwords, k + 2, "NgramCounts")
            if k != nwords:
                raise ValueError("corrupt NgramCounts blob: trailing words")
            return counts
        for j in range(2, order + 1):
            k = _read_table(&counts.tables[j], words, nwords, k, "NgramCounts")
        if ranged:
            if k + 1 + 2 * (order - 1) != nwords:
                raise ValueError("truncated NgramCounts blob")
            counts._load_budget(words[k])
            k += 1
            for j in range(2, order + 1):
                counts._load_range(j, words[k], words[k + 1])
                k += 2
        return counts

    cdef int _load_budget(self, uint64_t budget) except -1:
        """Set the memory budget read from a blob."""
        if budget >= (<uint64_t>1 << 62):
            raise ValueError("corrupt NgramCounts blob: bad memory budget")
        self.budget = <int64_t>budget
        if self.budget:
            _budget_keys(self.budget, self.order, self.max_keys)
        return 0

    cdef int _load_range(self, int j, uint64_t lo, uint64_t hi) except -1:
        """Set the hash range of table ``j`` read from a blob."""
        if lo > hi or hi > RANGE_END:
            raise ValueError("corrupt NgramCounts blob: bad hash range")
        self.lo[j] = lo
        self.hi[j] = hi
        return 0

    def __reduce_ex__(self, protocol):
        return (NgramCounts.from_bytes, (_blob_for_pickle(self.to_bytes(), protocol),))

    def prune(self, int min_count=2, bint release=False, NgramModel into=None):
        """§6.2: conditional log-probabilities of the n-grams counted at least ``min_count`` times.

        Every byte missing from table 1 gets count 1 (and adds 1 to the
        total); single bytes are always kept. The model keeps the pruned
        counts themselves (see :class:`NgramModel`). These counts are not
        modified, unless ``release=True``: then the model takes over their
        tables and prunes them in place, so that no second copy of the
        largest tables ever exists, and the counts are left empty.

        Under a memory budget, pass the model of the previous passes as
        ``into`` (``None`` for the first pass): the n-grams of this pass are
        added to it and it is returned. A model is usable (its ``complete``
        is true) once the pass that was :attr:`complete` has been added.
        """
        cdef NgramModel model
        cdef int j, b
        cdef uint64_t total = self.n_bytes
        cdef uint64_t unigrams[256]
        cdef int rc = 0
        cdef PackedTable pruned
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        if into is None and not self.first_pass:
            raise ValueError("these counts continue earlier passes: pass their model as into=")
        if into is not None:
            if into.complete or self.first_pass:
                raise ValueError("into= takes the model of the earlier passes of these counts")
            if into.m.order != self.order:
                raise ValueError(f"cannot add n-grams of order {self.order} to a model of order {into.m.order}")
        model = into if into is not None else NgramModel.__new__(NgramModel)
        model.m.order = self.order
        with self._lock:
            for b in range(256):
                unigrams[b] = self.unigrams[b]
                if unigrams[b] == 0:
                    unigrams[b] = 1
                    total += 1
            if into is not None and (total != into.m.total
                                     or memcmp(unigrams, into.m.unigram_count, sizeof(unigrams)) != 0):
                raise ValueError("the corpus changed between two passes: its byte counts differ")
            with nogil:
                for j in range(2, self.order + 1):
                    if release:
                        pruned = self.tables[j]
                        pt_setup(&self.tables[j], j)
                    elif pt_copy(&pruned, &self.tables[j]) < 0:
                        rc = -1
                        break
                    pt_prune(&pruned, <uint64_t>min_count)
                    if pt_shrink(&pruned) < 0:
                        pt_free(&pruned)
                        rc = -1
                        break
                    if model.m.tables[j].size == 0:
                        pt_free(&model.m.tables[j])
                        model.m.tables[j] = pruned
                    else:
                        rc = pt_add_all(&model.m.tables[j], &pruned)
                        pt_free(&pruned)
                        if rc < 0:
                            break
            if release:
                self.n_bytes = 0
                memset(self.unigrams, 0, sizeof(self.unigrams))
        if rc < 0:
            raise MemoryError("out of memory while pruning n-grams")
        model._finish(unigrams, total, self.complete)
        return model


cdef int pt_add_all(PackedTable *dst, const PackedTable *src) noexcept nogil:
    """Add every count of ``src`` to ``dst``; -1 when out of memory."""
    cdef int64_t i
    for i in range(src.cap):
        if src.slots[i]:
            if pt_add(dst, pt_key(src, src.slots[i]), pt_count_at(src, i)) < 0:
                return -1
    return 0


cdef dict _table_dict(const PackedTable *t):
    """``{bytes: count}`` of one table (for tests)."""
    cdef int length = (64 - t.cbits) // 8, b
    cdef int64_t i
    cdef uint64_t key
    table = {}
    for i in range(t.cap):
        if t.slots[i]:
            key = pt_key(t, t.slots[i])
            table[bytes([(key >> (8 * b)) & 0xFF for b in range(length)])] = pt_count_at(t, i)
    return table


cdef int64_t _write_table(const PackedTable *t, uint64_t *out, int64_t k) noexcept:
    """Write ``n``, the keys, then the counts of ``t`` at ``out[k:]``; the next free word."""
    cdef int64_t i, n = t.size
    out[k] = <uint64_t>n
    k += 1
    for i in range(t.cap):
        if t.slots[i]:
            out[k] = pt_key(t, t.slots[i])
            out[k + n] = pt_count_at(t, i)
            k += 1
    return k + n


cdef int64_t _read_table(PackedTable *t, const uint64_t *words, int64_t nwords, int64_t k,
                         str what) except -1:
    """Fill the empty table ``t`` from a block written by :func:`_write_table`."""
    cdef int64_t i, n
    cdef uint64_t limit = (<uint64_t>1 << (64 - t.cbits)) if t.cbits > 0 else 0
    if k >= nwords:
        raise ValueError(f"truncated {what} blob")
    n = <int64_t>words[k]
    k += 1
    if n < 0 or k + 2 * n > nwords:
        raise ValueError(f"truncated {what} blob")
    if pt_init(t, n) < 0:
        raise MemoryError()
    for i in range(n):
        if words[k + i] >= limit:
            raise ValueError(f"corrupt {what} blob: key too long for its table")
        if pt_add(t, words[k + i], words[k + n + i]) < 0:
            raise MemoryError()
    return k + 2 * n


cdef int64_t _image_words(const PackedTable *t) noexcept nogil:
    """Words :func:`_write_image` writes for ``t``."""
    return 4 + t.cap + 2 * t.overflow.cap


cdef int64_t _write_image(const PackedTable *t, uint64_t *out, int64_t k) noexcept nogil:
    """Write ``t`` as it lies in memory at ``out[k:]``: capacity, size, the
    slots, then the overflow table's capacity, size and entries; the next
    free word. Loading it is a copy (:func:`_read_image`), where a list of
    keys would be inserted again one by one."""
    out[k] = <uint64_t>t.cap
    out[k + 1] = <uint64_t>t.size
    k += 2
    if t.cap:
        memcpy(&out[k], t.slots, t.cap * sizeof(uint64_t))
        k += t.cap
    out[k] = <uint64_t>t.overflow.cap
    out[k + 1] = <uint64_t>t.overflow.size
    k += 2
    if t.overflow.cap:
        memcpy(&out[k], t.overflow.slots, t.overflow.cap * sizeof(U64Entry))
        k += 2 * t.overflow.cap
    return k


cdef int _log2_cap(uint64_t cap, uint64_t size, int64_t room) noexcept nogil:
    """``log2(cap)`` of a stored table, or -1 unless ``cap`` is 0 (with ``size``
    0) or a power of two of at least 16 that fits in ``room`` words and has
    a free slot left after ``size`` keys."""
    cdef int bits = 0
    if cap == 0:
        return 0 if size == 0 else -1
    if room < 0 or cap < 16 or cap & (cap - 1) or cap > <uint64_t>room or size >= cap:
        return -1
    while (<uint64_t>1 << bits) < cap:
        bits += 1
    return bits


ctypedef int64_t (*HomeOf)(const void *table, int64_t s) noexcept nogil


cdef int64_t _pt_home(const void *table, int64_t s) noexcept nogil:
    """The home slot of the key in slot ``s`` of a ``PackedTable``, or -1 if it is free."""
    cdef const PackedTable *t = <const PackedTable *>table
    return pt_slot(t, pt_key(t, t.slots[s])) if t.slots[s] else -1


cdef int64_t _u64_home(const void *table, int64_t s) noexcept nogil:
    """:func:`_pt_home` for a ``U64Table``."""
    cdef const U64Table *t = <const U64Table *>table
    return u64_slot(t, t.slots[s].key) if t.slots[s].key != EMPTY_KEY else -1


cdef bint _placed(const void *table, int64_t cap, int64_t size, HomeOf home_of) noexcept nogil:
    """Whether a linear-probing table of ``cap`` slots is sound: ``size``
    keys, each reachable from its home slot without crossing a free slot (so
    every lookup finds it and every probe ends)."""
    cdef int64_t i, k, s, home, free_slot = -1, run = 0, n = 0, mask = cap - 1
    for i in range(cap):
        if home_of(table, i) < 0:
            free_slot = i
            break
    if free_slot < 0:
        return size == 0 and cap == 0
    for k in range(1, cap + 1):
        s = (free_slot + k) & mask
        home = home_of(table, s)
        if home < 0:
            run = 0
            continue
        run += 1
        n += 1
        if ((s - home) & mask) >= run:
            return False
    return n == size


cdef int64_t _read_image(PackedTable *t, const uint64_t *words, int64_t nwords, int64_t k,
                         str what) except -1:
    """Fill the empty table ``t`` from a block written by :func:`_write_image`,
    checking that it is a sound table (a bad blob is a ``ValueError``, never
    a lookup that runs off or forever)."""
    cdef int bits, obits
    cdef int64_t cap, ocap
    cdef bint sound
    if k + 2 > nwords:
        raise ValueError(f"truncated {what} blob")
    bits = _log2_cap(words[k], words[k + 1], nwords - k - 4)
    if bits < 0:
        raise ValueError(f"corrupt {what} blob: bad table capacity or size")
    cap = <int64_t>words[k]
    if cap:
        t.slots = <uint64_t *>malloc(cap * sizeof(uint64_t))
        if t.slots == NULL:
            raise MemoryError()
        memcpy(t.slots, &words[k + 2], cap * sizeof(uint64_t))
        t.cap = cap
        t.size = <int64_t>words[k + 1]
        t.shift = 64 - bits
    k += 2 + cap
    if k + 2 > nwords:
        raise ValueError(f"truncated {what} blob")
    obits = _log2_cap(words[k], words[k + 1], (nwords - k - 2) // 2)
    if obits < 0:
        raise ValueError(f"corrupt {what} blob: bad overflow table")
    ocap = <int64_t>words[k]
    if ocap:
        t.overflow.slots = <U64Entry *>malloc(ocap * sizeof(U64Entry))
        if t.overflow.slots == NULL:
            raise MemoryError()
        memcpy(t.overflow.slots, &words[k + 2], ocap * sizeof(U64Entry))
        t.overflow.cap = ocap
        t.overflow.size = <int64_t>words[k + 1]
        t.overflow.shift = 64 - obits
    with nogil:
        sound = _placed(t, t.cap, t.size, _pt_home) and \
            _placed(&t.overflow, t.overflow.cap, t.overflow.size, _u64_home)
    if not sound:
        raise ValueError(f"corrupt {what} blob: a table's slots do not hold its keys in place")
    return k + 2 + 2 * ocap


# ----------------------------------------------------------------------------
# §6.3: n-gram Viterbi segmentation
# ----------------------------------------------------------------------------

cdef inline double model_log(const NgramTables *model, uint64_t count) noexcept nogil:
    """``ln count``, as ``np.log`` computed it when the model was built."""
    cdef int64_t s
    if count < LOG_DENSE:
        return model.small_log[count]
    s = u64_find(&model.big_log, count)
    return model.big_log.slots[s].val.logp if s >= 0 else INFINITY


cdef int64_t segment_chunk(const NgramTables *model, const unsigned char *p, int64_t n,
                           bint ensure_unicode, uint8_t *back, int32_t *starts) noexcept nogil:
    """Cut ``p[:n]`` into pieces; writes the piece starts to ``starts``, returns their number.

    ``back`` needs ``n * order`` bytes. Ties follow the reference's matrix
    formulation: the back pointer of state ``b`` is the first ``a`` maximizing
    ``v[a] + move(a, b) + node[b]`` over *all* ``a`` (a forbidden move is
    ``-inf``), so it is 0 whenever every candidate is ``-inf``.

    The emission of state ``k`` is ``ln c(p[i-k:i+1]) - ln c(p[i-k:i])``; the
    second count was looked up at byte ``i - 1`` (state ``k - 1``), so it is
    carried over in ``prev`` instead of being looked up again.
    """
    cdef int K = model.order
    cdef double v[MAX_ORDER]
    cdef double w[MAX_ORDER]
    cdef double node[MAX_ORDER]
    cdef double cur[MAX_ORDER]    # ln count of the (k+1)-gram ending at byte i; +inf if absent
    cdef double prev[MAX_ORDER]   # the same at byte i - 1
    cdef double best, cand
    cdef int a, b, k, arg, state
    cdef int64_t i, s, count
    cdef uint64_t key
    cdef uint8_t byte
    cdef uint8_t *row
    cdef const PackedTable *t
    if n <= 0:
        return 0
    for i in range(n):
        byte = p[i]
        # Emissions: node[k] = ln P(p[i] | p[i-k:i]).
        node[0] = model.unigram_logp[byte]
        if ensure_unicode and byte >= 0x80 and byte <= 0xBF:
            node[0] = -INFINITY
        cur[0] = model.unigram_log[byte]
        key = byte
        k = 1
        while k < K and k <= i:
            key = (key << 8) | p[i - k]
            BP_PREFETCH(&model.tables[k + 1].slots[pt_slot(&model.tables[k + 1], key)])
            k += 1
        key = byte
        k = 1
        while k < K:
            if k > i:
                break
            key = (key << 8) | p[i - k]
            t = &model.tables[k + 1]
            s = pt_find(t, key)
            if s < 0:
                # A longer context contains this one, so it cannot be more
                # frequent: it was pruned too.
                break
            cur[k] = model_log(model, pt_count_at(t, s))
            node[k] = cur[k] - prev[k - 1]
            k += 1
        while k < K:
            node[k] = -INFINITY
            cur[k] = INFINITY
            k += 1
        for k in range(K):
            prev[k] = cur[k]
        row = back + i * K
        if i == 0:
            for b in range(K):
                v[b] = node[b]
                row[b] = 0
            continue
        # b = 0: from any state.
        best = -INFINITY
        arg = 0
        for a in range(K):
            cand = v[a] + node[0]
            if cand > best:
                best = cand
                arg = a
        w[0] = best
        row[0] = <uint8_t>arg
        # 0 < b < K-1: only from b-1.
        for b in range(1, K - 1):
            cand = v[b - 1] + node[b]
            if cand > -INFINITY:
                w[b] = cand
                row[b] = <uint8_t>(b - 1)
            else:
                w[b] = -INFINITY
                row[b] = 0
        # b = K-1 (K >= 2): from K-2 or K-1.
        if K >= 2:
            b = K - 1
            best = -INFINITY
            arg = 0
            cand = v[b - 1] + node[b]
            if cand > best:
                best = cand
                arg = b - 1
            cand = v[b] + node[b]
            if cand > best:
                best = cand
                arg = b
            w[b] = best
            row[b] = <uint8_t>arg
        for b in range(K):
            v[b] = w[b]
    # Final state: the first maximum.
    state = 0
    for b in range(1, K):
        if v[b] > v[state]:
            state = b
    # Walk back; starts come out in reverse order.
    count = 0
    i = n - 1
    while i > 0:
        if state == 0:
            starts[count] = <int32_t>i
            count += 1
        state = back[i * K + state]
        i -= 1
    starts[count] = 0
    count += 1
    return count


cdef int segment_packed(const NgramTables *model, const unsigned char *data,
                        const int64_t *offsets, int64_t nchunks, bint ensure_unicode,
                        uint8_t *is_start) noexcept nogil:
    """§6.3 on packed chunks: ``is_start[i] = 1`` where a piece starts, else 0.

    ``is_start`` holds one byte per byte of ``data`` from ``offsets[0]``.
    """
    cdef int64_t c, n, maxlen = 0, m, r, start, base = offsets[0]
    cdef uint8_t *back
    cdef int32_t *starts
    for c in range(nchunks):
        n = offsets[c + 1] - offsets[c]
        if n > maxlen:
            maxlen = n
    if maxlen == 0:
        return 0
    if maxlen > 0x7FFFFFFF:
        return -1
    back = <uint8_t *>malloc(<size_t>(maxlen * model.order))
    starts = <int32_t *>malloc(<size_t>(maxlen * sizeof(int32_t)))
    if back == NULL or starts == NULL:
        free(back); free(starts)
        return -1
    memset(is_start, 0, <size_t>(offsets[nchunks] - base))
    for c in range(nchunks):
        start = offsets[c]
        n = offsets[c + 1] - start
        m = segment_chunk(model, data + start, n, ensure_unicode, back, starts)
        for r in range(m):
            is_start[start - base + starts[r]] = 1
    free(back)
    free(starts)
    return 0


cdef int add_pieces(const unsigned char *data, const int64_t *offsets, int64_t nchunks,
                    const uint8_t *is_start, ByteTable *out) noexcept nogil:
    """Count into ``out`` the pieces that :func:`segment_packed` marked."""
    cdef int64_t c, i, piece, end, base = offsets[0]
    for c in range(nchunks):
        end = offsets[c + 1]
        piece = offsets[c]
        for i in range(offsets[c] + 1, end + 1):
            if i == end or is_start[i - base]:
                if bt_add(out, data + piece, i - piece, 1) < 0:
                    return -1
                piece = i
    return 0


cdef class NgramModel:
    """Pruned byte n-gram model (§6.2 output): ``ln P(byte | previous bytes)``.

    Made by :meth:`NgramCounts.prune`. :meth:`count_pieces` segments chunks
    with it (§6.3). Picklable, so it can be shipped to remote workers.

    It holds the pruned *counts*, in the same packed tables as
    :class:`NgramCounts` (8 bytes per n-gram), and ``ln`` of every count that
    occurs, computed once with ``np.log`` like the reference. The
    log-probability ``ln c(gram) - ln c(gram[:-1])`` is then the very
    subtraction the reference performs, so it is bit-identical, while the
    model needs no table of doubles beside the counts.
    """

    def __cinit__(self):
        cdef int j
        self.m.order = 0
        for j in range(MAX_ORDER + 1):
            pt_setup(&self.m.tables[j], j if j else 1)
        memset(&self.m.big_log, 0, sizeof(self.m.big_log))

    def __dealloc__(self):
        cdef int j
        for j in range(MAX_ORDER + 1):
            pt_free(&self.m.tables[j])
        u64_free(&self.m.big_log)

    cdef int _finish(self, const uint64_t *unigrams, uint64_t total, bint complete=True) except -1:
        """Set the unigram counts (none 0) and the total; compute every log; check prefixes.

        ``complete=False``: more n-grams are to come (a pass of a memory
        budget); the prefixes are checked once they are all in.
        """
        cdef int j, b
        cdef int64_t i, n = 0, s
        cdef uint64_t c, prefix, mask
        cdef U64Table big
        cdef PackedTable *t
        cdef double[::1] view
        cdef uint64_t[::1] big_view
        memcpy(self.m.unigram_count, unigrams, 256 * sizeof(uint64_t))
        self.m.total = total
        self.complete = complete
        # Every n-gram's prefix must be in the model: §6.3 relies on it.
        for j in range(3, self.m.order + 1 if complete else 0):
            t = &self.m.tables[j]
            mask = (<uint64_t>1 << (8 * (j - 1))) - 1
            for i in range(t.cap):
                if t.slots[i] and pt_find(&self.m.tables[j - 1], pt_key(t, t.slots[i]) & mask) < 0:
                    raise ValueError("inconsistent n-gram counts: an n-gram is more frequent than its prefix")
        # The distinct counts too large for the dense table of logs.
        memset(&big, 0, sizeof(big))
        try:
            for j in range(2, self.m.order + 1):
                t = &self.m.tables[j]
                for i in range(t.cap):
                    if t.slots[i]:
                        c = pt_count_at(t, i)
                        if c >= LOG_DENSE and u64_find(&big, c) < 0 and u64_add(&big, c, 0) < 0:
                            raise MemoryError()
            big_counts = np.empty(big.size, dtype=np.uint64)
            big_view = big_counts
            for i in range(big.cap):
                if big.slots[i].key != EMPTY_KEY:
                    big_view[n] = big.slots[i].key
                    n += 1
        finally:
            u64_free(&big)
        # Logs, all with np.log on float64 counts, as the reference takes them.
        small = np.log(np.arange(1, LOG_DENSE, dtype=np.float64))
        view = small
        self.m.small_log[0] = -INFINITY  # never used: stored counts are at least 1
        for i in range(LOG_DENSE - 1):
            self.m.small_log[i + 1] = view[i]
        big_logs = np.log(big_counts.astype(np.float64))
        view = big_logs
        u64_free(&self.m.big_log)
        if u64_init(&self.m.big_log, n) < 0:
            raise MemoryError()
        for i in range(n):
            if u64_add(&self.m.big_log, big_view[i], 0) < 0:
                raise MemoryError()
            s = u64_find(&self.m.big_log, big_view[i])
            self.m.big_log.slots[s].val.logp = view[i]
        unigram_logs = np.log(np.asarray([<double>unigrams[b] for b in range(256)], dtype=np.float64))
        log_total = float(np.log(np.asarray([float(total)], dtype=np.float64))[0])
        view = unigram_logs
        for b in range(256):
            self.m.unigram_log[b] = view[b]
            self.m.unigram_logp[b] = view[b] - log_total
        return 0

    @property
    def order(self) -> int:
        """The n-gram order (number of hidden states of §6.3)."""
        return self.m.order

    def _check_complete(self):
        if not self.complete:
            raise ValueError("this n-gram model still lacks the n-grams of later passes "
                             "(see NgramCounts.next_pass): it cannot segment yet")

    def __len__(self) -> int:
        """Number of n-grams in the model (the 256 single bytes included)."""
        cdef int j
        cdef int64_t n = 256
        for j in range(2, self.m.order + 1):
            n += self.m.tables[j].size
        return n

    def log_prob(self, gram: bytes):
        """``ln P(gram[-1] | gram[:-1])``, or ``None`` if the n-gram was pruned."""
        cdef const unsigned char[::1] g = gram
        cdef int n = len(gram), j
        cdef uint64_t key = 0
        cdef int64_t s, sp
        cdef double prefix
        if n < 1 or n > self.m.order:
            return None
        if n == 1:
            return self.m.unigram_logp[g[0]]
        for j in range(n):
            key |= (<uint64_t>g[j]) << (8 * j)
        s = pt_find(&self.m.tables[n], key)
        if s < 0:
            return None
        if n == 2:
            prefix = self.m.unigram_log[g[0]]
        else:
            sp = pt_find(&self.m.tables[n - 1], key & ((<uint64_t>1 << (8 * (n - 1))) - 1))
            if sp < 0:
                return None
            prefix = model_log(&self.m, pt_count_at(&self.m.tables[n - 1], sp))
        return model_log(&self.m, pt_count_at(&self.m.tables[n], s)) - prefix

    def segment(self, chunk: bytes, bint ensure_unicode=True) -> list:
        """§6.3 segmentation of one chunk, as a list of pieces."""
        cdef const unsigned char[::1] data = chunk
        cdef int64_t n = data.shape[0], m, r, end
        cdef uint8_t *back
        cdef int32_t *starts
        self._check_complete()
        if n == 0:
            return []
        back = <uint8_t *>malloc(<size_t>(n * self.m.order))
        starts = <int32_t *>malloc(<size_t>(n * sizeof(int32_t)))
        if back == NULL or starts == NULL:
            free(back); free(starts)
            raise MemoryError()
        with nogil:
            m = segment_chunk(&self.m, &data[0], n, ensure_unicode, back, starts)
        pieces = []
        end = n
        for r in range(m):
            pieces.append(chunk[starts[r]:end])
            end = starts[r]
        free(back)
        free(starts)
        pieces.reverse()
        return pieces

    def count_pieces(self, chunks, PieceCounts out, bint ensure_unicode=True) -> None:
        """Segment a sequence of ``bytes`` chunks and add their pieces to ``out``."""
        data, offsets = _packed_arrays(chunks)
        self.count_pieces_packed(data, offsets, out, ensure_unicode)

    def count_pieces_packed(self, const unsigned char[::1] data, const int64_t[::1] offsets,
                            PieceCounts out, bint ensure_unicode=True) -> None:
        """Segment packed chunks with the GIL released and count their pieces into ``out``.

        ``out`` is locked only while the pieces are added, not while the
        chunks are segmented, so that several threads can share one ``out``
        (one table of pieces, no partial tables to merge) and still segment
        in parallel.
        """
        cdef int rc
        cdef int64_t nchunks = offsets.shape[0] - 1
        cdef uint8_t *is_start
        self._check_complete()
        _check_packed(data, offsets)
        if nchunks < 1 or offsets[nchunks] == offsets[0]:
            return
        is_start = <uint8_t *>malloc(<size_t>(offsets[nchunks] - offsets[0]))
        if is_start == NULL:
            raise MemoryError()
        try:
            with nogil:
                rc = segment_packed(&self.m, &data[0], &offsets[0], nchunks, ensure_unicode, is_start)
            if rc == 0:
                with out._lock:
                    with nogil:
                        rc = add_pieces(&data[0], &offsets[0], nchunks, is_start, &out.table)
        finally:
            free(is_start)
        if rc < 0:
            raise MemoryError("out of memory while counting pieces")

    def to_bytes(self) -> bytes:
        """A compact binary image (used by pickling): the pruned counts.

        Words of 8 bytes: magic, order, total, 256 unigram counts, then per
        length ``j`` from 2: ``n``, ``n`` keys, ``n`` counts. The logs are
        recomputed when loading.
        """
        cdef int j
        cdef int64_t k
        cdef Py_ssize_t size = 8 * (3 + 256)
        self._check_complete()
        for j in range(2, self.m.order + 1):
            size += 8 + 16 * self.m.tables[j].size
        blob = PyBytes_FromStringAndSize(NULL, size)
        cdef uint64_t *out = <uint64_t *>PyBytes_AS_STRING(blob)
        out[0] = BLOB_MAGIC_MODEL
        out[1] = <uint64_t>self.m.order
        out[2] = self.m.total
        memcpy(&out[3], self.m.unigram_count, 256 * sizeof(uint64_t))
        k = 3 + 256
        for j in range(2, self.m.order + 1):
            k = _write_table(&self.m.tables[j], out, k)
        return blob

    @staticmethod
    def from_bytes(blob):
        """Rebuild a model from :meth:`to_bytes`."""
        cdef const unsigned char[::1] raw = blob
        cdef Py_ssize_t size = raw.shape[0]
        cdef const uint64_t *words
        cdef int64_t nwords, k
        cdef int j, b
        cdef NgramModel model
        if size < 8 * (3 + 256) or size % 8:
            raise ValueError("not an NgramModel blob")
        words = <const uint64_t *>&raw[0]
        nwords = size // 8
        if words[0] != BLOB_MAGIC_MODEL or words[1] < 1 or words[1] > MAX_ORDER:
            raise ValueError("not an NgramModel blob")
        for b in range(256):
            if words[3 + b] == 0:
                raise ValueError("corrupt NgramModel blob: a byte has count 0")
        model = NgramModel.__new__(NgramModel)
        model.m.order = <int>words[1]
        k = 3 + 256
        for j in range(2, model.m.order + 1):
            k = _read_table(&model.m.tables[j], words, nwords, k, "NgramModel")
        model._finish(&words[3], words[2])
        return model

    def __reduce_ex__(self, protocol):
        return (NgramModel.from_bytes, (_blob_for_pickle(self.to_bytes(), protocol),))


cdef void _partition_fill(const ByteTable *t, int64_t max_length, int64_t min_count, list keep,
                         int64_t[::1] keep_counts, int64_t[::1] drop_counts,
                         int64_t[::1] drop_offsets, unsigned char *drop_data):
    """The filling half of :meth:`PieceCounts.partition` (arrays already sized)."""
    cdef int64_t i, k = 0, d = 0, pos = 0
    cdef uint32_t n
    drop_offsets[0] = 0
    for i in range(t.cap):
        n = t.lens[i]
        if n == 0:
            continue
        if n == 1 or (n <= max_length and t.counts[i] >= min_count):
            keep.append(PyBytes_FromStringAndSize(<const char *>(t.arena + t.offs[i]), n))
            keep_counts[k] = t.counts[i]
            k += 1
        else:
            memcpy(drop_data + pos, t.arena + t.offs[i], n)
            pos += n
            drop_counts[d] = t.counts[i]
            d += 1
            drop_offsets[d] = pos


cdef class PieceCounts:
    """Piece counts of a corpus shard (§6.3 output); a mergeable partial result.

    Filled by :meth:`NgramModel.count_pieces`, combined with :meth:`merge`
    (exact sums), pickled as one blob. :meth:`items` hands the pieces to
    Python once, for the pruning of §6.4.
    """

    def __cinit__(self):
        memset(&self.table, 0, sizeof(self.table))
        self._lock = threading.Lock()

    def __dealloc__(self):
        bt_free(&self.table)

    def __len__(self) -> int:
        """Number of distinct pieces."""
        return self.table.size

    def add(self, piece: bytes, count: int = 1) -> None:
        """``counts[piece] += count``."""
        cdef const unsigned char[::1] p = piece
        if len(piece) == 0:
            raise ValueError("a piece cannot be empty")
        with self._lock:
            if bt_add(&self.table, &p[0], p.shape[0], count) < 0:
                raise MemoryError()

    def count(self, piece: bytes) -> int:
        """How often ``piece`` was counted; 0 if never."""
        cdef const unsigned char[::1] p = piece
        cdef int64_t s
        if len(piece) == 0:
            return 0
        s = bt_find(&self.table, &p[0], p.shape[0])
        return self.table.counts[s] if s >= 0 else 0

    def merge(self, PieceCounts other):
        """Add ``other``'s counts into this one (in place); returns ``self``."""
        cdef int64_t i
        cdef int rc = 0
        if other is self:
            raise ValueError("cannot merge piece counts into themselves")
        with self._lock, other._lock:
            with nogil:
                for i in range(other.table.cap):
                    if other.table.lens[i]:
                        if bt_add(&self.table, other.table.arena + other.table.offs[i],
                                  other.table.lens[i], other.table.counts[i]) < 0:
                            rc = -1
                            break
        if rc < 0:
            raise MemoryError("out of memory while merging piece counts")
        return self

    def items(self):
        """``(pieces, counts)``: a list of ``bytes`` and an int64 array, in no particular order."""
        cdef int64_t i, k = 0
        cdef const unsigned char *arena = self.table.arena
        counts = np.empty(self.table.size, dtype=np.int64)
        cdef int64_t[::1] cv = counts
        pieces = []
        with self._lock:
            for i in range(self.table.cap):
                if self.table.lens[i]:
                    pieces.append(PyBytes_FromStringAndSize(
                        <const char *>(arena + self.table.offs[i]), self.table.lens[i]))
                    cv[k] = self.table.counts[i]
                    k += 1
        return pieces, counts

    def partition(self, int64_t max_length, int64_t min_count, bint release=False):
        """§6.4 step 2's split: ``(keep, keep_counts, (drop_data, drop_offsets), drop_counts)``.

        ``keep`` (a list of ``bytes``) holds the single bytes and the pieces of
        at most ``max_length`` bytes counted at least ``min_count`` times; the
        others are returned packed (``drop_data[drop_offsets[i]:drop_offsets[i+1]]``),
        ready to be split, without a Python object each: they are most of the
        pieces and most of their bytes (the long rare ones). Counts are int64
        arrays; the order is unspecified. With ``release``, these counts are
        emptied, and their memory freed, once the pieces are out.
        """
        cdef int64_t i, nkeep = 0, ndrop = 0, drop_bytes = 0
        cdef uint32_t n
        with self._lock:
            for i in range(self.table.cap):
                n = self.table.lens[i]
                if n:
                    if n == 1 or (n <= max_length and self.table.counts[i] >= min_count):
                        nkeep += 1
                    else:
                        ndrop += 1
                        drop_bytes += n
            keep = []
            keep_counts = np.empty(nkeep, dtype=np.int64)
            drop_counts = np.empty(ndrop, dtype=np.int64)
            drop_offsets = np.empty(ndrop + 1, dtype=np.int64)
            drop_data = PyBytes_FromStringAndSize(NULL, drop_bytes)
            _partition_fill(&self.table, max_length, min_count, keep, keep_counts, drop_counts,
                            drop_offsets, <unsigned char *>PyBytes_AS_STRING(drop_data))
            if release:
                bt_free(&self.table)
        return keep, keep_counts, (drop_data, drop_offsets), drop_counts

    def to_dict(self) -> dict:
        """``{piece: count}`` (convenient for tests)."""
        pieces, counts = self.items()
        return dict(zip(pieces, counts.tolist()))

    def to_bytes(self) -> bytes:
        """A compact binary image (used by pickling): header, lengths, counts, arena."""
        cdef int64_t i, k = 0, n = self.table.size, pos = 0
        cdef Py_ssize_t size
        cdef unsigned char *out
        cdef uint64_t *head
        cdef uint32_t *lens
        cdef int64_t *cnts
        cdef unsigned char *arena
        cdef int64_t arena_bytes = 0
        with self._lock:
            for i in range(self.table.cap):
                if self.table.lens[i]:
                    arena_bytes += self.table.lens[i]
            size = 16 + 12 * n + arena_bytes
            blob = PyBytes_FromStringAndSize(NULL, size)
            out = <unsigned char *>PyBytes_AS_STRING(blob)
            head = <uint64_t *>out
            head[0] = BLOB_MAGIC_PIECES
            head[1] = <uint64_t>n
            cnts = <int64_t *>(out + 16)
            lens = <uint32_t *>(out + 16 + 8 * n)
            arena = out + 16 + 12 * n
            for i in range(self.table.cap):
                if self.table.lens[i]:
                    cnts[k] = self.table.counts[i]
                    lens[k] = self.table.lens[i]
                    memcpy(arena + pos, self.table.arena + self.table.offs[i], self.table.lens[i])
                    pos += self.table.lens[i]
                    k += 1
        return blob

    @staticmethod
    def from_bytes(blob):
        """Rebuild piece counts from :meth:`to_bytes`."""
        cdef const unsigned char[::1] raw = blob
        cdef Py_ssize_t size = raw.shape[0]
        cdef const unsigned char *p
        cdef const uint64_t *head
        cdef const int64_t *cnts
        cdef const uint32_t *lens
        cdef int64_t i, n, pos = 0, arena_bytes
        cdef PieceCounts counts = PieceCounts()
        if size < 16:
            raise ValueError("not a PieceCounts blob")
        p = &raw[0]
        head = <const uint64_t *>p
        if head[0] != BLOB_MAGIC_PIECES or head[1] > <uint64_t>(size // 12):
            raise ValueError("not a PieceCounts blob")
        n = <int64_t>head[1]
        cnts = <const int64_t *>(p + 16)
        lens = <const uint32_t *>(p + 16 + 8 * n)
        arena_bytes = size - 16 - 12 * n
        if bt_init(&counts.table, n) < 0:
            raise MemoryError()
        for i in range(n):
            if lens[i] == 0 or pos + lens[i] > arena_bytes:
                raise ValueError("corrupt PieceCounts blob")
            if bt_add(&counts.table, p + 16 + 12 * n + pos, lens[i], cnts[i]) < 0:
                raise MemoryError()
            pos += lens[i]
        return counts

    def __reduce_ex__(self, protocol):
        return (PieceCounts.from_bytes, (_blob_for_pickle(self.to_bytes(), protocol),))
