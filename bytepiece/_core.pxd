# cython: language_level=3
"""Interface of the compiled tokenizer core (``bytepiece._core``).

The core is three extension modules: ``_trie`` (the double-array trie),
``_lattice`` (Viterbi, sampling, entropy and edges of one text) and
``_core`` itself, assembled from ``_batch.pxi``, ``_text.pxi`` and
``_segmenter.pxi``. Their structs, the inline functions of the hot loops
and the functions they share are declared in the headers cimported here.
"""
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t

from bytepiece._rng cimport Rng, splitmix64, rotl, rng_seed, rng_next, rng_uniform, text_seed
from bytepiece._trie cimport (
    DACell, Trie, TRIE_MAX_CELLS, trie_step, trie_build, trie_free, trie_depth
)
from bytepiece._lattice cimport (
    NEWLINE, logaddexp, Scratch, Weights, chunk_end, EncodeTask, scratch_reserve, scratch_free,
    viterbi, sample, edges_ending_at, chunk_entropy, encode_text
)
from bytepiece._batch cimport BatchJob, FillQueue, Worker


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

