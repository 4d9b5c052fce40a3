# Segmentation of one chunk and one text: Viterbi, exact sampling, entropy, edges.
# Included by _core.pyx: part of the one extension module bytepiece._core.

# ---------------------------------------------------------------------------
# Per-thread scratch space
# ---------------------------------------------------------------------------

cdef int scratch_reserve(Scratch *scratch, int64_t n) noexcept nogil:
    """Make room for a chunk of ``n`` bytes (positions 0..n). 0, or -1 on OOM."""
    cdef int64_t cap
    if n + 1 <= scratch.capacity:
        return 0
    cap = scratch.capacity * 2 if scratch.capacity else 256
    while cap < n + 1:
        cap *= 2
    scratch_free(scratch)
    scratch.best = <double *> malloc(cap * sizeof(double))
    scratch.scale = <int64_t *> malloc(cap * sizeof(int64_t))
    scratch.piece = <int32_t *> malloc(cap * sizeof(int32_t))
    scratch.path = <int32_t *> malloc(cap * sizeof(int32_t))
    if (scratch.best == NULL or scratch.scale == NULL
            or scratch.piece == NULL or scratch.path == NULL):
        scratch_free(scratch)
        return -1
    scratch.capacity = cap
    return 0


cdef void scratch_free(Scratch *scratch) noexcept nogil:
    free(scratch.best)
    free(scratch.scale)
    free(scratch.piece)
    free(scratch.path)
    scratch.best = NULL
    scratch.scale = NULL
    scratch.piece = NULL
    scratch.path = NULL
    scratch.capacity = 0


# ---------------------------------------------------------------------------
# Segmentation of one chunk. Each returns the number of pieces k and leaves
# their indexes in scratch.path[0:k] in *reverse* order; -1 on OOM.
# ---------------------------------------------------------------------------

cdef inline int64_t backtrack(const Trie *trie, Scratch *scratch, int64_t n) noexcept nogil:
    """Follow the last piece of each prefix back from ``n``.

    ``scratch.piece[e]`` holds the trie *node* of that piece: mapping nodes to
    pieces only along the chosen path saves a random load per position.
    """
    cdef int64_t k = 0, e = n
    cdef int32_t v
    while e > 0:
        v = trie.value[scratch.piece[e]]
        scratch.path[k] = v
        e -= trie.length[v]
        k += 1
    return k


cdef inline int64_t backtrack_packed(const Trie *trie, Scratch *scratch, int64_t n) noexcept nogil:
    """Viterbi's backtrack: ``scratch.scale[e]`` packs (node << 32) | start of
    the last piece of the best prefix ending at ``e``. Following the starts is
    a chain through one small array; nodes become pieces off that chain."""
    cdef int64_t k = 0, e = n, packed
    while e > 0:
        packed = scratch.scale[e]
        scratch.path[k] = trie.value[<int32_t> (packed >> 32)]
        e = packed & <int64_t> 0xFFFFFFFF
        k += 1
    return k


cdef inline void viterbi_ends(const Trie *trie, const unsigned char *text, int64_t e_lo,
                              int64_t e_hi, double *best, int64_t *back, bint bounded) noexcept nogil:
    """Viterbi's forward pass over the ends ``e_lo <= e < e_hi``.

    ``best[e]`` gets the score of the best segmentation of ``text[:e]``;
    ``back[e]`` packs (node << 32) | start of its last piece. ``bounded``
    stops the walk at the start of the text; without it the caller
    guarantees ``e > trie.max_depth``, so the walk ends in the trie first.
    Inlined with a constant ``bounded``, each loop compiles to its own copy.
    """
    cdef const double *node_score = trie.node_score
    cdef const uint32_t *unit = trie.unit
    cdef int32_t root_base = unit[0] >> 9
    cdef int64_t e, k, best_k
    cdef int32_t node, nxt, best_node
    cdef double best_value
    cdef uint32_t u, c
    for e in range(e_lo, e_hi):
        # Every single byte is a piece: the first step needs no check.
        node = root_base + text[e - 1]
        best_value = best[e - 1] + node_score[node]
        best_node = node
        best_k = e - 1
        u = unit[node]
        k = e - 2
        while not bounded or k >= 0:
            # trie_step, written out so that the unit loaded for the check is
            # kept in u and serves as the base of the next step.
            c = text[k]
            nxt = (u >> 9) + c
            u = unit[nxt]
            if (u & 0x1FF) != (0x100 | c):
                break
            # Each node carries the score of the piece ending there, -inf when
            # none does: no branch and no piece lookup in this hot loop.
            bp_keep_best(best[k] + node_score[nxt], nxt, k, &best_value, &best_node, &best_k)
            k -= 1
        best[e] = best_value
        back[e] = ((<int64_t> best_node) << 32) | best_k


