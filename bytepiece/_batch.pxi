# Batch jobs: texts spread over native threads, and the id lists they return.
# Included by _core.pyx: part of the one extension module bytepiece._core.

cdef void task_init(EncodeTask *task, const Trie *trie, const double *score,
                    const Weights *weights) noexcept nogil:
    memset(&task.scratch, 0, sizeof(Scratch))
    task.trie = trie
    task.score = score
    task.weights = weights


cdef int run_block(BatchJob *job, EncodeTask *task, int64_t *row, int64_t b) noexcept nogil:
    """Segment the texts of block ``b``: 0, or -1 (and ``job.failed``) when
    out of memory. Its ``done`` flag is set either way, so no reader waits
    forever."""
    cdef int64_t i, n, w, k, q, extra = job.add_bos + job.add_eos
    cdef int64_t hi = min(job.n_texts, (b + 1) * job.block)
    cdef int32_t *out
    cdef int rc = 0
    for i in range(b * job.block, hi):
        n = job.offsets[i + 1] - job.offsets[i]
        if row != NULL:
            # Split mode (trainer): segment each item whole, count its pieces.
            k = viterbi(task.trie, job.data + job.offsets[i], n, &task.scratch)
            if k < 0:
                rc = -1
                break
            for q in range(k):
                row[task.scratch.path[q]] += job.weights[i]
            continue
        if task.weights != NULL:
            rng_seed(&task.rng, text_seed(job.seed, job.first_index + i))
        out = job.out + job.offsets[i] + i * extra
        w = 0
        if job.add_bos:
            out[0] = 1
            w = 1
        k = encode_text(task, job.data + job.offsets[i], n, job.chunked, out + w)
        if k < 0:
            rc = -1
            break
        w += k
        if job.add_eos:
            out[w] = 2
            w += 1
        job.counts[i] = w
    if rc < 0:
        job.failed = 1
    if job.done != NULL:
        bp_store_release(&job.done[b], 1)
    return rc


cdef extern from *:
    """
    /* Point the items of the fresh list lst at table[ids[j]] and count each
       id in refs. No reference count is touched: the lists are untracked
       and known to no one else yet, and the caller adds the counted
       references under the GIL before anyone can see them. */
    static inline void bp_point_items(void *lst, const int32_t *ids, Py_ssize_t n,
                                      void *const *table, int64_t *refs) {
        PyObject **dst = ((PyListObject *) lst)->ob_item;
        Py_ssize_t j;
        for (j = 0; j < n; j++) {
            int32_t id = ids[j];
            dst[j] = (PyObject *) table[id];
            refs[id]++;
        }
    }
    /* Take refs[id] more references to each table[id] (under the GIL). */
    static void bp_add_refs(void *const *table, const int64_t *refs, Py_ssize_t n_ids, int rows) {
        Py_ssize_t i, k;
        int r;
        for (i = 0; i < n_ids; i++) {
            int64_t c = 0;
            for (r = 0; r < rows; r++) c += refs[(Py_ssize_t) r * n_ids + i];
            for (k = 0; k < c; k++) Py_INCREF((PyObject *) table[i]);
        }
    }
    """
    void bp_point_items(void *lst, const int32_t *ids, Py_ssize_t n, void **table,
                        int64_t *refs) noexcept nogil
    void bp_add_refs(void **table, const int64_t *refs, Py_ssize_t n_ids, int rows) noexcept


cdef inline bint wait_packed(BatchJob *job, int64_t b) noexcept nogil:
    """Wait until block ``b`` is packed; False when the job was aborted."""
    while bp_load_acquire_ll(&job.packed_blocks) <= b:
        if bp_load_acquire(&job.aborted):
            return False
        bp_yield()
    return True


cdef int drain_published(BatchJob *job) noexcept nogil:
    """Wait until every published block is segmented: 0, or -1 as soon as a
    worker has failed (the blocks it left may never be claimed). Afterwards
    no worker reads the texts or writes ids until more blocks are published."""
    cdef int64_t b
    for b in range(job.packed_blocks):
        while not bp_load_acquire(&job.done[b]):
            bp_yield()
        if job.failed:     # set before the flag it precedes
            return -1
    return 0


cdef int queue_init(FillQueue *q, BatchJob *job) noexcept nogil:
    q.head = q.tail = 0
    q.blocks = <int64_t *> malloc(max(1, job.n_blocks) * sizeof(int64_t))
    q.refs = job.refs + bp_fetch_add(&job.next_worker, 1) * job.n_ids
    return 0 if q.blocks != NULL else -1


