# Text packing (UTF-8 back to back) and the NFC fast path.
# Included by _core.pyx: part of the one extension module bytepiece._core.

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)
    void *PyUnicode_DATA(object o)
    int PyUnicode_KIND(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    bytes PyBytes_FromStringAndSize(const char *v, Py_ssize_t n)
    bytearray PyByteArray_FromStringAndSize(const char *v, Py_ssize_t n)
    char *PyByteArray_AS_STRING(object o)
    int PyByteArray_Resize(object o, Py_ssize_t n) except -1


cdef extern from "_nfc_table.h":
    int BP_NFC_SAFE_RANGES
    int BP_NFC_SAFE_ASTRAL
    const unsigned short bp_nfc_safe_ranges[][2]
    const unsigned int bp_nfc_safe_astral[][2]


cdef extern from *:
    """
    /* One bit per BMP code point: set when the code point is NFC on its own
       (see _nfc_table.h). A string of such code points is NFC already. */
    static uint64_t bp_nfc_safe[1024];

    static inline int bp_is_nfc_safe(uint32_t cp) {
        int lo = 0, hi = BP_NFC_SAFE_ASTRAL - 1, mid;
        if (cp < 0x10000) return (bp_nfc_safe[cp >> 6] >> (cp & 63)) & 1;
        while (lo <= hi) {   /* above the BMP (rarer): binary search of the ranges */
            mid = (lo + hi) >> 1;
            if (cp < bp_nfc_safe_astral[mid][0]) hi = mid - 1;
            else if (cp > bp_nfc_safe_astral[mid][1]) lo = mid + 1;
            else return 1;
        }
        return 0;
    }

    /* 1 when s[0..n) is valid UTF-8 of code points that are each NFC on
       their own, with no carriage return: such bytes are NFC text with \n
       line ends as they are. 0 means "not shown": the caller decodes and
       normalizes (and reports invalid UTF-8) the exact way. */
    static int bp_utf8_is_plain_nfc(const unsigned char *s, Py_ssize_t n) {
        Py_ssize_t i = 0;
        uint32_t cp;
        while (i < n) {
            unsigned char b = s[i];
            if (b < 0x80) {
                if (b == 13) return 0;   /* carriage return */
                i++;
                continue;
            }
            if (b >= 0xC2 && b <= 0xDF) {
                if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
                cp = ((uint32_t) (b & 0x1F) << 6) | (s[i + 1] & 0x3F);
                i += 2;
                if (cp >= 0x300 && !bp_is_nfc_safe(cp)) return 0;
                continue;
            }
            if (b >= 0xE0 && b <= 0xEF) {
                if (i + 2 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
                cp = ((uint32_t) (b & 0x0F) << 12) | ((uint32_t) (s[i + 1] & 0x3F) << 6)
                     | (s[i + 2] & 0x3F);
                /* overlong forms and surrogates are not in the table either */
                if (cp < 0x800 || !bp_is_nfc_safe(cp)) return 0;
                i += 3;
                continue;
            }
            if (b >= 0xF0 && b <= 0xF4) {
                if (i + 3 >= n || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80
                        || (s[i + 3] & 0xC0) != 0x80) return 0;
                cp = ((uint32_t) (b & 0x07) << 18) | ((uint32_t) (s[i + 1] & 0x3F) << 12)
                     | ((uint32_t) (s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
                /* overlong forms and values past U+10FFFF are not in the table */
                if (cp < 0x10000 || !bp_is_nfc_safe(cp)) return 0;
                i += 4;
                continue;
            }
            return 0;            /* invalid bytes */
        }
        return 1;
    }

    /* Room bp_nfc_utf8_write may need per code point of a str of this kind. */
    static inline Py_ssize_t bp_utf8_room(int kind) { return kind == 1 ? 2 : kind == 2 ? 3 : 4; }

    /* Write the UTF-8 of a non-ASCII str's n code points to out (which has
       room for bp_utf8_room(kind) bytes each) and return its size, or -1 as
       soon as a code point is not NFC on its own (out then holds a partial
       write). Checking and encoding in one loop: the branch on the class of
       each code point is taken once. One loop per storage width, so that
       each knows its width (and kind 2 that no code point needs 4 bytes). */
    #define BP_NFC_WRITE_LOOP(T, ASTRAL)                                         \
        {                                                                        \
            const T *d = (const T *) data;                                       \
            for (i = 0; i < n; i++) {                                            \
                uint32_t cp = d[i];                                              \
                if (cp < 0x80) {                                                 \
                    *o++ = (unsigned char) cp;                                   \
                    continue;                                                    \
                }                                                                \
                if (cp >= 0x300 && !bp_is_nfc_safe(cp)) return -1;               \
                if (cp < 0x800) {                                                \
                    o[0] = (unsigned char) (0xC0 | (cp >> 6));                   \
                    o[1] = (unsigned char) (0x80 | (cp & 0x3F));                 \
                    o += 2;                                                      \
                } else if (!ASTRAL || cp < 0x10000) {                            \
                    o[0] = (unsigned char) (0xE0 | (cp >> 12));                  \
                    o[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));          \
                    o[2] = (unsigned char) (0x80 | (cp & 0x3F));                 \
                    o += 3;                                                      \
                } else {                                                         \
                    o[0] = (unsigned char) (0xF0 | (cp >> 18));                  \
                    o[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));         \
                    o[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));          \
                    o[3] = (unsigned char) (0x80 | (cp & 0x3F));                 \
                    o += 4;                                                      \
                }                                                                \
            }                                                                    \
        }
    static Py_ssize_t bp_nfc_utf8_write(int kind, const void *data, Py_ssize_t n, char *out) {
        Py_ssize_t i;
        unsigned char *o = (unsigned char *) out;
        if (kind == 1) {   /* Latin-1 is NFC on its own */
            const uint8_t *d = (const uint8_t *) data;
            for (i = 0; i < n; i++) {
                if (d[i] < 0x80) {
                    *o++ = d[i];
                } else {
                    o[0] = (unsigned char) (0xC0 | (d[i] >> 6));
                    o[1] = (unsigned char) (0x80 | (d[i] & 0x3F));
                    o += 2;
                }
            }
        }
        else if (kind == 2) BP_NFC_WRITE_LOOP(uint16_t, 0)
        else BP_NFC_WRITE_LOOP(uint32_t, 1)
        return (char *) o - out;
    }

    /* The most UTF-8 the str and bytes items[0..n) can take (other items
       count 0: the packer grows its buffer for them). Each item's
       header is fetched 16 items ahead: the texts lie all over the heap,
       and waiting for one header at a time made this loop (which runs
       before the helper threads have anything to do) take 0.45 ms of a
       24 ms two-thread batch of 33k lines; prefetched it takes 0.25 ms. */
    #if defined(__GNUC__) || defined(__clang__)
    #define BP_PREFETCH(p) __builtin_prefetch(p)
    #else
    #define BP_PREFETCH(p) ((void) 0)
    #endif
    static Py_ssize_t bp_sized_room(void **items, Py_ssize_t n) {
        Py_ssize_t i, room = 0;
        for (i = 0; i < n; i++) {
            PyObject *t = (PyObject *) items[i];
            if (i + 16 < n) BP_PREFETCH(items[i + 16]);
            if (PyUnicode_CheckExact(t)) {
                Py_ssize_t size = PyUnicode_GET_LENGTH(t);
                room += PyUnicode_IS_ASCII(t) ? size : size * bp_utf8_room(PyUnicode_KIND(t));
            } else if (PyBytes_CheckExact(t)) {
                room += PyBytes_GET_SIZE(t);
            }
        }
        return room;
    }

    /* The NFC UTF-8 of a non-ASCII str as bytes, or None when a code point
       is not NFC on its own. Written at the most UTF-8 the str can take,
       then cut in place: no second pass, no copy (the pages past the end
       are never touched). */
    static PyObject *bp_str_nfc_utf8_bytes(int kind, const void *data, Py_ssize_t n) {
        PyObject *out = PyBytes_FromStringAndSize(NULL, n * bp_utf8_room(kind));
        Py_ssize_t size;
        if (out == NULL) return NULL;
        size = bp_nfc_utf8_write(kind, data, n, PyBytes_AS_STRING(out));
        if (size < 0) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        if (_PyBytes_Resize(&out, size) < 0) return NULL;
        return out;
    }
    """
    uint64_t bp_nfc_safe[1024]
    Py_ssize_t bp_sized_room(void **items, Py_ssize_t n) noexcept
    bint bp_is_nfc_safe(uint32_t cp) noexcept nogil
    bint bp_utf8_is_plain_nfc(const unsigned char *s, Py_ssize_t n) noexcept nogil
    Py_ssize_t bp_utf8_room(int kind) noexcept nogil
    Py_ssize_t bp_nfc_utf8_write(int kind, const void *data, Py_ssize_t n, char *out) noexcept nogil
    object bp_str_nfc_utf8_bytes(int kind, const void *data, Py_ssize_t n)


cdef void _init_nfc_table() noexcept:
    cdef int r
    cdef uint32_t cp
    memset(bp_nfc_safe, 0, sizeof(bp_nfc_safe))
    for r in range(BP_NFC_SAFE_RANGES):
        for cp in range(bp_nfc_safe_ranges[r][0], bp_nfc_safe_ranges[r][1] + 1):
            bp_nfc_safe[cp >> 6] |= (<uint64_t> 1) << (cp & 63)


_init_nfc_table()


def str_nfc_utf8(str text not None, nfc_utf8):
    """The NFC UTF-8 of ``text``: in C when ``text`` is provably NFC (see
    :func:`pack_texts`), else ``nfc_utf8(text)``."""
    if PyUnicode_IS_ASCII(text):
        return PyBytes_FromStringAndSize(<const char *> PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
    out = bp_str_nfc_utf8_bytes(PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
    return nfc_utf8(text) if out is None else out


def is_plain_nfc_utf8(const unsigned char[::1] view not None):
    """True when ``view`` (bytes-like) is valid UTF-8, has no ``\\r`` and is
    NFC as it is, shown with the table of code points that are NFC on their
    own; False means only "not shown" (decode and normalize it the exact way)."""
    cdef bint ok
    if view.shape[0] == 0:
        return True
    with nogil:
        ok = bp_utf8_is_plain_nfc(&view[0], view.shape[0])
    return ok


def nfc_safe_ranges():
    """The inclusive code point ranges the fast NFC path takes as NFC on
    their own (for tests: they must agree with ``unicodedata``)."""
    return ([(bp_nfc_safe_ranges[r][0], bp_nfc_safe_ranges[r][1]) for r in range(BP_NFC_SAFE_RANGES)]
            + [(bp_nfc_safe_astral[r][0], bp_nfc_safe_astral[r][1]) for r in range(BP_NFC_SAFE_ASTRAL)])


def pack_texts(texts, nfc_utf8):
    """Lay the UTF-8 of every text back to back: ``(data, offsets)``.

    ``str`` items are NFC-normalized and ``bytes`` items taken as they are.
    Most strings are provably NFC already and are encoded here in C: pure
    ASCII (its storage is its UTF-8) and strings whose code points are all
    NFC on their own (``_nfc_table.h``: Latin-1, most scripts, CJK with its
    extensions, Hangul syllables, emoji). The rest go through ``nfc_utf8``, which also
    raises the descriptive errors. Batch encoding packs the same way
    (:class:`_Packer`), a block of texts at a time while its threads run.
    """
    cdef _Packer packer = _Packer()
    packer.size(texts, nfc_utf8)
    packer.write(0, packer.n)
    PyByteArray_Resize(packer.data, packer.pos)
    return packer.data, packer.offsets


def _sized_room(texts):
    """The bytes the packer reserves for ``texts`` before writing them (for tests)."""
    cdef _Packer packer = _Packer()
    packer.size(texts, None)
    return packer.room


cdef class _Packer:
    """Writes the UTF-8 of a sequence of texts back to back into a bytearray,
    a range of texts at a time (see :func:`pack_texts`).

    One pass over the texts: the buffer is sized first from the string
    lengths (the most UTF-8 each can take), then each text is written in
    place, a non-ASCII one checked and encoded in the same loop. Texts the
    sizing cannot count (bytearray, memoryview, strings NFC makes longer)
    grow the buffer. With ``runner`` set (while the runner packs), the
    buffer is that job's text buffer and the job's id buffer, once made,
    grows along; if the runner has helper threads, they may be segmenting
    the blocks published so far, so growing first waits until they are done
    with them (the only moment the buffers move).
    """
    cdef object texts
    cdef object nfc_utf8
    cdef object data            # bytearray: the packed UTF-8
    cdef object offsets         # int64 array of n + 1: text i is data[offsets[i]:offsets[i+1]]
    cdef int64_t *off
    cdef char *dst
    cdef Py_ssize_t n, room, pos
    cdef _BatchRunner runner    # while it packs: the job whose buffers these are

    cdef int size(self, texts, nfc_utf8) except -1:
        """Take the texts and size the buffer. The packer holds a snapshot
        of them for the whole call: a tuple as it is, a list copied into a
        tuple (one pointer copy per text), any other sequence read once,
        item by item, into a tuple. The caller's list may then change at any
        moment (another thread, or a ``str`` subclass's ``__str__`` run while
        packing) without the packer reading freed or missing items."""
        if type(texts) is list:
            texts = PyList_AsTuple(texts)
        elif type(texts) is not tuple:
            texts = tuple([texts[i] for i in range(len(texts))])
        cdef Py_ssize_t n = len(texts)
        self.texts = texts
        self.nfc_utf8 = nfc_utf8
        self.n = n
        self.offsets = np.empty(n + 1, dtype=np.int64)
        cdef int64_t[::1] off = self.offsets
        self.off = &off[0]
        self.room = bp_sized_room(PySequence_Fast_ITEMS(texts), n)
        self.pos = 0
        self.off[0] = 0
        self.data = PyByteArray_FromStringAndSize(NULL, self.room)
        self.dst = PyByteArray_AS_STRING(self.data)
        return 0

    cdef int write(self, Py_ssize_t lo, Py_ssize_t hi) except -1:
        """Append texts ``lo .. hi - 1`` (the next ones) and their offsets."""
        cdef Py_ssize_t i, size
        cdef char *dst = self.dst
        for i in range(lo, hi):
            t = self.texts[i]
            if type(t) is str:
                size = PyUnicode_GET_LENGTH(t)
                if PyUnicode_IS_ASCII(t):
                    dst = self.fit(self.pos + size)
                    memcpy(dst + self.pos, PyUnicode_DATA(t), size)
                else:
                    dst = self.fit(self.pos + size * bp_utf8_room(PyUnicode_KIND(t)))
                    size = bp_nfc_utf8_write(PyUnicode_KIND(t), PyUnicode_DATA(t), size, dst + self.pos)
                    if size < 0:
                        t = self.nfc_utf8(t)   # not shown NFC by the table: the exact path
                        size = -1
            elif type(t) is not bytes:
                if isinstance(t, (bytearray, memoryview)):
                    t = bytes(t)
                elif isinstance(t, str):
                    t = self.nfc_utf8(str(t))
                else:
                    raise TypeError(f"text {i} must be str or bytes, got {type(t).__name__}")
                size = -1
            else:
                size = -1
            if size < 0:    # t is bytes now
                if type(t) is not bytes:
                    raise TypeError(f"nfc_utf8 must return bytes, got {type(t).__name__}")
                size = PyBytes_GET_SIZE(t)
                dst = self.fit(self.pos + size)
                memcpy(dst + self.pos, PyBytes_AS_STRING(t), size)
            self.pos += size
            self.off[i + 1] = self.pos
        return 0

    cdef char *fit(self, Py_ssize_t need) except NULL:
        """The buffer, grown to hold at least ``need`` bytes if it does not."""
        cdef Py_ssize_t room
        cdef BatchJob *job
        cdef int rc
        if need <= self.room:
            return self.dst
        room = max(need, 2 * self.room)
        if self.runner is not None:
            job = &self.runner.job
            if self.runner.n_threads > 0:
                with nogil:
                    rc = drain_published(job)
                if rc < 0:
                    raise MemoryError("out of memory while segmenting")
            if self.runner.out is not None:
                self.runner.alloc_out(room)
        PyByteArray_Resize(self.data, room)
        self.room = room
        self.dst = PyByteArray_AS_STRING(self.data)
        if self.runner is not None:
            job.data = <const unsigned char *> self.dst
        return self.dst

