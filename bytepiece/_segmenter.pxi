# The Segmenter class: the compiled vocabulary and its pickling.
# Included by _core.pyx: part of the one extension module bytepiece._core.

cdef class Segmenter:
    """The compiled vocabulary: a reversed-piece trie plus float64 scores.

    ``Segmenter(pieces, scores)``: ``pieces[i]`` (non-empty bytes, all
    distinct, every single byte present) has id ``i + 3`` and log-probability
    ``scores[i]``. The object is immutable and safe to share between threads.
    """

    def __cinit__(self):
        self.score = NULL
        memset(&self.trie, 0, sizeof(Trie))

    def __init__(self, pieces, scores, bint check=True):
        cdef int64_t n, i, pos
        cdef int rc
        if self.score != NULL:
            raise TypeError("a Segmenter is immutable: it is already initialized")
        if not isinstance(pieces, (list, tuple)):
            raise TypeError(f"pieces must be a list of bytes, got {type(pieces).__name__}")
        n = len(pieces)
        if n == 0:
            raise ValueError("the vocabulary is empty")
        if n > 0x7FFFFF00 - 3:
            raise ValueError(f"too many pieces: {n}")
        scores_arr = np.ascontiguousarray(scores, dtype=np.float64)
        if scores_arr.ndim != 1 or scores_arr.shape[0] != n:
            raise ValueError(f"scores must be a 1-d array of {n} floats, got shape {scores_arr.shape}")
        if not np.all(np.isfinite(scores_arr)):
            raise ValueError("scores must be finite")
        if check and np.any(scores_arr > 0):
            # The sampler relies on p ** alpha <= 1 (no overflow in its sums).
            raise ValueError("scores must be log-probabilities (<= 0)")
        if check:
            # The trie builder relies on these; check=False is for callers that
            # validated already (Tokenizer via model_io), never for user input.
            seen = set()
            for i in range(n):
                p = pieces[i]
                if not isinstance(p, bytes):
                    raise TypeError(f"piece {i} must be bytes, got {type(p).__name__}")
                if not p:
                    raise ValueError(f"piece {i} (id {i + 3}) is empty")
                if p in seen:
                    raise ValueError(f"piece {p!r} appears twice")
                seen.add(p)
            missing = [b for b in range(256) if bytes([b]) not in seen]
            if missing:
                raise ValueError(f"single-byte pieces missing: {missing[:8]} (all 256 are required)")
        self.trie.none = <int32_t> n
        reversed_pieces = [p[::-1] for p in pieces]
        order = sorted(range(n), key=reversed_pieces.__getitem__)
        ordered = [reversed_pieces[i] for i in order]
        keys = b"".join(ordered)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, ordered), dtype=np.int64, count=n), out=offsets[1:])
        ids = np.asarray(order, dtype=np.int32)
        cdef const unsigned char[::1] keys_view = keys
        cdef const int64_t[::1] off_view = offsets
        cdef const int32_t[::1] id_view = ids
        with nogil:
            rc = trie_build(&self.trie, &keys_view[0], &off_view[0], &id_view[0], n)
        if rc < 0:
            trie_free(&self.trie)
            if rc == -2:
                raise ValueError(f"vocabulary too large: its trie needs more than {TRIE_MAX_CELLS} cells")
            raise MemoryError("out of memory while building the vocabulary trie")
        self.score = <double *> malloc((n + 1) * sizeof(double))
        self.trie.length = <int32_t *> malloc(n * sizeof(int32_t))
        if self.score == NULL or self.trie.length == NULL:
            raise MemoryError()
        for i in range(n):
            self.score[i] = scores_arr[i]
            self.trie.length[i] = <int32_t> len(pieces[i])
        self.score[n] = -INFINITY    # trie.none: the "no piece" index
        for i in range(self.trie.size):
            self.trie.node_score[i] = self.score[self.trie.value[i]]
        self.n_pieces = <int32_t> n
        self._pieces = list(pieces)
        self._scores = scores_arr
        self._weights_cache = {}
        self._weights_lock = threading.Lock()

    def __dealloc__(self):
        trie_free(&self.trie)
        free(self.score)

    def __reduce__(self):
        # The trie units travel as raw bytes: unpickling is a memcpy, no rebuild.
        units = (<char *> self.trie.unit)[:self.trie.size * sizeof(uint32_t)]
        values = (<char *> self.trie.value)[:self.trie.size * sizeof(int32_t)]
        return (_segmenter_from_state,
                (self._pieces, self._scores, units, values, self.trie.max_depth, TRIE_LAYOUT))

    @property
    def n_pieces(self):
        """Number of pieces (the vocabulary size without the 3 special ids)."""
        return self.n_pieces

    @property
    def max_piece_length(self):
        """Length in bytes of the longest piece."""
        return self.trie.max_depth

    @property
    def trie_cells(self):
        """Number of double-array cells (memory use is 16 bytes per cell:
        a 4-byte unit, a piece index and a score)."""
        return self.trie.size

    # -- sampling weights ---------------------------------------------------

    cdef object _node_weights(self, double alpha):
        """``p ** alpha`` of the piece ending at each trie node, 0 where none
        does: one load per lattice edge instead of node -> piece -> weight.
        The value for a piece is exactly ``exp(alpha * score)``."""
        cdef int64_t i, size = self.trie.size
        cdef const double *node_score = self.trie.node_score
        weights = np.zeros(size, dtype=np.float64)
        cdef double[::1] w = weights
        with nogil:
            for i in range(size):
                if node_score[i] != -INFINITY:
                    w[i] = exp(alpha * node_score[i])
        return weights

    cdef object _weights_for(self, double alpha):
        """(weights array, log_domain, address of the weights) for ``alpha``,
        cached for the few last alphas (the address is cached too: asking
        NumPy for it costs more than sampling a short line)."""
        if not (alpha >= 0.0) or alpha == INFINITY:
            raise ValueError(f"alpha must be a finite number >= 0 for sampling, got {alpha}")
        hit = self._weights_cache.get(alpha)   # a dict read is atomic; writes take the lock
        if hit is not None:
            return hit
        # Weights must be exactly p ** alpha: any per-piece rescaling would
        # favour segmentations with fewer or more pieces. Scores are <= 0, so
        # weights are <= 1; the linear path needs them >= 2**-600.
        spread = alpha * -float(self._scores.min())
        if spread > POINT_MASS:
            # Any two segmentations that differ at all differ by > 1e270 nats:
            # the distribution is the Viterbi path (exact ties aside).
            log_domain = 2
        else:
            log_domain = int(spread > LINEAR_RANGE)
        weights = None if log_domain else self._node_weights(alpha)
        hit = (weights, log_domain, 0 if weights is None else weights.ctypes.data)
        with self._weights_lock:
            if len(self._weights_cache) >= 4:
                self._weights_cache.pop(next(iter(self._weights_cache)))
            self._weights_cache[alpha] = hit
        return hit

    # -- encoding -------------------------------------------------------------

    def encode_bytes(self, data, double alpha=-1.0, uint64_t seed=0, bint add_bos=False,
                     bint add_eos=False, int out_type=0, table=None):
        """Segment one byte string (chunked at newline runs).

        ``out_type``: 0 ids as a list of ints (taken from ``table``, a tuple
        or list indexed by id), 1 pieces as a list of bytes (``table`` indexed by id),
        2 a NumPy int32 array of ids. ``alpha < 0`` is deterministic; with
        ``alpha >= 0`` the segmentation is sampled with the stream ``seed``.
        """
        if data is None:
            raise TypeError("data must be a bytes-like object, not None")
        if out_type != 2:
            check_table(table, self.n_pieces + 3)
        cdef const unsigned char[::1] view = data
        cdef int64_t n = view.shape[0], k, w = 0
        cdef EncodeTask task
        cdef Weights weights
        cdef int32_t *ids
        cdef int32_t[::1] arr_view
        memset(&task, 0, sizeof(EncodeTask))
        task.trie = &self.trie
        task.score = self.score
        task.weights = NULL
        keep = None
        if alpha >= 0.0:
            keep, log_domain, address = self._weights_for(alpha)
            weights.alpha = alpha
            weights.log_domain = log_domain
            weights.node_weight = NULL if log_domain else <double *> (<size_t> address)
            task.weights = &weights
            rng_seed(&task.rng, text_seed(seed, 0))
        ids = <int32_t *> malloc((n + 2) * sizeof(int32_t))
        if ids == NULL:
            raise MemoryError()
        try:
            if add_bos:
                ids[0] = 1
                w = 1
            with nogil:
                k = encode_text(&task, &view[0] if n else NULL, n, True, ids + w)
                scratch_free(&task.scratch)
            if k < 0:
                raise MemoryError("out of memory while segmenting")
            w += k
            if add_eos:
                ids[w] = 2
                w += 1
            if out_type == 2:
                arr = np.empty(w, dtype=np.int32)
                if w:
                    arr_view = arr
                    memcpy(&arr_view[0], ids, w * sizeof(int32_t))
                return arr
            return ids_to_list(ids, w, table)
        finally:
            free(ids)

    def encode_concat(self, data, offsets, double alpha=-1.0, uint64_t seed=0,
                      int num_threads=1, bint chunked=True, bint add_bos=False,
                      bint add_eos=False, int64_t first_index=0):
        """Segment many texts given as one buffer and ``n + 1`` offsets.

        Returns ``(ids, bounds)``: the ids of text ``i`` are
        ``ids[bounds[i]:bounds[i+1]]`` (int32, int64). Texts are spread over
        ``num_threads`` native threads (0: all cores); with sampling, text ``i``
        uses a random stream that depends only on ``(seed, first_index + i)``,
        so the result does not depend on the number of threads or on how a
        stream of texts is cut into batches.
        """
        cdef _BatchRunner runner = _batch_job(self, data, offsets, alpha, seed, chunked, add_bos,
                                              add_eos, first_index, "encode_concat")
        cdef int64_t n = runner.job.n_texts
        cdef const int64_t *off = runner.job.offsets
        if n:
            _run_threads(runner, num_threads, off[n] - off[0])
        return _flat_result(runner)

    def encode_lists(self, data, offsets, table, double alpha=-1.0, uint64_t seed=0,
                     int num_threads=1, bint add_bos=False, bint add_eos=False,
                     int64_t first_index=0):
        """Like :meth:`encode_concat`, but returns one list of ints (taken from
        ``table``) per text, built straight from the workers' output (no flat
        copy in between)."""
        check_table(table, self.n_pieces + 3)
        cdef _BatchRunner runner = _batch_job(self, data, offsets, alpha, seed, True, add_bos,
                                              add_eos, first_index, "encode_lists")
        cdef int64_t n = runner.job.n_texts
        cdef const int64_t *off = runner.job.offsets
        if not n:
            return []
        return runner.lists(_plan_threads(runner, num_threads, off[n] - off[0], 65536),
                            table if type(table) is tuple else tuple(table))

    def batch_concat(self, texts, nfc_utf8, double alpha=-1.0, uint64_t seed=0,
                     int num_threads=1, bint add_bos=False, bint add_eos=False,
                     int64_t first_index=0):
        """:func:`pack_texts` and :meth:`encode_concat` in one: ``(ids, bounds)``
        of Python texts. On several threads the calling thread packs while
        the helpers already segment the texts packed so far."""
        cdef _BatchRunner runner = _text_job(self, texts, nfc_utf8, alpha, seed, add_bos, add_eos,
                                             first_index)
        if runner.job.n_texts:
            _run_threads(runner, num_threads, runner.packer.room)
        return _flat_result(runner)

    def batch_lists(self, texts, nfc_utf8, table, double alpha=-1.0, uint64_t seed=0,
                    int num_threads=1, bint add_bos=False, bint add_eos=False,
                    int64_t first_index=0):
        """:func:`pack_texts` and :meth:`encode_lists` in one: one list of ints
        (from ``table``) per Python text, packed while the helpers segment."""
        check_table(table, self.n_pieces + 3)
        cdef _BatchRunner runner = _text_job(self, texts, nfc_utf8, alpha, seed, add_bos, add_eos,
                                             first_index)
        if not runner.job.n_texts:
            return []
        return runner.lists(_plan_threads(runner, num_threads, runner.packer.room, 65536),
                            table if type(table) is tuple else tuple(table))

    def split_counts(self, data, offsets, weights, int num_threads=1):
        """Trainer helper (§6.4 ``split``): segment each item whole, weight its pieces.

        Item ``i`` is ``data[offsets[i]:offsets[i+1]]`` segmented as one chunk
        (deterministic Viterbi); ``weights[i]`` is added to the count of every
        piece its segmentation uses. Returns int64 counts indexed by piece.
        """
        cdef const int64_t[::1] off = _packed_offsets(data, offsets, "split_counts")
        cdef const unsigned char[::1] view = data
        cdef const int64_t[::1] wts = np.ascontiguousarray(weights, dtype=np.int64)
        cdef int64_t n = off.shape[0] - 1
        if n < 0 or wts.shape[0] != n:
            raise ValueError(f"need len(offsets) == len(weights) + 1, got {off.shape[0]} and {wts.shape[0]}")
        check_offsets(off, view.shape[0])
        if num_threads <= 0:
            num_threads = _cpu_count()
        rows = np.zeros((max(1, num_threads), self.n_pieces), dtype=np.int64)
        cdef int64_t[:, ::1] row_view = rows
        cdef _BatchRunner runner = _BatchRunner()
        runner.keep = [data, off, wts, rows]
        memset(&runner.job, 0, sizeof(BatchJob))
        runner.job.data = &view[0] if view.shape[0] else <const unsigned char *> ""
        runner.job.offsets = &off[0]
        runner.job.n_texts = n
        runner.job.weights = &wts[0] if n else NULL
        runner.job.piece_counts = &row_view[0, 0]
        runner.job.n_pieces = self.n_pieces
        runner.job.next_worker = 0
        runner.use_weights(self, -1.0)
        if n:
            _run_threads(runner, rows.shape[0], off[n] - off[0], 16384)
        return rows.sum(axis=0)

    # -- analysis -------------------------------------------------------------

    def entropy(self, data, double alpha=1.0):
        """Shannon entropy (nats) of the segmentation distribution of ``data``
        used by sampling: P(seg) = prod(p ** alpha) / Z, chunk by chunk (chunks
        are independent, so their entropies add). Exact, log domain."""
        cdef const unsigned char[::1] view = data
        cdef int64_t n = view.shape[0], start = 0, end
        cdef double total = 0.0, h
        cdef Scratch scratch
        if not (alpha >= 0.0) or alpha == INFINITY:
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
        if alpha * -float(self._scores.min()) > POINT_MASS:
            return 0.0   # the distribution is the Viterbi path: no uncertainty
        memset(&scratch, 0, sizeof(Scratch))
        try:
            with nogil:
                while start < n:
                    end = chunk_end(&view[0], start, n)
                    h = chunk_entropy(&self.trie, self.score, alpha, &view[start], end - start, &scratch)
                    if h != h:
                        break
                    total += h
                    start = end
            if start < n:
                raise MemoryError("out of memory while computing the entropy")
            return total
        finally:
            scratch_free(&scratch)

    def edges(self, data):
        """The lattice of ``data`` as arrays: every vocabulary occurrence that
        lies inside one chunk, as ``(starts, ends, ids)`` (int64, int64, int32),
        ordered by end, then start ascending (the visiting order of §4)."""
        cdef const unsigned char[::1] view = data
        cdef int64_t n = view.shape[0], start, end, e, count = 0
        # Two passes over the text: count, then fill.
        start = 0
        while start < n:
            end = chunk_end(&view[0], start, n)
            for e in range(start + 1, end + 1):
                count += edges_ending_at(&self.trie, &view[0], start, e, NULL, NULL, NULL)
            start = end
        starts = np.empty(count, dtype=np.int64)
        ends = np.empty(count, dtype=np.int64)
        ids = np.empty(count, dtype=np.int32)
        cdef int64_t[::1] s_view = starts
        cdef int64_t[::1] e_view = ends
        cdef int32_t[::1] i_view = ids
        count = 0
        start = 0
        with nogil:
            while start < n:
                end = chunk_end(&view[0], start, n)
                for e in range(start + 1, end + 1):
                    count += edges_ending_at(&self.trie, &view[0], start, e, &s_view[count] if count < s_view.shape[0] else NULL,
                                             &e_view[count] if count < e_view.shape[0] else NULL,
                                             &i_view[count] if count < i_view.shape[0] else NULL)
                start = end
        return starts, ends, ids

    # -- introspection (tests, the readable twin) -----------------------------

    def matches(self, data):
        """Every vocabulary occurrence ``(start, end, id)`` in ``data`` (one chunk),
        ordered by end, then start ascending: the visiting order of §4."""
        cdef const unsigned char[::1] view = data
        cdef int64_t n = view.shape[0], e, k
        cdef int32_t node, nxt, v
        result = []
        for e in range(1, n + 1):
            found = []
            node = 0
            k = e - 1
            while k >= 0:
                nxt = trie_step(self.trie.unit, node, view[k])
                if nxt < 0:
                    break
                node = nxt
                v = self.trie.value[node]
                if v != self.trie.none:
                    found.append((k, e, v + 3))
                k -= 1
            result.extend(reversed(found))
        return result


