# cython: language_level=3
"""The double-array trie over *reversed* pieces (built in ``_trie.pxi``).

Walking it backwards from an end position ``e`` visits every piece that ends
at ``e``, shortest first. That one walk serves Viterbi (ALGORITHM.md §4), the
forward pass of sampling (§5) and the backward draw of sampling. The step is
inline here: it runs once per lattice edge.
"""
from libc.stdint cimport int32_t, int64_t, uint32_t


cdef struct DACell:
    # Used while building only; the walks use the 4-byte ``Trie.unit`` array.
    int32_t base    # children of this node live at base + byte
    int32_t check   # parent node of this cell, -1 when the cell is free


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


cdef inline int32_t trie_step(const uint32_t *unit, int32_t node, unsigned char c) noexcept nogil:
    """The child of ``node`` by byte ``c``, or -1 when there is none."""
    cdef int32_t nxt = (unit[node] >> 9) + c
    return nxt if (unit[nxt] & 0x1FF) == (0x100 | <uint32_t> c) else -1