cdef void fill_ready(BatchJob *job, FillQueue *q, bint wait) noexcept nogil:
    """Fill the lists of the queued blocks whose lists exist, in order; with
    ``wait``, wait for every queued block (or for the job to be given up)."""
    cdef int64_t b, i, hi, extra = job.add_bos + job.add_eos
    cdef unsigned char state
    while q.head < q.tail:
        b = q.blocks[q.head]
        state = bp_load_acquire(&job.allocated[b])
        if state == 0:
            if not wait:
                return
            bp_yield()
            continue
        if state == 1:
            hi = min(job.n_texts, (b + 1) * job.block)
            for i in range(b * job.block, hi):
                bp_point_items(job.lists[i], job.out + job.offsets[i] + i * extra,
                               job.counts[i], job.table, q.refs)
        q.head += 1


cdef void run_batch(BatchJob *job, const Trie *trie, const double *score,
                    const Weights *weights) noexcept nogil:
    """Worker loop: claim blocks of texts from a shared atomic counter until
    none are left. In list mode (``job.lists`` set, helpers only) it also
    fills, between blocks, the lists of the blocks it segmented as soon as
    the calling thread has allocated them (their ids still in this core's
    cache), and at the end waits for the rest."""
    cdef EncodeTask task
    cdef FillQueue q
    cdef int64_t b
    cdef int64_t *row = NULL
    cdef bint list_mode = job.lists != NULL
    if list_mode and queue_init(&q, job) < 0:
        free(q.blocks)
        job.failed = 1
        return
    task_init(&task, trie, score, weights)
    if job.piece_counts != NULL:
        row = job.piece_counts + bp_fetch_add(&job.next_worker, 1) * job.n_pieces
    while True:
        b = bp_fetch_add(&job.next_block, 1)
        if b >= job.n_blocks or not wait_packed(job, b) or run_block(job, &task, row, b) < 0:
            break
        if list_mode:
            q.blocks[q.tail] = b
            q.tail += 1
            fill_ready(job, &q, False)
    scratch_free(&task.scratch)
    if list_mode:
        fill_ready(job, &q, True)
        free(q.blocks)


cdef void worker_main(void *arg) noexcept nogil:
    """Body of every helper thread (and of the caller outside list mode)."""
    cdef Worker *w = <Worker *> arg
    run_batch(w.job, w.trie, w.score, w.weights)


cdef class _Packer


