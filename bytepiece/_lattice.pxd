# cython: language_level=3
"""Segmentation of one text (``_lattice.pxi``): per-thread scratch arrays,
sampling weights, and the state of one encoding call."""
from libc.math cimport INFINITY, exp, log1p
from libc.stdint cimport int32_t, int64_t

from bytepiece._rng cimport Rng
from bytepiece._trie cimport Trie


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


cdef struct EncodeTask:
    const Trie *trie
    const double *score
    const Weights *weights     # NULL: deterministic
    Scratch scratch
    Rng rng