cdef inline int64_t first_unchecked_end(const Trie *trie, int64_t n) noexcept nogil:
    """The first end whose walk needs no check against the start of the text:
    no walk is longer than the longest piece (n + 1 when none is that far)."""
    return min(n + 1, <int64_t> trie.max_depth + 1)


cdef int64_t viterbi(const Trie *trie, const unsigned char *text, int64_t n,
                     Scratch *scratch) noexcept nogil:
    """Deterministic segmentation (§4): the most probable one, ties to the
    longest last piece. The scores are the trie's (``node_score``)."""
    cdef int64_t split
    if scratch_reserve(scratch, n) < 0:
        return -1
    scratch.best[0] = 0.0
    split = first_unchecked_end(trie, n)
    viterbi_ends(trie, text, 1, split, scratch.best, scratch.scale, True)
    viterbi_ends(trie, text, split, n + 1, scratch.best, scratch.scale, False)
    return backtrack_packed(trie, scratch, n)


cdef inline double mass_into(const Trie *trie, const double *node_weight,
                             const unsigned char *text, int64_t e, const double *mass,
                             const int64_t *scale, int64_t *ref_out, bint bounded) noexcept nogil:
    """Sum of ``mass[k] * weight(text[k:e])`` over the pieces ending at ``e``.

    ``node_weight`` holds ``p ** alpha`` of the piece ending at each trie
    node and 0 where none does (a real piece's weight is never 0 on the
    linear path). Terms carry power-of-two scales; the sum is expressed at
    the largest scale among them, returned through ``ref_out``. ``bounded``
    as in ``viterbi_ends``.
    """
    cdef const uint32_t *unit = trie.unit
    cdef int64_t k = e - 2
    cdef int32_t node, nxt
    cdef int64_t s, ref
    cdef double acc, term, w
    cdef uint32_t u, c
    # The single byte text[e-1] is a piece, with a nonzero weight: its term
    # starts the sum and sets the scale.
    node = (unit[0] >> 9) + text[e - 1]
    acc = mass[e - 1] * node_weight[node]
    ref = scale[e - 1]
    u = unit[node]
    while not bounded or k >= 0:
        c = text[k]
        nxt = (u >> 9) + c
        u = unit[nxt]
        if (u & 0x1FF) != (0x100 | c):
            break
        w = node_weight[nxt]
        s = scale[k]
        if s == ref:
            # The common case, and no branch on whether a piece ends here:
            # where none does, w is 0 and the sum gains +0.0, which leaves it
            # exactly as it was.
            acc += mass[k] * w
        elif w != 0.0:
            term = mass[k] * w
            if s > ref:
                if acc != 0.0:
                    acc = ldexp(acc, ref - s)
                acc += term
                ref = s
            else:
                acc += ldexp(term, s - ref)
        k -= 1
    ref_out[0] = ref
    return acc


cdef inline void sample_forward(const Trie *trie, const double *node_weight,
                                const unsigned char *text, int64_t e_lo, int64_t e_hi,
                                double *mass, int64_t *scale, bint bounded) noexcept nogil:
    """Forward filtering over the ends ``e_lo <= e < e_hi``: mass[e] * 2**scale[e]
    = sum over segmentations of text[:e]."""
    cdef int64_t e, ref
    cdef double acc
    cdef int x
    for e in range(e_lo, e_hi):
        acc = mass_into(trie, node_weight, text, e, mass, scale, &ref, bounded)
        if acc > SCALE_HI or acc < SCALE_LO:
            acc = frexp(acc, &x)
            ref += x
        mass[e] = acc
        scale[e] = ref