# Bumped whenever the pickled trie arrays change (3: 4-byte units), so that
# a pickle from another layout is rebuilt instead of misread.
TRIE_LAYOUT = 3


def _segmenter_from_state(pieces, scores, bytes units, bytes values, int32_t max_depth, int layout):
    """Unpickle a Segmenter: copy the trie arrays instead of rebuilding them."""
    cdef Segmenter seg
    cdef int64_t n = len(pieces), i, size
    if (layout != TRIE_LAYOUT or len(units) % sizeof(uint32_t) != 0
            or len(values) != len(units) or len(units) < 257 * sizeof(uint32_t)):
        return Segmenter(pieces, scores)
    size = len(units) // sizeof(uint32_t)
    scores_arr = np.ascontiguousarray(scores, dtype=np.float64)
    if scores_arr.shape[0] != n:
        raise ValueError("corrupt Segmenter pickle: pieces and scores differ in length")
    seg = Segmenter.__new__(Segmenter)
    seg.trie.none = <int32_t> n
    seg.trie.max_depth = max_depth
    seg.trie.unit = <uint32_t *> malloc(len(units))
    seg.trie.value = <int32_t *> malloc(len(values))
    seg.trie.node_score = <double *> malloc(size * sizeof(double))
    seg.trie.length = <int32_t *> malloc(n * sizeof(int32_t))
    seg.score = <double *> malloc((n + 1) * sizeof(double))
    seg.trie.size = size
    if (seg.trie.unit == NULL or seg.trie.value == NULL or seg.trie.node_score == NULL
            or seg.trie.length == NULL or seg.score == NULL):
        raise MemoryError()
    memcpy(seg.trie.unit, <const char *> units, len(units))
    memcpy(seg.trie.value, <const char *> values, len(values))
    for i in range(n):
        seg.trie.length[i] = <int32_t> len(pieces[i])
        seg.score[i] = scores_arr[i]
    seg.score[n] = -INFINITY
    for i in range(size):
        if seg.trie.value[i] < 0 or seg.trie.value[i] > n:
            raise ValueError("corrupt Segmenter pickle: piece index out of range")
        if (seg.trie.unit[i] >> 9) + 256 > size:
            raise ValueError("corrupt Segmenter pickle: trie base out of range")
        seg.trie.node_score[i] = seg.score[seg.trie.value[i]]
    depth = trie_depth(seg.trie.unit, size)
    if depth == -2:
        raise MemoryError()
    if depth != max_depth:
        raise ValueError("corrupt Segmenter pickle: the trie arrays do not form the trie of its pieces")
    seg.n_pieces = <int32_t> n
    seg._pieces = list(pieces)
    seg._scores = scores_arr
    seg._weights_cache = {}
    seg._weights_lock = threading.Lock()
    return seg

