# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled tokenizer core: matching, Viterbi and exact sampling (ALGORITHM.md §4-5).

Design
------
* The vocabulary is a double-array trie over reversed pieces (see ``_trie.pxd``).
  For every end position ``e`` of a chunk we walk it backwards over
  ``text[e-1], text[e-2], ...``; each node holding a piece is a lattice edge
  ``text[k:e]``. Edges therefore come shortest first (start descending).
* Viterbi keeps, for each ``e``, the best ``best[k] + score``. The reference
  visits starts ascending with a strict ``>``; visiting them descending with
  ``>=`` picks the very same edge (the smallest start among equal sums), and
  the sums are the same float64 additions, so results match bit for bit.
* Sampling is forward-filtering / backward-sampling: ``mass[e]`` is the sum over
  all segmentations of ``text[:e]`` of ``prod(p ** alpha)``, kept in linear
  space as a double times a power of two (exact rescaling, no ``exp`` per
  edge); the backward pass draws each piece from its exact conditional. When
  ``alpha`` spreads the piece weights beyond what a double can hold the
  log-domain algorithm of the spec is used instead.
* Nothing here touches Python objects inside the loops; the GIL is released.

Files
-----
One extension module, one include file per responsibility: ``_trie.pxi``
(building the trie), ``_lattice.pxi`` (one chunk, one text), ``_batch.pxi``
(native-thread batches, id lists), ``_text.pxi`` (packing, the NFC fast
path), ``_segmenter.pxi`` (the Python class, pickling). The structs and the
inline functions of the hot loops are in ``_rng.pxd``, ``_trie.pxd``,
``_lattice.pxd`` and ``_batch.pxd``; ``_core.pxd`` is the module's
interface. Why one module and not several: ``benchmarks/README.md`` ("The
compiled core in files").
"""
import gc
import os
import threading

import numpy as np

cimport cython
from cpython.list cimport PyList_AsTuple, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.math cimport INFINITY, NAN, exp, frexp, ldexp, log1p
from libc.stdint cimport INT64_MIN, int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memchr, memcpy, memset

cdef extern from *:
    """
    static inline long long bp_fetch_add(long long *p, long long v) {
        return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    }
    /* A block's flag is set after its ids are written (release) and read
       before they are (acquire), so a reader of a set flag sees the ids. */
    static inline void bp_store_release(unsigned char *p, unsigned char v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline unsigned char bp_load_acquire(const unsigned char *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    /* The count of packed blocks is published the same way: the texts and
       offsets of a block are written before the count that covers it. */
    static inline void bp_store_release_ll(long long *p, long long v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline long long bp_load_acquire_ll(const long long *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    /* Native helper threads: they run C only and never take the GIL, so
       starting and joining one costs no GIL hand-over (a Python thread's
       start and join cost ~0.3 and up to ~1 ms of it per batch). */
    typedef void (*bp_thread_fn)(void *);
    typedef struct { bp_thread_fn fn; void *arg; } bp_thread_start_arg;
    #if defined(_WIN32)
    #include <windows.h>
    static inline void bp_yield(void) { SwitchToThread(); }
    typedef HANDLE bp_thread;
    static DWORD WINAPI bp_thread_main(LPVOID p) {
        bp_thread_start_arg *a = (bp_thread_start_arg *) p;
        a->fn(a->arg);
        return 0;
    }
    static int bp_thread_start(bp_thread *t, bp_thread_start_arg *a) {
        *t = CreateThread(NULL, 0, bp_thread_main, a, 0, NULL);
        return *t ? 0 : -1;
    }
    static void bp_thread_join(bp_thread t) { WaitForSingleObject(t, INFINITE); CloseHandle(t); }
    #else
    #include <sched.h>
    #include <pthread.h>
    static inline void bp_yield(void) { sched_yield(); }
    typedef pthread_t bp_thread;
    static void *bp_thread_main(void *p) {
        bp_thread_start_arg *a = (bp_thread_start_arg *) p;
        a->fn(a->arg);
        return NULL;
    }
    static int bp_thread_start(bp_thread *t, bp_thread_start_arg *a) {
        return pthread_create(t, NULL, bp_thread_main, a) ? -1 : 0;
    }
    static void bp_thread_join(bp_thread t) { pthread_join(t, NULL); }
    #endif
    /* Keep the better of the candidate (cand, node, k) and the best so far;
       ties go to the candidate. Written as selects so that compilers emit
       maxsd and cmov: which edge wins is unpredictable, and a branch here
       costs a pipeline flush on about every other lattice edge. The max is
       spelled "best > cand ? best : cand", the one form GCC maps to a
       single maxsd without -ffast-math. */
    static inline void bp_keep_best(double cand, int32_t node, int64_t k, double *best,
                                    int32_t *best_node, int64_t *best_k) {
        int take = cand >= *best;
        *best = *best > cand ? *best : cand;
        *best_node = take ? node : *best_node;
        *best_k = take ? k : *best_k;
    }
    """
    void bp_keep_best(double cand, int32_t node, int64_t k, double *best, int32_t *best_node,
                      int64_t *best_k) noexcept nogil
    long long bp_fetch_add(long long *p, long long v) noexcept nogil
    void bp_store_release(unsigned char *p, unsigned char v) noexcept nogil
    unsigned char bp_load_acquire(const unsigned char *p) noexcept nogil
    void bp_store_release_ll(long long *p, long long v) noexcept nogil
    long long bp_load_acquire_ll(const long long *p) noexcept nogil
    void bp_yield() noexcept nogil
    ctypedef void (*bp_thread_fn)(void *) noexcept nogil
    ctypedef struct bp_thread_start_arg:
        bp_thread_fn fn
        void *arg
    ctypedef struct bp_thread:
        pass
    int bp_thread_start(bp_thread *t, bp_thread_start_arg *a) noexcept nogil
    void bp_thread_join(bp_thread t) noexcept nogil

cdef extern from "Python.h":
    void **PySequence_Fast_ITEMS(object o)
    void PyObject_GC_UnTrack(object o)
    void PyObject_GC_Track(object o)


# Sampling runs in linear space while every piece weight p ** alpha stays above
# 2**-600: alpha * -min_score <= LINEAR_RANGE (< 600 ln 2). Forward masses
# are kept within [2**-400, 2**400] times a power of two, so that a mass times
# a weight is never subnormal and a sum of terms never overflows.
cdef double LINEAR_RANGE = 415.0
# Beyond this alpha * -min_score, sampling is Viterbi (and alpha * score would
# overflow towards -inf).
cdef double POINT_MASS = 1e280
cdef double SCALE_HI = ldexp(1.0, 400)
cdef double SCALE_LO = ldexp(1.0, -400)
cdef unsigned char NEWLINE = 10

include "_trie.pxi"
include "_lattice.pxi"
include "_batch.pxi"
include "_text.pxi"
include "_segmenter.pxi"


def mix_seed(uint64_t seed, int64_t index):
    """Python view of the per-text seed derivation (for tests and docs)."""
    return text_seed(seed, index)

