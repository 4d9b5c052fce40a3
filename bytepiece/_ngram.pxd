# cython: language_level=3
"""C structures of the compiled trainer (ALGORITHM.md §6.1-6.3).

Two open-addressing hash tables, both with linear probing and power-of-two
capacities:

* ``U64Table`` maps an n-gram of exactly ``j <= 7`` bytes, packed little-endian
  into a ``uint64`` (first byte lowest), to a count (``uint64``) or, after
  pruning, to a log-probability (the same 8 bytes read as ``double``). Every
  n-gram length has its own table, so the packed key needs no length, and the
  top byte of a key is always 0, so all ones can mark a free slot.
* ``ByteTable`` maps byte strings of any length (pieces) to an ``int64``
  count; the bytes live in one growing arena, a slot holds offset, length,
  hash and count.

Every function here is ``nogil``; the ones that allocate return ``-1`` when
memory runs out (the caller raises ``MemoryError`` once it holds the GIL).
"""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

#: Longest n-gram a packed ``uint64`` key can hold, hence the largest order.
cdef enum:
    MAX_ORDER = 7


cdef union U64Value:
    uint64_t count      # while counting
    double logp         # after pruning


cdef struct U64Entry:
    uint64_t key        # EMPTY_KEY (all ones) marks a free slot
    U64Value val


cdef struct U64Table:
    U64Entry *slots     # key and value side by side: one cache line per probe
    int64_t cap         # number of slots, a power of two (0: not allocated)
    int64_t size        # number of keys
    int shift           # 64 - log2(cap), for Fibonacci hashing


cdef struct ByteTable:
    unsigned char *arena    # the bytes of every key, back to back
    int64_t arena_len
    int64_t arena_cap
    int64_t *offs           # slot -> offset of its key in the arena
    uint32_t *lens          # slot -> key length; 0 marks an empty slot
    uint32_t *hashes        # slot -> low 32 bits of the key's hash
    int64_t *counts         # slot -> count
    int64_t cap
    int64_t size
    int shift


cdef int u64_init(U64Table *t, int64_t min_keys) noexcept nogil
cdef void u64_free(U64Table *t) noexcept nogil
cdef int u64_add(U64Table *t, uint64_t key, uint64_t inc) noexcept nogil
cdef int64_t u64_find(const U64Table *t, uint64_t key) noexcept nogil

cdef int bt_init(ByteTable *t, int64_t min_keys) noexcept nogil
cdef void bt_free(ByteTable *t) noexcept nogil
cdef int bt_add(ByteTable *t, const unsigned char *key, int64_t n, int64_t inc) noexcept nogil
cdef int64_t bt_find(const ByteTable *t, const unsigned char *key, int64_t n) noexcept nogil

cdef struct NgramTables:
    int order
    double unigram_logp[256]         # ln P(byte)
    U64Table tables[MAX_ORDER + 1]   # tables[j]: ln P(last byte | first j-1 bytes), 2 <= j <= order


cdef int64_t segment_chunk(const NgramTables *model, const unsigned char *p, int64_t n,
                           bint ensure_unicode, uint8_t *back, int32_t *starts) noexcept nogil
cdef int count_pieces_packed(const NgramTables *model, const unsigned char *data,
                             const int64_t *offsets, int64_t nchunks, bint ensure_unicode,
                             ByteTable *out) noexcept nogil

cdef int count_ngrams(const unsigned char *data, const int64_t *offsets, int64_t nchunks,
                      int order, uint64_t *total, uint64_t *unigrams,
                      U64Table *tables, int part, int parts) noexcept nogil


cdef class NgramCounts:
    cdef readonly int order
    cdef uint64_t n_bytes           # table 0: the empty string, once per byte
    cdef uint64_t unigrams[256]     # table 1
    cdef U64Table tables[MAX_ORDER + 1]   # tables[j] for 2 <= j <= order
    cdef object _lock
    cdef object _locks                    # one per part of add_packed(part, parts)


cdef class NgramModel:
    cdef NgramTables m


cdef class PieceCounts:
    cdef ByteTable table
    cdef object _lock
