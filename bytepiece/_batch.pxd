# cython: language_level=3
"""Batch jobs (``_batch.pxi``): the state the native worker threads share."""
from libc.stdint cimport int32_t, int64_t, uint64_t

from bytepiece._lattice cimport Weights
from bytepiece._trie cimport Trie


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


cdef struct FillQueue:
    # List mode: the blocks a worker segmented whose lists it has not filled.
    int64_t *blocks
    int64_t head, tail
    int64_t *refs              # this worker's row of job.refs


cdef struct Worker:
    # What every worker thread of a job reads.
    BatchJob *job
    const Trie *trie
    const double *score
    const Weights *weights     # NULL: deterministic

