# cython: language_level=3
"""Segmentation of one text (``_lattice.pyx``): per-thread scratch arrays,
sampling weights, the state of one encoding call, and the functions the
batch jobs and the Segmenter call (through the module's function table:
once per chunk or per text; the per-byte work stays inside the module)."""
from libc.math cimport INFINITY, exp, log1p
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memchr

from bytepiece._rng cimport Rng
from bytepiece._trie cimport Trie


cdef enum:
    NEWLINE = 10    # chunks end after newline runs (§1)


cdef inline double logaddexp(double a, double b) noexcept nogil:
    """ln(e**a + e**b) without overflow; -inf is the identity."""
    if a == -INFINITY:
        return b
    if b == -INFINITY:
        return a
    if a > b:
        return a + log1p(exp(b - a))
    return b + log1p(exp(a - b))


cdef struct Scratch:
    # Per-thread work arrays, grown on demand, indexed by chunk position.
    double *best        # Viterbi score, or sampling forward mass (scaled)
    int64_t *scale      # sampling: power-of-two scale exponent of best[i]
    int32_t *piece      # trie node of the last piece of the best/drawn prefix ending here
    int32_t *path       # piece indexes of a segmentation, reversed
    int64_t capacity


cdef struct Weights:
    # Sampling weights for one alpha, per trie node: exp(alpha * score) = p ** alpha
    # of the piece ending at the node, 0 where none does.
    double *node_weight
    double alpha
    int log_domain      # 0 linear, 1 log domain (range too wide), 2 point mass (Viterbi)


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


cdef int scratch_reserve(Scratch *scratch, int64_t n) noexcept nogil


cdef void scratch_free(Scratch *scratch) noexcept nogil


cdef int64_t viterbi(const Trie *trie, const unsigned char *text, int64_t n,
                     Scratch *scratch) noexcept nogil


cdef int64_t sample(const Trie *trie, const double *score, const Weights *weights,
                    const unsigned char *text, int64_t n, Scratch *scratch,
                    Rng *rng) noexcept nogil


cdef int64_t edges_ending_at(const Trie *trie, const unsigned char *text, int64_t lo, int64_t e,
                             int64_t *starts, int64_t *ends, int32_t *ids) noexcept nogil


cdef double chunk_entropy(const Trie *trie, const double *score, double alpha,
                          const unsigned char *text, int64_t n, Scratch *scratch) noexcept nogil


cdef int64_t encode_text(EncodeTask *task, const unsigned char *text, int64_t n, bint chunked,
                         int32_t *out) noexcept nogil

