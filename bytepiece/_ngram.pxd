# cython: language_level=3
"""C structures of the compiled trainer (ALGORITHM.md §6.1-6.3).

Open-addressing hash tables with linear probing and power-of-two capacities:

* ``PackedTable`` counts the n-grams of exactly ``j <= 7`` bytes, one table
  per length, so a key needs no length: the n-gram packed little-endian (first
  byte lowest) into ``8 * j`` bits. Key and count share one ``uint64`` slot,
  ``(key << (64 - 8 * j)) | count``, which halves the memory of the largest
  tables of the trainer (a 16-byte key + count slot would double it). A count
  that does not fit the ``64 - 8 * j`` bits (65,535 for 6-grams, 255 for
  7-grams) saturates the field and lives in a small ``U64Table`` beside it.
  A free slot is 0: every stored count is at least 1.
* ``U64Table`` maps a ``uint64`` other than all ones to a ``uint64`` count or
  a ``double`` (the overflowing counts above, the logs of the large counts).
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


cdef struct PackedTable:
    uint64_t *slots     # (key << cbits) | count; 0 marks a free slot
    int64_t cap         # number of slots, a power of two (0: not allocated)
    int64_t size        # number of keys
    int shift           # 64 - log2(cap), for Fibonacci hashing
    int cbits           # bits of the count field: 64 - 8 * (n-gram length)
    U64Table overflow   # key -> count, for the keys whose count field is all ones


cdef int u64_init(U64Table *t, int64_t min_keys) noexcept nogil
cdef void u64_free(U64Table *t) noexcept nogil
cdef int u64_add(U64Table *t, uint64_t key, uint64_t inc) noexcept nogil
cdef int64_t u64_find(const U64Table *t, uint64_t key) noexcept nogil

cdef void pt_setup(PackedTable *t, int length) noexcept nogil
cdef int pt_init(PackedTable *t, int64_t min_keys) noexcept nogil
cdef void pt_free(PackedTable *t) noexcept nogil
cdef int pt_add(PackedTable *t, uint64_t key, uint64_t inc) noexcept nogil
cdef int64_t pt_find(const PackedTable *t, uint64_t key) noexcept nogil
cdef void pt_prune(PackedTable *t, uint64_t min_count) noexcept nogil
cdef int pt_shrink(PackedTable *t) noexcept nogil

cdef int bt_init(ByteTable *t, int64_t min_keys) noexcept nogil
cdef void bt_free(ByteTable *t) noexcept nogil
cdef int bt_add(ByteTable *t, const unsigned char *key, int64_t n, int64_t inc) noexcept nogil
cdef int64_t bt_find(const ByteTable *t, const unsigned char *key, int64_t n) noexcept nogil

#: Counts below this have their log in a dense array of the model.
cdef enum:
    LOG_DENSE = 4096


cdef struct NgramTables:
    int order
    uint64_t total                   # bytes, plus 1 per byte value never seen
    uint64_t unigram_count[256]      # the byte counts, unseen bytes counted once
    double unigram_logp[256]         # ln P(byte)
    double unigram_log[256]          # ln count(byte): the prefix term of 2-grams
    double small_log[LOG_DENSE]      # ln c for 1 <= c < LOG_DENSE
    U64Table big_log                 # c -> ln c for the larger counts in the tables
    PackedTable tables[MAX_ORDER + 1]   # tables[j]: pruned counts of j-grams, 2 <= j <= order


cdef int64_t segment_chunk(const NgramTables *model, const unsigned char *p, int64_t n,
                           bint ensure_unicode, uint8_t *back, int32_t *starts) noexcept nogil
cdef int segment_packed(const NgramTables *model, const unsigned char *data,
                        const int64_t *offsets, int64_t nchunks, bint ensure_unicode,
                        uint8_t *is_start) noexcept nogil
cdef int add_pieces(const unsigned char *data, const int64_t *offsets, int64_t nchunks,
                    const uint8_t *is_start, ByteTable *out) noexcept nogil

cdef int count_ngrams(const unsigned char *data, const int64_t *offsets, int64_t nchunks,
                      int order, uint64_t *total, uint64_t *unigrams,
                      PackedTable *tables, int part, int parts,
                      const uint64_t *lo, uint64_t *hi, const int64_t *max_keys) noexcept nogil


cdef class NgramCounts:
    cdef readonly int order
    cdef uint64_t n_bytes           # table 0: the empty string, once per byte
    cdef uint64_t unigrams[256]     # table 1
    cdef PackedTable tables[MAX_ORDER + 1]   # tables[j] for 2 <= j <= order
    cdef object _lock
    cdef object _locks                    # one per part of add_packed(part, parts)
    # Memory budget (0: none): table j counts the n-grams whose range hash
    # lies in [lo[j], hi[j]) and holds at most max_keys[j] keys.
    cdef int64_t budget
    cdef uint64_t lo[MAX_ORDER + 1]
    cdef uint64_t hi[MAX_ORDER + 1]
    cdef int64_t max_keys[MAX_ORDER + 1]
    cdef bint _ranged(self) noexcept
    cdef int _load_budget(self, uint64_t budget) except -1
    cdef int _load_range(self, int j, uint64_t lo, uint64_t hi) except -1


cdef class NgramModel:
    cdef NgramTables m
    cdef readonly bint complete   # False while later passes of a budget still have n-grams to add
    cdef int _finish(self, const uint64_t *unigrams, uint64_t total, bint complete=*) except -1


cdef class PieceCounts:
    cdef ByteTable table
    cdef object _lock