cdef int64_t sample_linear(const Trie *trie, const double *node_weight, const unsigned char *text,
                           int64_t n, Scratch *scratch, Rng *rng) noexcept nogil:
    cdef const uint32_t *unit = trie.unit
    cdef double *mass = scratch.best
    cdef int64_t *scale = scratch.scale
    cdef int64_t e, k, count = 0, chosen_k, last_k, ref, split
    cdef int32_t nxt, chosen_node, last_node
    cdef double target, cum, term
    cdef uint32_t u, c
    mass[0] = 1.0
    scale[0] = 0
    split = first_unchecked_end(trie, n)
    sample_forward(trie, node_weight, text, 1, split, mass, scale, True)
    sample_forward(trie, node_weight, text, split, n + 1, mass, scale, False)
    # Backward sampling: draw the last piece of text[:e] from its exact conditional.
    # The forward pass left the total mass of text[:e] in mass[e] * 2**scale[e]
    # (frexp rescales exactly), so the terms are put on that scale instead of
    # being summed again: the same draw, one walk fewer per piece.
    e = n
    while e > 0:
        ref = scale[e]
        target = rng_uniform(rng) * mass[e]
        cum = 0.0
        chosen_k = -1
        chosen_node = -1
        last_k = e - 1
        last_node = (unit[0] >> 9) + text[e - 1]
        u = unit[0]
        k = e - 1
        while k >= 0:
            c = text[k]
            nxt = (u >> 9) + c
            u = unit[nxt]
            if (u & 0x1FF) != (0x100 | c):
                break
            # Where no piece ends, w is 0: the term is +0.0, which moves
            # neither the sum nor the last-positive choice (no branch on it).
            term = mass[k] * node_weight[nxt]
            if scale[k] != ref:
                term = ldexp(term, scale[k] - ref)
            if term > 0.0:
                last_k = k
                last_node = nxt
            cum += term
            if cum > target:
                chosen_k = k
                chosen_node = nxt
                break
            k -= 1
        if chosen_node < 0:        # rounding left the target just past the end
            chosen_k = last_k
            chosen_node = last_node
        scratch.path[count] = trie.value[chosen_node]
        count += 1
        e = chosen_k
    return count


cdef int64_t sample_log(const Trie *trie, const double *score, double alpha,
                        const unsigned char *text, int64_t n, Scratch *scratch,
                        Rng *rng) noexcept nogil:
    """§5 exactly as the spec writes it (log domain, one draw per edge)."""
    cdef const uint32_t *unit = trie.unit
    cdef double *best = scratch.best
    cdef int64_t e, k
    cdef int32_t node, nxt, v
    cdef double total, w
    best[0] = 0.0
    for e in range(1, n + 1):
        total = -INFINITY
        # The single byte text[e-1] is always a piece: a valid default even if
        # every weight underflows.
        scratch.piece[e] = (unit[0] >> 9) + text[e - 1]
        node = 0
        k = e - 1
        while k >= 0:
            nxt = trie_step(unit, node, text[k])
            if nxt < 0:
                break
            node = nxt
            v = trie.value[node]
            if v != trie.none:
                w = best[k] + alpha * score[v]
                total = logaddexp(total, w)
                if rng_uniform(rng) < exp(w - total):
                    scratch.piece[e] = node
            k -= 1
        best[e] = total
    return backtrack(trie, scratch, n)


cdef int64_t sample(const Trie *trie, const double *score, const Weights *weights,
                    const unsigned char *text, int64_t n, Scratch *scratch,
                    Rng *rng) noexcept nogil:
    """Draw a segmentation with probability proportional to prod(p ** alpha) (§5)."""
    if weights.log_domain == 2:
        return viterbi(trie, text, n, scratch)
    if scratch_reserve(scratch, n) < 0:
        return -1
    if weights.log_domain:
        return sample_log(trie, score, weights.alpha, text, n, scratch, rng)
    return sample_linear(trie, weights.node_weight, text, n, scratch, rng)


