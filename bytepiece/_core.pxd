# cython: language_level=3
"""Interface of the compiled tokenizer core (``bytepiece._core``).

One extension module assembled from one include file per responsibility
(``_trie.pxi``, ``_lattice.pxi``, ``_batch.pxi``, ``_text.pxi``,
``_segmenter.pxi``); their C structures and the inline functions the hot
loops need are in the headers cimported here. Below: the module's nogil
functions other modules may call, and the Segmenter class.
"""
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

from bytepiece._rng cimport Rng, splitmix64, rotl, rng_seed, rng_next, rng_uniform, text_seed
from bytepiece._trie cimport DACell, Trie, trie_step
from bytepiece._lattice cimport logaddexp, Scratch, Weights, EncodeTask
from bytepiece._batch cimport BatchJob, FillQueue, Worker


cdef int trie_build(Trie *trie, const unsigned char *keys, const int64_t *offsets,
                    const int32_t *ids, int64_t n) noexcept nogil


cdef void trie_free(Trie *trie) noexcept nogil


cdef int scratch_reserve(Scratch *scratch, int64_t n) noexcept nogil


cdef void scratch_free(Scratch *scratch) noexcept nogil


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