cdef class _BatchRunner:
    """Owns one batch job (its id buffer ``job.out`` included) and its native
    helper threads; the calling thread is a worker too."""
    cdef BatchJob job
    cdef Segmenter segmenter
    cdef Weights weights
    cdef bint sampling
    cdef object keep    # buffers the job points into
    cdef object out     # int32 array behind job.out
    cdef object counts
    cdef _Packer packer   # a batch of Python texts: packed while the helpers segment
    cdef Worker worker
    cdef bp_thread_start_arg start
    cdef bp_thread *threads
    cdef int n_threads

    cdef void prepare(self):
        self.worker.job = &self.job
        self.worker.trie = &self.segmenter.trie
        self.worker.score = self.segmenter.score
        self.worker.weights = &self.weights if self.sampling else NULL
        self.start.fn = worker_main
        self.start.arg = &self.worker

    cdef int start_helpers(self, int num_threads) except -1:
        """Start up to ``num_threads - 1`` helpers (fewer if the system
        refuses: the work is claimed, so the others do it)."""
        self.prepare()
        self.n_threads = 0
        if num_threads <= 1:
            return 0
        self.threads = <bp_thread *> malloc((num_threads - 1) * sizeof(bp_thread))
        if self.threads == NULL:
            raise MemoryError()
        with nogil:
            while self.n_threads < num_threads - 1:
                if bp_thread_start(&self.threads[self.n_threads], &self.start) != 0:
                    break
                self.n_threads += 1
        return 0

    cdef void join_helpers(self) noexcept nogil:
        cdef int t
        for t in range(self.n_threads):
            bp_thread_join(self.threads[t])
        free(self.threads)
        self.threads = NULL
        self.n_threads = 0

    def __dealloc__(self):
        self.join_helpers()

    cdef int alloc_out(self, int64_t text_bytes) except -1:
        """The id buffer, for texts of ``text_bytes`` in all: text i writes
        at ``out + offsets[i] + i * extra``, and a text of n bytes has at
        most n ids. A larger buffer keeps the ids written so far. NumPy
        owns it, and asks for huge pages on large arrays: a batch of the
        corpora takes ~100 page faults with it against ~300 with malloc
        (the time was the same, measured)."""
        cdef int64_t size = max(1, text_bytes + self.job.n_texts * (self.job.add_bos + self.job.add_eos))
        out = np.empty(size, dtype=np.int32)
        cdef int32_t[::1] view = out
        if self.out is not None:
            memcpy(&view[0], self.job.out, self.out.shape[0] * sizeof(int32_t))
        self.out = out
        self.job.out = &view[0]
        return 0

    cdef int publish_texts(self) except -1:
        """Let the workers at the texts, block by block. A job over packed
        bytes has them all at once. A job over Python texts packs them here
        (under the GIL): while helper threads run, each block is published
        as soon as it is packed, so on two threads the helper segments the
        first blocks while this thread packs the rest, and packing (about a
        twentieth of the work) no longer runs alone before the threads start.
        If packing raises, the helpers are released and joined first."""
        cdef BatchJob *job = &self.job
        cdef int64_t b
        if self.packer is None:
            bp_store_release_ll(&job.packed_blocks, job.n_blocks)
            return 0
        # The packer points back at this runner only while it packs: a
        # lasting cycle would keep each batch's buffers alive until the
        # cyclic collector runs (measured: memory and time grew per batch).
        self.packer.runner = self
        cdef unsigned char[::1] done_view
        try:
            if self.n_threads == 0:
                self.packer.write(0, job.n_texts)
                self.alloc_out(self.packer.pos)     # exact: packing is over
                bp_store_release_ll(&job.packed_blocks, job.n_blocks)
                return 0
            # The helpers write ids before packing ends: size the id buffer
            # from the most UTF-8 the texts can take (it grows with the text
            # buffer if that is short).
            self.alloc_out(self.packer.room)
            if job.done == NULL:
                # Growing the buffers waits on the blocks' flags (list mode
                # has them already). No helper reads the job before the first
                # block is published, so they may be set up here.
                done = np.zeros(job.n_blocks, dtype=np.uint8)
                done_view = done
                self.keep.append(done)
                job.done = &done_view[0]
            for b in range(job.n_blocks):
                self.packer.write(b * job.block, min(job.n_texts, (b + 1) * job.block))
                bp_store_release_ll(&job.packed_blocks, b + 1)
        except BaseException:
            self.abort()
            raise
        finally:
            self.packer.runner = None
        return 0

    cdef void abort(self) noexcept:
        """Stop the helpers early and join them: waiting ones quit, and in
        list mode every block without lists is marked given up."""
        cdef int64_t b
        bp_store_release(&self.job.aborted, 1)
        if self.job.allocated != NULL:
            for b in range(self.job.n_blocks):
                if not self.job.allocated[b]:
                    bp_store_release(&self.job.allocated[b], 2)   # release waiting helpers
        with nogil:
            self.join_helpers()

    cdef int alloc_lists(self, list result, int64_t lo_block, int64_t hi_block) except -1:
        """List mode: allocate the (untracked, unfilled) lists of the texts of
        blocks lo_block..hi_block-1 into ``result``, then flag the blocks."""
        cdef int64_t i, b
        cdef object lst
        for i in range(lo_block * self.job.block, min(self.job.n_texts, hi_block * self.job.block)):
            lst = PyList_New(self.job.counts[i])
            PyObject_GC_UnTrack(lst)
            self.job.lists[i] = <void *> lst
            Py_INCREF(lst)
            PyList_SET_ITEM(result, i, lst)
        for b in range(lo_block, hi_block):
            bp_store_release(&self.job.allocated[b], 1)
        return 0

    cdef list lists(self, int num_threads, tuple table):
        """Segment on ``num_threads`` threads and return the id lists.

        One thread segments everything, then builds each list straight from
        its ids. With more threads, building the lists under the GIL would
        be a long serial tail, so it is split: only allocating a list needs
        the GIL. The calling thread segments blocks like the helpers and,
        between its blocks, allocates the lists (untracked, items unset) of
        every block finished so far. Each thread points the items of its own
        blocks' lists at the cached ints of ``table`` once they exist (the
        ids are still in its cache), counting per id the references taken.
        At last the calling thread adds those counts to the ints' reference
        counts, id by id (each int's cache line is touched once, not at
        every item), and tracks the lists. Until then no one else can reach
        them (the result list is untracked too), and ``table``, a tuple,
        keeps its ints alive.
        """
        cdef BatchJob *job = &self.job
        cdef EncodeTask task
        cdef FillQueue q
        cdef int64_t ready = 0, upto, b = 0, i, n = job.n_texts
        cdef object lst
        cdef list result = PyList_New(n)
        if num_threads <= 1:
            self.prepare()
            self.publish_texts()
            with nogil:
                run_batch(job, self.worker.trie, self.worker.score, self.worker.weights)
            if job.failed:
                raise MemoryError("out of memory while segmenting")
            was_enabled = pause_gc()
            try:
                for i in range(n):
                    lst = ids_to_list(job.out + job.offsets[i] + i * (job.add_bos + job.add_eos),
                                      job.counts[i], table)
                    Py_INCREF(lst)
                    PyList_SET_ITEM(result, i, lst)
            finally:
                resume_gc(was_enabled)
            return result
        PyObject_GC_UnTrack(result)
        done = np.zeros(job.n_blocks, dtype=np.uint8)
        allocated = np.zeros(job.n_blocks, dtype=np.uint8)
        handles = np.zeros(n, dtype=np.uintp)
        refs = np.zeros((num_threads, len(table)), dtype=np.int64)
        cdef unsigned char[::1] done_view = done
        cdef unsigned char[::1] allocated_view = allocated
        cdef size_t[::1] handle_view = handles
        cdef int64_t[:, ::1] refs_view = refs
        job.done = &done_view[0]
        job.allocated = &allocated_view[0]
        job.lists = <void **> &handle_view[0]
        job.table = PySequence_Fast_ITEMS(table)
        job.refs = &refs_view[0, 0]
        job.n_ids = len(table)
        if queue_init(&q, job) < 0:
            free(q.blocks)
            raise MemoryError()
        self.start_helpers(num_threads)
        task_init(&task, self.worker.trie, self.worker.score, self.worker.weights)
        was_enabled = pause_gc()
        try:
            self.publish_texts()
            while ready < job.n_blocks:
                with nogil:
                    if b < job.n_blocks:
                        b = bp_fetch_add(&job.next_block, 1)
                        if b < job.n_blocks:
                            run_block(job, &task, NULL, b)
                            q.blocks[q.tail] = b
                            q.tail += 1
                    if b >= job.n_blocks:
                        # Nothing left to claim: wait for the helpers' next
                        # block in order (every claimed block gets its flag).
                        while not bp_load_acquire(&job.done[ready]):
                            bp_yield()
                    upto = ready
                    while upto < job.n_blocks and bp_load_acquire(&job.done[upto]):
                        upto += 1
                if job.failed:
                    break
                self.alloc_lists(result, ready, upto)
                ready = upto
                with nogil:
                    fill_ready(job, &q, False)
        finally:
            resume_gc(was_enabled)
            scratch_free(&task.scratch)
            self.abort()   # after a normal run: only joins
            free(q.blocks)
            job.done = NULL
            # Every filled item gets its reference, also when giving up: the
            # lists are then consistent and freed with the result.
            bp_add_refs(job.table, job.refs, job.n_ids, num_threads)
        if job.failed:
            raise MemoryError("out of memory while segmenting")
        for i in range(n):
            PyObject_GC_Track(<object> job.lists[i])
        PyObject_GC_Track(result)
        return result

    cdef use_weights(self, Segmenter segmenter, double alpha):
        """Point the job at ``segmenter`` and the sampling weights of ``alpha``."""
        self.segmenter = segmenter
        self.sampling = alpha >= 0.0
        if self.sampling:
            weights, log_domain, address = segmenter._weights_for(alpha)
            self.weights.alpha = alpha
            self.weights.log_domain = log_domain
            self.weights.node_weight = NULL
            if not log_domain:
                self.keep.append(weights)
                self.weights.node_weight = <double *> (<size_t> address)


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