cdef int64_t edges_ending_at(const Trie *trie, const unsigned char *text, int64_t lo, int64_t e,
                             int64_t *starts, int64_t *ends, int32_t *ids) noexcept nogil:
    """Number of pieces text[k:e] with k >= lo; when ``starts`` is given, also
    write them (start ascending) with their ends and ids (index + 3)."""
    cdef const uint32_t *unit = trie.unit
    cdef int64_t k = e - 1, m = 0, j
    cdef int32_t node = 0, nxt, v
    while k >= lo:
        nxt = trie_step(unit, node, text[k])
        if nxt < 0:
            break
        node = nxt
        if trie.value[node] != trie.none:
            m += 1
        k -= 1
    if starts == NULL:
        return m
    j = m
    node = 0
    k = e - 1
    while j > 0:
        node = (unit[node] >> 9) + text[k]
        v = trie.value[node]
        if v != trie.none:
            j -= 1
            starts[j] = k
            ends[j] = e
            ids[j] = v + 3
        k -= 1
    return m


cdef double chunk_entropy(const Trie *trie, const double *score, double alpha,
                          const unsigned char *text, int64_t n, Scratch *scratch) noexcept nogil:
    """Entropy of P(seg) = prod(p ** alpha) / Z over the segmentations of one chunk.

    logz[e] = log sum over segmentations of text[:e] of prod(p ** alpha), and
    avg[e] = the expected sum of scores under that prefix distribution;
    H = log Z - alpha * E[sum of scores]. NaN when memory runs out.
    """
    cdef const uint32_t *unit = trie.unit
    cdef double *logz
    cdef double *avg
    cdef double total, w, acc
    cdef int64_t e, k
    cdef int32_t node, nxt, v
    if scratch_reserve(scratch, n) < 0:
        return NAN
    logz = scratch.best
    avg = <double *> scratch.scale     # int64 slots reused as doubles (same size)
    logz[0] = 0.0
    avg[0] = 0.0
    for e in range(1, n + 1):
        # pass 1: the normalizer
        total = -INFINITY
        node = 0
        k = e - 1
        while k >= 0:
            nxt = trie_step(unit, node, text[k])
            if nxt < 0:
                break
            node = nxt
            v = trie.value[node]
            if v != trie.none:
                total = logaddexp(total, logz[k] + alpha * score[v])
            k -= 1
        # pass 2: the expectation under the normalized edge weights
        acc = 0.0
        node = 0
        k = e - 1
        while k >= 0:
            nxt = trie_step(unit, node, text[k])
            if nxt < 0:
                break
            node = nxt
            v = trie.value[node]
            if v != trie.none:
                w = exp(logz[k] + alpha * score[v] - total)
                acc += w * (avg[k] + score[v])
            k -= 1
        logz[e] = total
        avg[e] = acc
    return logz[n] - alpha * avg[n]


# ---------------------------------------------------------------------------
# Whole texts: cut into chunks at newline runs, segment each chunk.
# ---------------------------------------------------------------------------

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


cdef int64_t encode_text(EncodeTask *task, const unsigned char *text, int64_t n, bint chunked,
                         int32_t *out) noexcept nogil:
    """Write the ids (index + 3) of ``text`` to ``out``; returns their number or -1."""
    cdef int64_t start = 0, end, k, q, written = 0
    cdef int32_t *path
    while start < n:
        end = chunk_end(text, start, n) if chunked else n
        if task.weights == NULL:
            k = viterbi(task.trie, text + start, end - start, &task.scratch)
        else:
            k = sample(task.trie, task.score, task.weights, text + start, end - start,
                       &task.scratch, &task.rng)
        if k < 0:
            return -1
        path = task.scratch.path
        for q in range(k):
            out[written + q] = path[k - 1 - q] + 3
        written += k
        start = end
    return written

