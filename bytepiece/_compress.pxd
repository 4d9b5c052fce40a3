# cython: language_level=3
"""C-level declarations of ``bytepiece._compress`` (the vocabulary hash-trie)."""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t


cdef class PieceSet:
    cdef uint64_t *slots     # open addressing: (parent << 8 | byte) << 32 | child
    cdef int64_t mask
    cdef int32_t *value
    cdef int64_t n_nodes
    cdef int32_t root[256]
    cdef int64_t value_cap
    cdef int32_t max_len
    cdef int32_t n_pieces
    cdef object _blob
    cdef int64_t[::1] _offsets

    cdef int grow(self) noexcept
    cdef int64_t lookup(self, int64_t node, uint8_t b) noexcept nogil
    cdef int64_t step(self, int64_t node, uint8_t b) noexcept nogil
    cdef int64_t fewest(self, const uint8_t *t, int64_t n, int32_t exclude,
                        int32_t *dp) noexcept nogil
    cdef int64_t viterbi_tokens(self, const double *score, const uint8_t *t, int64_t n,
                                int32_t exclude, double *best, int32_t *back) noexcept nogil
    cdef void forward_backward(self, const double *score, const uint8_t *t, int64_t n,
                               double w, double *fw, double *bw, double *counts) noexcept nogil
    cdef void viterbi_count(self, const double *score, const uint8_t *t, int64_t n,
                            int64_t w, double *best, int32_t *back, int32_t *which,
                            int64_t *counts) noexcept nogil