cdef int _plan_threads(_BatchRunner runner, int num_threads, int64_t total_bytes,
                       int64_t bytes_per_thread):
    """The threads worth starting (0 asks for all cores); sets the block size.

    A thread costs ~50 us to start, so each gets at least
    ``bytes_per_thread`` of text. Texts are claimed in blocks: one atomic
    claim per text bounced the counter's cache line between the cores tens
    of thousands of times per batch. A block holds at most about 16 KB of
    text and 256 texts, and each thread gets at least 32 blocks, so that
    the threads finish close together.
    """
    cdef int64_t n = runner.job.n_texts, block
    if num_threads <= 0:
        num_threads = _cpu_count()
    num_threads = max(1, min(num_threads, n, 1 + total_bytes // bytes_per_thread))
    block = min(256, n // (32 * num_threads))
    if total_bytes > 0:
        block = min(block, n * 16384 // total_bytes)
    block = max(1, block)
    runner.job.block = block
    runner.job.n_blocks = (n + block - 1) // block
    return num_threads


cdef _run_threads(_BatchRunner runner, int num_threads, int64_t total_bytes,
                  int64_t bytes_per_thread=65536):
    """Run the job on ``num_threads`` native threads (the caller's included)."""
    num_threads = _plan_threads(runner, num_threads, total_bytes, bytes_per_thread)
    runner.start_helpers(num_threads)
    runner.publish_texts()
    with nogil:
        worker_main(&runner.worker)
        runner.join_helpers()
    if runner.job.failed:
        raise MemoryError("out of memory while segmenting")


cdef check_offsets(const int64_t[::1] off, int64_t size):
    """Offsets must be non-decreasing and inside the buffer."""
    cdef int64_t i
    for i in range(off.shape[0] - 1):
        if off[i] > off[i + 1]:
            raise ValueError(f"offsets must be non-decreasing (offsets[{i}] > offsets[{i + 1}])")
    if off.shape[0] and (off[0] < 0 or off[off.shape[0] - 1] > size):
        raise ValueError(f"offsets must lie within the data (0..{size})")


cdef extern from *:
    """
    /* A new list of the cached int objects table[ids[0..n-1]]: one reference
       count update per item (Cython's item-by-item code does three). The
       caller has checked that every id indexes the table. */
    static PyObject *bp_ids_to_list(const int32_t *ids, Py_ssize_t n, PyObject *table) {
        PyObject *list = PyList_New(n);
        PyObject **items, **dst;
        Py_ssize_t j;
        if (list == NULL) return NULL;
        items = PySequence_Fast_ITEMS(table);
        dst = PySequence_Fast_ITEMS(list);
        for (j = 0; j < n; j++) {
            PyObject *o = items[ids[j]];
            Py_INCREF(o);
            dst[j] = o;
        }
        return list;
    }
    """
    list bp_ids_to_list(const int32_t *ids, Py_ssize_t n, object table)


cdef inline list ids_to_list(const int32_t *ids, int64_t n, object table):
    """A Python list of cached int objects (no new int per id); ``table`` is
    a list or tuple the caller has checked."""
    return bp_ids_to_list(ids, n, table)


cdef check_table(table, int64_t n_ids):
    """An id table must be a tuple or list with an entry for every id."""
    if type(table) is not tuple and type(table) is not list:
        raise TypeError(f"table must be a tuple or list, got {type(table).__name__}")
    if len(table) < n_ids:
        raise ValueError(f"table must hold an entry for each of the {n_ids} ids")


def split_lists(ids, bounds, table):
    """``[ids[bounds[i]:bounds[i+1]] as lists of ints]``, ints taken from ``table``."""
    cdef const int32_t[::1] flat = np.ascontiguousarray(ids, dtype=np.int32)
    cdef const int64_t[::1] b = np.ascontiguousarray(bounds, dtype=np.int64)
    cdef Py_ssize_t i, n = b.shape[0] - 1
    cdef list result
    cdef object item
    check_offsets(b, flat.shape[0])
    check_table(table, 0)
    if flat.shape[0] and (np.min(ids) < 0 or np.max(ids) >= len(table)):
        raise ValueError("ids must lie within the table")
    result = PyList_New(max(n, 0))
    was_enabled = pause_gc()
    try:
        for i in range(n):
            item = ids_to_list(&flat[b[i]] if b[i + 1] > b[i] else NULL, b[i + 1] - b[i], table)
            Py_INCREF(item)
            PyList_SET_ITEM(result, i, item)
    finally:
        resume_gc(was_enabled)
    return result


cdef bint pause_gc():
    """Stop the cyclic collector while many id lists are built; returns
    whether it was running. Every new list is a GC-tracked object, so
    building tens of thousands of them sets off collection after collection
    over lists that hold nothing but ints (half the time of building them,
    measured). No Python code runs while the lists are built, so the pause
    is invisible to users."""
    was_enabled = gc.isenabled()
    gc.disable()
    return was_enabled


cdef void resume_gc(bint was_enabled):
    if was_enabled:
        gc.enable()


cdef _packed_offsets(data, offsets, str name):
    """``offsets`` as a contiguous int64 array, after checking that ``data``
    is a buffer (not None, which a memoryview would take as empty) and that
    ``offsets`` is a 1-D array of integers: TypeError naming the argument."""
    if data is None:
        raise TypeError(f"{name}: data must be a bytes-like object, got None")
    arr = np.asarray(offsets) if offsets is not None else None
    if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise TypeError(f"{name}: offsets must be a 1-D array of integers, got {type(offsets).__name__}")
    return np.ascontiguousarray(arr, dtype=np.int64)


cdef _BatchRunner _new_runner(Segmenter segmenter, int64_t n, double alpha, uint64_t seed,
                              bint chunked, bint add_bos, bint add_eos, int64_t first_index):
    """A job over ``n`` texts whose ids are written to ``job.out`` (see
    :meth:`_BatchRunner.alloc_out`), their number to ``counts``."""
    cdef _BatchRunner runner = _BatchRunner()
    counts = np.zeros(max(1, n), dtype=np.int64)
    cdef int64_t[::1] count_view = counts
    runner.keep = [counts]
    runner.counts = counts
    memset(&runner.job, 0, sizeof(BatchJob))
    runner.job.n_texts = n
    runner.job.counts = &count_view[0]
    runner.job.add_bos = add_bos
    runner.job.add_eos = add_eos
    runner.job.chunked = chunked
    runner.job.seed = seed
    runner.job.first_index = first_index
    runner.use_weights(segmenter, alpha)
    return runner


cdef _BatchRunner _batch_job(Segmenter segmenter, data, offsets, double alpha, uint64_t seed,
                             bint chunked, bint add_bos, bint add_eos, int64_t first_index,
                             str name):
    """A job over the packed texts ``data[offsets[i]:offsets[i+1]]``."""
    cdef const int64_t[::1] off = _packed_offsets(data, offsets, name)
    cdef const unsigned char[::1] view = data
    cdef int64_t n = off.shape[0] - 1
    if n < 0:
        raise ValueError("offsets must hold at least one value")
    check_offsets(off, view.shape[0])
    cdef _BatchRunner runner = _new_runner(segmenter, n, alpha, seed, chunked, add_bos, add_eos,
                                           first_index)
    # The view is kept too: it holds the buffer exported, so a bytearray
    # cannot be resized (freed) by another thread while the job reads it.
    runner.keep += [data, off, view]
    runner.job.data = &view[0] if view.shape[0] else <const unsigned char *> ""
    runner.job.offsets = &off[0]
    runner.alloc_out(off[n])
    return runner


cdef _BatchRunner _text_job(Segmenter segmenter, texts, nfc_utf8, double alpha, uint64_t seed,
                            bint add_bos, bint add_eos, int64_t first_index):
    """A job over Python texts (str or bytes-like), packed as the job runs
    (:meth:`_BatchRunner.publish_texts`), which also makes its id buffer."""
    cdef _Packer packer = _Packer()
    packer.size(texts, nfc_utf8)
    cdef _BatchRunner runner = _new_runner(segmenter, packer.n, alpha, seed, True, add_bos,
                                           add_eos, first_index)
    runner.packer = packer
    runner.job.data = <const unsigned char *> packer.dst
    runner.job.offsets = packer.off
    return runner


cdef tuple _flat_result(_BatchRunner runner):
    """``(ids, bounds)`` of a finished job: its ids laid end to end."""
    cdef int64_t n = runner.job.n_texts, i, extra = runner.job.add_bos + runner.job.add_eos
    counts = runner.counts
    bounds = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts[:n], out=bounds[1:])
    result = np.empty(bounds[n], dtype=np.int32)
    cdef int32_t[::1] res_view = result
    cdef int64_t[::1] b_view = bounds
    cdef const int32_t *out = runner.job.out
    cdef const int64_t *count = runner.job.counts
    cdef const int64_t *off = runner.job.offsets
    with nogil:
        for i in range(n):
            if count[i]:
                memcpy(&res_view[b_view[i]], &out[off[i] + i * extra], count[i] * sizeof(int32_t))
    return result, bounds

