# Double-array trie: building, freeing and checking (structs and trie_step in _trie.pxd).
# Included by _core.pyx: part of the one extension module bytepiece._core.

# ---------------------------------------------------------------------------
# Double-array trie
# ---------------------------------------------------------------------------

cdef struct BuildItem:
    int32_t node
    int32_t depth
    int64_t lo
    int64_t hi


# A unit keeps a node's base in its top 23 bits (see trie_units).
cdef int64_t TRIE_MAX_CELLS = 1 << 23


cdef int trie_reserve(Trie *trie, int64_t need) noexcept nogil:
    """Grow the cell arrays so that indexes below ``need`` exist: 0, -1 when
    out of memory, -2 past ``TRIE_MAX_CELLS``."""
    cdef int64_t size, i
    cdef DACell *cells
    cdef int32_t *value
    cdef double *node_score
    cdef unsigned char *taken
    if need <= trie.size:
        return 0
    if need > TRIE_MAX_CELLS:
        return -2
    size = trie.size * 2 if trie.size else 1024
    while size < need:
        size *= 2
    if size > TRIE_MAX_CELLS:
        size = TRIE_MAX_CELLS
    taken = <unsigned char *> realloc(trie.base_taken, size)
    if taken == NULL:
        return -1
    trie.base_taken = taken
    memset(taken + trie.size, 0, size - trie.size)
    taken = <unsigned char *> realloc(trie.cell_used, size)
    if taken == NULL:
        return -1
    trie.cell_used = taken
    memset(taken + trie.size, 0, size - trie.size)
    cells = <DACell *> realloc(trie.cells, size * sizeof(DACell))
    if cells == NULL:
        return -1
    trie.cells = cells
    value = <int32_t *> realloc(trie.value, size * sizeof(int32_t))
    if value == NULL:
        return -1
    trie.value = value
    node_score = <double *> realloc(trie.node_score, size * sizeof(double))
    if node_score == NULL:
        return -1
    trie.node_score = node_score
    for i in range(trie.size, size):
        cells[i].base = 0
        cells[i].check = -1
        value[i] = trie.none
        node_score[i] = -INFINITY
    trie.size = size
    return 0


cdef int trie_build(Trie *trie, const unsigned char *keys, const int64_t *offsets,
                    const int32_t *ids, int64_t n) noexcept nogil:
    """Build the trie from ``n`` distinct keys sorted bytewise.

    Key ``i`` is ``keys[offsets[i]:offsets[i+1]]`` and maps to ``ids[i]``.
    Returns 0, or -1 when memory runs out.
    """
    cdef BuildItem *stack = NULL
    cdef int64_t stack_len = 0, stack_cap = 1024
    cdef BuildItem item
    cdef int64_t i, j, lo, first_free = 1, b
    cdef unsigned char *hit
    cdef int64_t hint[256]
    cdef int32_t depth, node, nchild, c
    cdef int ok, rc
    cdef unsigned char child_byte[256]
    cdef int64_t child_lo[257]
    cdef BuildItem *grown

    trie.size = 0
    trie.max_depth = 0
    if trie_reserve(trie, 1024) < 0:
        return -1
    for i in range(256):
        hint[i] = 1
    trie.cells[0].check = -2    # the root cell is taken and is nobody's child
    trie.cell_used[0] = 1
    stack = <BuildItem *> malloc(stack_cap * sizeof(BuildItem))
    if stack == NULL:
        return -1
    stack[0].node = 0
    stack[0].depth = 0
    stack[0].lo = 0
    stack[0].hi = n
    stack_len = 1
    while stack_len > 0:
        stack_len -= 1
        item = stack[stack_len]
        node = item.node
        depth = item.depth
        lo = item.lo
        if depth > trie.max_depth:
            trie.max_depth = depth
        # Sorted order puts the key that ends here (if any) first.
        if lo < item.hi and offsets[lo + 1] - offsets[lo] == depth:
            trie.value[node] = ids[lo]
            lo += 1
        if lo >= item.hi:
            continue
        # Group the remaining keys by their byte at this depth.
        nchild = 0
        i = lo
        while i < item.hi:
            c = keys[offsets[i] + depth]
            child_byte[nchild] = <unsigned char> c
            child_lo[nchild] = i
            nchild += 1
            i += 1
            while i < item.hi and keys[offsets[i] + depth] == c:
                i += 1
        child_lo[nchild] = item.hi
        # Find a base nobody has (see trie_units) where every child cell is
        # free. The scan jumps with memchr over runs of used cells and taken
        # bases, and starts where the last search for the same first byte
        # ended (hint): rescanning the dense front for every node made
        # building quadratic in the number of nodes.
        b = max(hint[child_byte[0]], first_free - child_byte[0])
        while True:
            rc = trie_reserve(trie, b + 257)
            if rc < 0:
                free(stack)
                return rc
            hit = <unsigned char *> memchr(trie.cell_used + b + child_byte[0], 0,
                                           trie.size - b - child_byte[0])
            if hit == NULL:
                b = trie.size - child_byte[0]
                continue
            b = (hit - trie.cell_used) - child_byte[0]
            hit = <unsigned char *> memchr(trie.base_taken + b, 0, trie.size - b)
            if hit == NULL:
                b = trie.size
                continue
            if hit - trie.base_taken != b:
                b = hit - trie.base_taken
                continue
            rc = trie_reserve(trie, b + 257)
            if rc < 0:
                free(stack)
                return rc
            ok = 1
            for j in range(1, nchild):
                if trie.cell_used[b + child_byte[j]]:
                    ok = 0
                    break
            if ok:
                break
            b += 1
        trie.cells[node].base = <int32_t> b
        trie.base_taken[b] = 1
        hint[child_byte[0]] = b + 1
        for j in range(nchild):
            trie.cells[b + child_byte[j]].check = node
            trie.cell_used[b + child_byte[j]] = 1
        while trie.cell_used[first_free]:
            first_free += 1
        if stack_len + nchild > stack_cap:
            stack_cap = (stack_len + nchild) * 2
            grown = <BuildItem *> realloc(stack, stack_cap * sizeof(BuildItem))
            if grown == NULL:
                free(stack)
                return -1
            stack = grown
        for j in range(nchild):
            stack[stack_len].node = <int32_t> (b + child_byte[j])
            stack[stack_len].depth = depth + 1
            stack[stack_len].lo = child_lo[j]
            stack[stack_len].hi = child_lo[j + 1]
            stack_len += 1
    free(stack)
    free(trie.base_taken)
    free(trie.cell_used)
    trie.base_taken = NULL
    trie.cell_used = NULL
    return trie_units(trie)


