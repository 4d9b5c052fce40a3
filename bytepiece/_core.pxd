# cython: language_level=3
"""C structures of the compiled tokenizer core.

The vocabulary is compiled into a double-array trie over the *reversed*
pieces: walking it backwards from an end position ``e`` visits every piece
that ends at ``e``, shortest first. That one walk serves Viterbi (§4), the
forward pass of sampling (§5) and the backward draw of sampling.
"""
from libc.math cimport INFINITY, exp, log1p
from libc.stdint cimport uint32_t, int32_t, int64_t, uint64_t


cdef inline double logaddexp(double a, double b) noexcept nogil:
    """ln(e**a + e**b) without overflow; -inf is the identity."""
    if a == -INFINITY:
        return b
    if b == -INFINITY:
        return a
    if a > b:
        return a + log1p(exp(b - a))
    return b + log1p(exp(a - b))


cdef struct DACell:
    # Used while building only; the walks use the 4-byte ``Trie.unit`` array.
    int32_t base    # children of this node live at base + byte
    int32_t check   # parent node of this cell, -1 when the cell is free


cdef struct Rng:
    uint64_t s0, s1, s2, s3    # xoshiro256** state


cdef struct Scratch:
    # Per-thread work arrays, grown on demand, indexed by chunk position.
    double *best        # Viterbi score, or sampling forward mass (scaled)
    int64_t *scale      # sampling: power-of-two scale exponent of best[i]
    int32_t *piece      # trie node of the last piece of the best/drawn prefix ending here
    int32_t *path       # piece indexes of a segmentation, reversed
    int64_t capacity


cdef struct Trie:
    DACell *cells
    uint32_t *unit      # per cell: base << 9 | 0x100 (a child) | its byte; see trie_units
    unsigned char *base_taken   # while building: 1 where some node's base is
    unsigned char *cell_used    # while building: 1 where a cell is taken
    int32_t *value      # per cell: index of the piece ending at this node, or none
    double *node_score  # per cell: score of that piece, -inf for none
    int32_t none        # the "no piece here" index: n_pieces, scored -inf
    int32_t *length     # length in bytes of each piece
    int64_t size        # cells allocated
    int32_t max_depth   # longest piece in bytes


cdef struct Weights:
    # Sampling weights for one alpha, per trie node: exp(alpha * score) = p ** alpha
    # of the piece ending at the node, 0 where none does.
    double *node_weight
    double alpha
    int log_domain      # 0 linear, 1 log domain (range too wide), 2 point mass (Viterbi)


cdef int trie_build(Trie *trie, const unsigned char *keys, const int64_t *offsets,
                    const int32_t *ids, int64_t n) noexcept nogil
cdef void trie_free(Trie *trie) noexcept nogil
cdef int scratch_reserve(Scratch *scratch, int64_t n) noexcept nogil
cdef void scratch_free(Scratch *scratch) noexcept nogil
cdef void rng_seed(Rng *rng, uint64_t seed) noexcept nogil
cdef double rng_uniform(Rng *rng) noexcept nogil
cdef int64_t viterbi(const Trie *trie, const unsigned char *text, int64_t n,
                     Scratch *scratch) noexcept nogil
cdef int64_t sample(const Trie *trie, const double *score, const Weights *weights,
                    const unsigned char *text, int64_t n, Scratch *scratch,
                    Rng *rng) noexcept nogil


cdef class Segmenter:
    cdef Trie trie
    cdef double *score
    cdef int32_t n_pieces
    cdef object _pieces
    cdef object _scores
    cdef object _weights_cache
    cdef object _weights_lock
    cdef object _node_weights(self, double alpha)
    cdef object _weights_for(self, double alpha)