cdef int trie_units(Trie *trie) noexcept nogil:
    """Pack each cell into the 4-byte unit the hot loops walk.

    A unit holds the node's base (where its children start) and, for a
    child cell, the byte that leads to it plus a "child" bit. Walking from
    ``node`` by byte ``c`` lands on ``cell = base(node) + c``; the step
    exists when that unit's low 9 bits are ``0x100 | c``. That identifies
    the parent because no two nodes share a base (``trie_build`` takes each
    base once, and leaves keep base 0, which no node has): a cell holding
    byte ``c`` is owned by the node whose base is ``cell - c``. Half the
    size of (base, check) pairs, so more of the trie stays in cache.
    """
    cdef int64_t c
    cdef int32_t parent
    cdef uint32_t u
    trie.unit = <uint32_t *> malloc(trie.size * sizeof(uint32_t))
    if trie.unit == NULL:
        return -1
    for c in range(trie.size):
        u = (<uint32_t> trie.cells[c].base) << 9
        parent = trie.cells[c].check
        if parent >= 0:
            u |= 0x100 | <uint32_t> (c - trie.cells[parent].base)
        trie.unit[c] = u
    free(trie.cells)        # only building needs the (base, check) pairs
    trie.cells = NULL
    return 0


cdef void trie_free(Trie *trie) noexcept nogil:
    free(trie.cells)
    free(trie.value)
    free(trie.node_score)
    free(trie.length)
    free(trie.unit)
    free(trie.base_taken)
    free(trie.cell_used)
    trie.unit = NULL
    trie.base_taken = NULL
    trie.cell_used = NULL
    trie.cells = NULL
    trie.value = NULL
    trie.node_score = NULL
    trie.length = NULL
    trie.size = 0


cdef int64_t trie_depth(const uint32_t *unit, int64_t size) noexcept nogil:
    """Depth of the deepest node a walk from the root can reach, or -1 when
    the units are not a trie (two nodes share a base), -2 out of memory.

    The hot walks stop only when the trie has no child (past the longest
    piece they do not check the start of the text), so a Segmenter made
    from foreign arrays must be shown to have no path longer than its
    ``max_depth``. A cell holding byte ``c`` is the child of the node whose
    base is ``cell - c``; following those parents from every cell gives
    its depth. Cells whose parents never reach the root (a loop, or no
    owner) are out of every walk's reach and do not count.
    """
    cdef int32_t *owner = <int32_t *> malloc(size * sizeof(int32_t))
    cdef int32_t *depth = <int32_t *> malloc(size * sizeof(int32_t))
    cdef int32_t *chain = <int32_t *> malloc(size * sizeof(int32_t))
    cdef int64_t c, b, p, length, deepest = 0, d
    cdef uint32_t u
    if owner == NULL or depth == NULL or chain == NULL:
        free(owner)
        free(depth)
        free(chain)
        return -2
    for c in range(size):
        owner[c] = -1
        depth[c] = -1          # not known yet
    for c in range(size):
        b = unit[c] >> 9
        u = unit[c]
        # Base 0 is every leaf's: a cell holding byte c at index c would be
        # a child of all of them. No trie has one.
        if (b != 0 and owner[b] != -1) or ((u & 0x100) and c == (u & 0xFF)):
            deepest = -1
            break
        if b != 0:
            owner[b] = <int32_t> c
    # Viterbi steps to root_base + byte without a check: all 256 must be the
    # root's children.
    b = unit[0] >> 9
    for c in range(256):
        if deepest < 0 or b + c >= size or (unit[b + c] & 0x1FF) != (0x100 | <uint32_t> c):
            deepest = -1
            break
    depth[0] = 0
    c = 0
    while deepest >= 0 and c < size:
        # Walk up from c until a cell of known depth (or none), then set
        # the depths on the way back down. -2 marks "unreachable", -3 "on
        # the chain being resolved" (meeting it again is a loop).
        length = 0
        p = c
        while depth[p] == -1:
            depth[p] = -3
            chain[length] = <int32_t> p
            length += 1
            u = unit[p]
            if not (u & 0x100) or p < (u & 0xFF) or owner[p - (u & 0xFF)] < 0:
                p = -1
                break
            p = owner[p - (u & 0xFF)]
        d = -2 if p < 0 or depth[p] < 0 else depth[p]
        while length > 0:
            length -= 1
            if d >= 0:
                d += 1
                if d > deepest:
                    deepest = d
            depth[chain[length]] = <int32_t> d
        c += 1
    free(owner)
    free(depth)
    free(chain)
    return deepest

