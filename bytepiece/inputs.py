"""Reading corpora: text and JSON Lines files (plain or ``.gz``), standard input,
and byte-range blocks of large files, for ``bytepiece train`` and ``bytepiece
encode`` and for anything else that feeds texts to the core.

Errors are :class:`CorpusError` (a ``ValueError``) whose message names the file
and, where it applies, the line.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from typing import BinaryIO, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from .normalization import nfc_utf8

__all__ = ["CorpusError", "Corpus", "read_lines", "read_records", "record_text", "Shard", "plan_shards",
           "shard_texts", "check_corpus", "TrainingCorpus"]

_LINE = re.compile(r"[^\n]*\n|[^\n]+")


class CorpusError(ValueError):
    """A corpus file that cannot be read as asked (message names file and line)."""


def _open_binary(path: str, decompress: bool = True) -> BinaryIO:
    if path == "-":
        return sys.stdin.buffer
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot open ({exc.strerror})") from None
    if decompress and path.endswith(".gz"):
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def _is_jsonl(path: str) -> bool:
    name = path[:-3] if path.endswith(".gz") else path
    return name.endswith(".jsonl")


_REPLACE_HINT = "; use --errors replace to substitute U+FFFD"


def _decode(raw: bytes, path: str, number: int, errors: str, hint: bool = True) -> str:
    try:
        return raw.decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path}, line {number}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
            + (_REPLACE_HINT if hint else "")
        ) from None


def read_lines(path: str, errors: str = "strict", hint: bool = True,
               handle: Optional[BinaryIO] = None) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of a text file, newline kept, as Python's text mode yields them.

    ``\\r\\n`` and lone ``\\r`` become ``\\n`` (universal newlines), the file is
    decoded line by line so that an encoding error names its line, and
    ``.gz`` files are decompressed on the fly. ``-`` is standard input.
    ``hint``: the error for bad UTF-8 suggests ``--errors replace``;
    ``handle``: read the (raw) bytes of ``path`` from there instead (it is closed).
    """
    if handle is None:
        handle = _open_binary(path)
    elif path.endswith(".gz"):
        handle = gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[assignment]
    inner = getattr(handle, "fileobj", None)  # a GzipFile does not close the file it reads
    try:
        for number, raw in enumerate(handle, 1):
            text = _decode(raw, path, number, errors, hint)
            if "\r" in text:
                for line in _LINE.findall(text.replace("\r\n", "\n").replace("\r", "\n")):
                    yield number, line
            else:
                yield number, text
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CorpusError(f"{path}: read error ({exc})") from None
    finally:
        for opened in (handle, inner):
            if opened is not None and opened is not sys.stdin.buffer:
                opened.close()


_SURROGATE = re.compile("[\ud800-\udfff]")


def record_text(line: str, field: str, where: str, errors: str = "strict") -> str:
    """``record[field]`` of one JSON Lines record; ``where`` ("FILE, line N")
    prefixes the error for a line that is not a JSON object with a string there,
    or whose string holds a lone surrogate (an escape such as ``\\ud800``
    without its pair: not text), which ``errors="replace"`` turns into U+FFFD."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict) or field not in record:
        raise CorpusError(f"{where}: no field {field!r} in this record")
    text = record[field]
    if not isinstance(text, str):
        raise CorpusError(f"{where}: field {field!r} is {type(text).__name__}, not a string")
    if "\\u" in line and _SURROGATE.search(text):  # only an escape can make one
        if errors == "strict":
            raise CorpusError(f"{where}: field {field!r} holds a lone surrogate escape (\\ud800-\\udfff "
                              "without its pair)" + _REPLACE_HINT)
        text = _SURROGATE.sub("\ufffd", text)
    return text


def read_records(path: str, field: str, errors: str = "strict",
                 handle: Optional[BinaryIO] = None) -> Iterator[Tuple[int, str]]:
    """``(line number, text)`` of each JSON Lines record, taking ``record[field]``
    (``handle``: as for :func:`read_lines`)."""
    for number, line in read_lines(path, errors, handle=handle):
        if line.strip():
            yield number, record_text(line, field, f"{path}, line {number}", errors)


class Corpus:
    """The texts of some files, re-iterable (the trainer reads them twice).

    ``.txt`` (or any other name): one text per line, newline kept;
    ``.jsonl``: one text per record, from ``field``; ``.gz`` is decompressed.
    An input that can only be read once (standard input ``-``, a named pipe,
    ``<(...)``, ``/dev/stdin``) is copied, as read the first time, to an
    unnamed temporary file (in ``$TMPDIR``) that later passes read instead.
    """

    def __init__(self, paths: Sequence[str], field: str = "text", errors: str = "strict") -> None:
        self.paths = list(paths)
        self.field = field
        self.errors = errors
        self._spills: dict = {}  # index in paths -> temporary file with its bytes
        for path in self.paths:
            _check_input(path)

    def _texts(self, path: str, handle: Optional[BinaryIO] = None) -> Iterator[str]:
        if _is_jsonl(path):
            reader = read_records(path, self.field, self.errors, handle=handle)
        else:
            reader = read_lines(path, self.errors, handle=handle)
        for _number, text in reader:
            yield text

    def _spilled(self, index: int) -> BinaryIO:
        """A new handle on the bytes of the one-shot input ``paths[index]``,
        copied to a temporary file the first time."""
        spill = self._spills.get(index)
        if spill is None:
            path = self.paths[index]
            source = sys.stdin.buffer if path == "-" else _open_raw(path)
            spill = tempfile.TemporaryFile(prefix="bytepiece-input-")
            try:
                shutil.copyfileobj(source, spill, 1 << 20)
                spill.flush()  # the passes read it through a handle of their own
            except OSError as exc:
                spill.close()
                raise CorpusError(f"{path}: read error ({exc.strerror or exc})") from None
            finally:
                if source is not sys.stdin.buffer:
                    source.close()
            self._spills[index] = spill
        handle = open(os.dup(spill.fileno()), "rb")
        handle.seek(0)
        return handle

    def __iter__(self) -> Iterator[str]:
        for index, path in enumerate(self.paths):
            if _one_shot(path):
                yield from self._texts(path, self._spilled(index))
            else:
                yield from self._texts(path)

    def close(self) -> None:
        """Remove the temporary copies of one-shot inputs."""
        for spill in self._spills.values():
            spill.close()
        self._spills.clear()

    def __del__(self) -> None:
        self.close()


def _one_shot(path: str) -> bool:
    """Whether ``path`` can be read only once (standard input, a pipe, a socket...)."""
    return path == "-" or not os.path.isfile(path)


def _open_raw(path: str) -> BinaryIO:
    """``path`` opened for reading its bytes as they are (no decompression)."""
    return _open_binary(path, decompress=False)


def _strip_newline(line: str) -> str:
    return line[:-1] if line.endswith("\n") else line


def _check_input(path: str) -> None:
    if path != "-" and not os.path.exists(path):
        raise CorpusError(f"{path}: no such file")
    if path != "-" and os.path.isdir(path):
        raise CorpusError(f"{path}: is a directory")


def _input_texts(files: Sequence[str], field: str, errors: str) -> Iterator[str]:
    """Texts to encode for text output: lines without their newline, or JSONL fields."""
    for path in files or ["-"]:
        if _is_jsonl(path):
            for _number, text in read_records(path, field, errors):
                yield text
        else:
            for _number, line in read_lines(path, errors):
                yield _strip_newline(line)


# -- streaming documents for token files ---------------------------------------
#
# The input is cut into blocks of about _BLOCK bytes ending at a newline. The
# parent process only finds the cuts (and counts lines, so that an error can
# name its line); a worker reads, decodes, normalizes and splits its blocks.

_BLOCK = 1 << 20
_PRINTABLE = re.compile(rb"[\x21-\x7e]")


def _read_blocks(path: str, block_size: Optional[int] = None, start: int = 0, end: int = -1,
                 number: int = 1) -> Iterator[Tuple[int, bytes]]:
    """``(number of the first line, raw bytes)`` of about ``block_size`` bytes
    (default ``_BLOCK``) ending at a newline (or at the end of the file).

    ``start``, ``end``: only the bytes ``[start, end)`` of a regular file
    (``end=-1``: to its end), whose first line is line ``number``.
    """
    block_size = block_size or _BLOCK
    handle = _open_binary(path)
    left = end - start if end >= 0 else -1
    try:
        if start:
            handle.seek(start)
        while left:
            try:
                block = handle.read(block_size if left < 0 else min(block_size, left))
                if block and not block.endswith(b"\n") and len(block) != left:
                    block += handle.readline(-1 if left < 0 else left - len(block))
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise CorpusError(f"{path}: read error ({exc})") from None
            if not block:
                if left > 0:
                    raise CorpusError(f"{path}: file changed while it was being read")
                return
            yield number, block
            number += block.count(b"\n")
            if left > 0:
                left -= len(block)
    finally:
        if path != "-":
            handle.close()


def _decode_block(block: bytes, path: str, number: int, errors: str) -> str:
    try:
        return block.decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        line_start = block.rfind(b"\n", 0, exc.start) + 1
        line = number + block.count(b"\n", 0, exc.start)
        raise CorpusError(
            f"{path}, line {line}: not valid UTF-8 ({exc.reason} at byte {exc.start - line_start}); "
            "use --errors replace to substitute U+FFFD"
        ) from None


def _text_block(block: bytes, path: str, number: int, errors: str) -> bytes:
    """A block of lines as NFC UTF-8 with ``\\n`` line ends (``\\r\\n``, ``\\r`` become ``\\n``).

    A newline never takes part in NFC composition or reordering, so
    normalizing the whole block equals normalizing each line. When the block
    is valid UTF-8, already NFC and free of ``\\r`` (the usual case), its own
    bytes are used without re-encoding.
    """
    from . import _core

    if _core.is_plain_nfc_utf8(block):
        return block  # valid UTF-8, NFC and \n-only as it is: no decoding needed
    text = _decode_block(block, path, number, errors)
    changed = errors != "strict"
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        changed = True
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
        changed = True
    return text.encode("utf-8") if changed else block


def _text_documents(block: bytes, path: str, number: int, errors: str) -> List[bytes]:
    """The lines of a block as NFC UTF-8, newline kept (``\\r\\n``, ``\\r`` become ``\\n``)."""
    return _text_block(block, path, number, errors).splitlines(keepends=True)


def _count_text_documents(newlines: int, returns: int, crlf: int, last: bytes) -> int:
    """Lines of a block once ``\\r\\n`` and ``\\r`` are ``\\n``, a last line without one included."""
    return newlines + returns - crlf + (1 if last and last not in b"\r\n" else 0)


def _jsonl_lines(text: str) -> Iterator[Tuple[int, str]]:
    """``(offset of the physical line, line)`` of the non-blank lines of JSON Lines text."""
    for offset, physical in enumerate(text.split("\n")):
        if physical.endswith("\r"):
            physical = physical[:-1]
        for line in physical.split("\r") if "\r" in physical else (physical,):
            if line.strip():
                yield offset, line


def _count_jsonl_records(block: bytes) -> int:
    """How many records :func:`_jsonl_documents` finds in ``block`` (its non-blank
    lines), without decoding the lines that hold printable ASCII."""
    count = 0
    for physical in block.split(b"\n"):
        if physical.endswith(b"\r"):
            physical = physical[:-1]
        for line in physical.split(b"\r") if b"\r" in physical else (physical,):
            if _PRINTABLE.search(line) or line.decode("utf-8", "replace").strip():
                count += 1
    return count


def _jsonl_texts(block: bytes, path: str, number: int, errors: str, field: str) -> Iterator[Tuple[str, str]]:
    """``(where, record[field])`` of each JSON line of a block; ``where`` is "FILE, line N"."""
    text = _decode_block(block, path, number, errors)
    for offset, line in _jsonl_lines(text):
        where = f"{path}, line {number + offset}"
        yield where, record_text(line, field, where, errors)


def _jsonl_documents(block: bytes, path: str, number: int, errors: str, field: str) -> List[bytes]:
    """``record[field]`` of each JSON line of a block, as NFC UTF-8."""
    documents = []
    for where, value in _jsonl_texts(block, path, number, errors, field):
        try:
            documents.append(nfc_utf8(value))
        except ValueError as exc:
            if errors == "strict":
                raise CorpusError(f"{where}: {exc}") from None
            documents.append(unicodedata.normalize("NFC", value).encode("utf-8", "replace"))
    return documents


class _Block(NamedTuple):
    """Lines ``number``... of ``path``: the bytes ``[offset, offset + size)`` of the
    file, or ``data`` when the parent had to read them (stdin, .gz). Picklable:
    :meth:`prepare` runs in a worker process."""

    path: str
    number: int
    offset: int
    size: int
    data: Optional[bytes]
    jsonl: bool
    field: str
    errors: str
    count: Optional[int]  # documents, when counted before dispatch

    def raw(self) -> bytes:
        if self.data is not None:
            return self.data
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(self.size)
        except OSError as exc:
            raise CorpusError(f"{self.path}: read error ({exc.strerror or exc})") from None
        if len(data) != self.size:
            raise CorpusError(f"{self.path}: file changed while it was being read")
        return data

    def prepare(self):
        """``(data, offsets)`` of the block's documents, NFC UTF-8."""
        from .pipelines import line_offsets, pack_documents

        raw = self.raw()
        if self.jsonl:
            return pack_documents(_jsonl_documents(raw, self.path, self.number, self.errors, self.field))
        data = _text_block(raw, self.path, self.number, self.errors)
        return data, line_offsets(data)


def _count_block(raw: bytes, jsonl: bool) -> int:
    if jsonl:
        return _count_jsonl_records(raw)
    returns = raw.count(b"\r")
    crlf = raw.count(b"\r\n") if returns else 0
    return _count_text_documents(raw.count(b"\n"), returns, crlf, raw[-1:])


def _file_blocks(path: str, jsonl: bool, field: str, errors: str, count: bool,
                 later: Optional[int] = None, workers: int = 1) -> Iterator[_Block]:
    """Blocks of a regular file, as byte ranges that the workers read again.

    The file is read here once, a block at a time, to find the cuts and count
    the lines (a block holds no copy of its bytes). Plain reads, not a memory
    map: a file that shrinks while it is read (log rotation, a concurrent
    writer) made the mapped pages fault (SIGBUS); a read just comes up short,
    and any change of size gives a :class:`CorpusError`.

    ``later``: bytes of the regular files that follow (``None``: unknown). With
    several workers, the last blocks of the input get smaller, so that the
    workers finish together instead of one of them encoding the last block alone.
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise CorpusError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        start, number = 0, 1
        while True:
            block = _BLOCK
            if workers > 1 and later is not None:
                block = max(1, _BLOCK // 16, min(_BLOCK, (size - start + later) // (2 * workers)))
            try:
                raw = handle.read(block)
                if raw and not raw.endswith(b"\n"):
                    raw += handle.readline()
            except OSError as exc:
                raise CorpusError(f"{path}: read error ({exc.strerror or exc})") from None
            if not raw:
                break
            if start + len(raw) > size:
                break  # grown: reported below
            lines = raw.count(b"\n")
            documents = _count_block(raw, jsonl) if count else None
            yield _Block(path, number, start, len(raw), None, jsonl, field, errors, documents)
            number += lines
            start += len(raw)
        if start != size or os.fstat(handle.fileno()).st_size != size:
            raise CorpusError(f"{path}: file changed while it was being read")


def _mappable(path: str) -> bool:
    return path != "-" and not path.endswith(".gz") and os.path.isfile(path)


def _blocks(paths: Sequence[str], field: str, errors: str, count: bool = False,
            workers: int = 1) -> Iterator[_Block]:
    """The blocks of each file, in order; ``count``: with their number of documents;
    ``workers``: how many will encode them (it sets the size of the last blocks)."""
    sizes = [os.path.getsize(path) if _mappable(path) else None for path in paths]
    for i, path in enumerate(paths):
        jsonl = _is_jsonl(path)
        if sizes[i] is not None:
            later = None if None in sizes[i + 1:] else sum(sizes[i + 1:])
            yield from _file_blocks(path, jsonl, field, errors, count, later, workers)
            continue
        for number, raw in _read_blocks(path):
            yield _Block(path, number, 0, len(raw), raw, jsonl, field, errors,
                         _count_block(raw, jsonl) if count else None)


def _document_batches(paths: Sequence[str], field: str, errors: str) -> Iterator[Tuple[List[bytes], int]]:
    """``(documents, input bytes)`` for each block of each file, in order, read in this thread."""
    for block in _blocks(paths, field, errors):
        data, offsets = block.prepare()
        bounds = offsets.tolist()
        yield [data[a:b] for a, b in zip(bounds, bounds[1:])], block.size


# -- shards: the unit of work of every training pass ------------------------------
#
# A training pass is a map over shards (see bytepiece.engine). A shard is a
# small picklable description: a byte range of a file cut at line boundaries,
# a whole compressed file, or a batch of texts held in the shard itself.

#: Default bytes per shard of a file.
SHARD_BYTES = 4 << 20
_KINDS = ("text", "jsonl", "texts")


class Shard(NamedTuple):
    """Part of a training corpus; picklable.

    ``kind="text"``: the lines (newline kept) of bytes ``[start, end)`` of
    ``path`` (``end=-1``: to the end; ``.gz`` files are one shard each);
    ``kind="jsonl"``: ``record[field]`` of the JSON Lines records there;
    ``kind="texts"``: the strings of ``texts`` (``end`` is their UTF-8 size).
    ``number`` is the line number at ``start`` and ``name`` how error
    messages call the file (its path when empty).
    """

    path: str
    start: int
    end: int
    field: str = "text"
    errors: str = "strict"
    kind: str = "text"
    number: int = 1
    name: str = ""
    texts: Optional[Tuple[str, ...]] = None

    @property
    def size(self) -> int:
        """Bytes of input this shard covers (0 when unknown: a whole ``.gz`` file)."""
        return max(0, self.end - self.start)


def plan_shards(paths: Sequence[str], shard_bytes: int = SHARD_BYTES, field: str = "text",
                errors: str = "strict", names: Optional[Sequence[str]] = None) -> List[Shard]:
    """Cut regular files into shards of about ``shard_bytes`` bytes ending at a newline.

    ``.jsonl`` files (``.jsonl.gz`` too) give records' ``field``, other files a
    text per line. A ``.gz`` file is one shard. ``names``: how error messages
    call each file (default: its path).
    """
    if shard_bytes < 1:
        raise ValueError(f"shard_bytes must be at least 1, got {shard_bytes}")
    shards: List[Shard] = []
    for i, path in enumerate(paths):
        path = os.fspath(path)
        name = names[i] if names is not None else ""
        _check_input(path)
        jsonl = _is_jsonl(path)
        kind = "jsonl" if jsonl else "text"
        if not _mappable(path):
            shards.append(Shard(path, 0, -1, field, errors, kind, 1, name))
            continue
        # Read, not mapped: the cuts of a file larger than memory must not
        # count its pages in the resident set; one block is held at a time.
        offset = 0
        for number, raw in _read_blocks(path, shard_bytes):
            shards.append(Shard(path, offset, offset + len(raw), field, errors, kind, number, name))
            offset += len(raw)
    return shards


def shard_texts(shard: Shard) -> Iterator[str]:
    """The texts of a shard, as :class:`Corpus` yields them for the whole file."""
    for texts in shard_text_blocks(shard):
        if texts and isinstance(texts[0], bytes):
            yield from (line.decode("utf-8") for line in texts)  # type: ignore[union-attr]
        else:
            yield from texts  # type: ignore[misc]


def shard_text_blocks(shard: Shard, plain_lines: int = 0) -> Iterator[Union[List[str], List[bytes]]]:
    """The texts of a shard a block (about 1 MB) at a time.

    With ``plain_lines > 0``, a block of a text file that is already NFC UTF-8
    with ``\n`` line ends and no line over ``plain_lines`` bytes comes as its
    lines in ``bytes`` (newline kept), not decoded: the common case, where
    normalizing each line would give the line back.
    """
    if shard.kind == "texts":
        texts = list(shard.texts or ())
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must yield str, got {type(text).__name__}")
        yield texts
        return
    if shard.kind not in _KINDS:
        raise ValueError(f"unknown shard kind {shard.kind!r}")
    from . import _core

    name = shard.name or shard.path
    try:
        # read in blocks of _BLOCK bytes: a shard's text is never held whole
        for number, raw in _read_blocks(shard.path, None, shard.start, shard.end, shard.number):
            if shard.kind == "jsonl":
                yield [text for _where, text in _jsonl_texts(raw, name, number, shard.errors, shard.field)]
                continue
            if plain_lines > 0 and _core.is_plain_nfc_utf8(raw):
                lines = raw.splitlines(keepends=True)  # \n only: no \r in a plain block
                if max(map(len, lines), default=0) <= plain_lines:
                    yield lines
                    continue
            text = _decode_block(raw, name, number, shard.errors)
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            yield _LINE.findall(text)
    except CorpusError as exc:
        if name == shard.path:
            raise
        raise CorpusError(str(exc).replace(shard.path, name)) from None


def check_corpus(corpus: object) -> None:
    """Raise ``TypeError`` when ``corpus`` is a single text instead of a collection of texts."""
    if isinstance(corpus, (str, bytes, bytearray, memoryview)):
        raise TypeError(
            f"expected a list of texts (or another iterable of them), got a single {type(corpus).__name__}; "
            "wrap one text in a list, and pass a file as pathlib.Path(...) or "
            "bytepiece.inputs.Corpus([...])"
        )


def _is_dataset(corpus: object) -> bool:
    module = type(corpus).__module__ or ""
    return module.split(".")[0] == "datasets" and hasattr(corpus, "column_names")


def _utf8_size(texts: Sequence[str]) -> int:
    return sum(len(t.encode("utf-8", "surrogatepass")) if isinstance(t, str) else 0 for t in texts)


def _text_batches(texts: Iterator[str], shard_bytes: int) -> Iterator[Shard]:
    """Shards of kind ``texts`` of about ``shard_bytes`` characters each."""
    batch: List[str] = []
    size = 0
    for text in texts:
        batch.append(text)
        size += len(text) if isinstance(text, str) else 1
        if size >= shard_bytes:
            yield Shard("", 0, _utf8_size(batch), kind="texts", texts=tuple(batch))
            batch, size = [], 0
    if batch:
        yield Shard("", 0, _utf8_size(batch), kind="texts", texts=tuple(batch))


class TrainingCorpus:
    """Whatever a trainer is given, as shards that can be read again on every pass.

    * ``Corpus`` (file paths with a JSONL field) or ``os.PathLike`` paths (one,
      or a list of them): regular files are cut into byte ranges; standard
      input (``-``), named pipes and other streams are first copied to a
      temporary file, since they can be read only once.
    * A Hugging Face ``datasets.Dataset`` or ``IterableDataset``: the strings
      of column ``text_column`` (default ``"text"``), read again on each pass.
    * A one-shot iterator or generator: consumed once, its texts copied to a
      temporary JSON Lines file that is read on each pass.
    * Any other iterable of ``str`` (a list, or an object whose ``__iter__``
      starts over): batches of its texts on each pass.

    A single ``str`` is refused (:func:`check_corpus`). Temporary files live
    in ``tmpdir`` (default: the system's) and are removed by :meth:`close`.
    """

    def __init__(self, corpus: object, text_column: Optional[str] = None, shard_bytes: int = SHARD_BYTES,
                 tmpdir: Optional[str] = None) -> None:
        check_corpus(corpus)
        self.shard_bytes = int(shard_bytes)
        if self.shard_bytes < 1:
            raise ValueError(f"shard_bytes must be at least 1, got {shard_bytes}")
        self._tmpdir = tmpdir
        self._workdir: Optional[str] = None
        self._files: Optional[List[Shard]] = None
        self._texts: Optional[object] = None
        self._column: Optional[str] = None
        if text_column is not None and not _is_dataset(corpus):
            raise TypeError("text_column applies to a datasets.Dataset or IterableDataset only")
        try:
            self._resolve(corpus, text_column)
        except BaseException:
            self.close()
            raise

    # -- what the corpus is ---------------------------------------------------

    def _resolve(self, corpus: object, text_column: Optional[str]) -> None:
        if isinstance(corpus, Corpus):
            self._plan(corpus.paths, corpus.field, corpus.errors)
        elif isinstance(corpus, os.PathLike):
            self._plan([os.fspath(corpus)], "text", "strict")
        elif (isinstance(corpus, (list, tuple)) and corpus
              and all(isinstance(p, os.PathLike) for p in corpus)):
            self._plan([os.fspath(p) for p in corpus], "text", "strict")
        elif _is_dataset(corpus):
            column = "text" if text_column is None else text_column
            names = corpus.column_names  # type: ignore[attr-defined]
            if names is not None and column not in names:
                raise ValueError(f"the dataset has no column {column!r} (columns: {', '.join(names)}); "
                                 "name the one holding the texts with text_column=")
            self._texts, self._column = corpus, column
        elif iter(corpus) is corpus:  # type: ignore[call-overload]
            self._spill_texts(corpus)  # type: ignore[arg-type]
        else:
            self._texts = corpus

    def _workspace(self) -> str:
        if self._workdir is None:
            import tempfile

            self._workdir = tempfile.mkdtemp(prefix="bytepiece-train-", dir=self._tmpdir)
        return self._workdir

    def _plan(self, paths: Sequence[str], field: str, errors: str) -> None:
        import shutil
        import stat

        local: List[str] = []
        names: List[str] = []
        for path in paths:
            path = os.fspath(path)
            _check_input(path)
            streamed = path == "-" or not stat.S_ISREG(os.stat(path).st_mode)
            if streamed:  # read once: keep a copy to read on every pass
                base = os.path.basename(path) if path != "-" else "stdin.txt"
                copy = os.path.join(self._workspace(), f"{len(local)}-{base}")
                source = sys.stdin.buffer if path == "-" else open(path, "rb")
                try:
                    with open(copy, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                finally:
                    if path != "-":
                        source.close()
                local.append(copy)
            else:
                local.append(path)
            names.append(path if streamed else "")
        self._files = plan_shards(local, self.shard_bytes, field, errors, names)

    def _spill_texts(self, texts: Iterator[object]) -> None:
        path = os.path.join(self._workspace(), "texts.jsonl")
        with open(path, "w", encoding="utf-8", newline="\n") as out:
            for number, text in enumerate(texts):
                if not isinstance(text, str):
                    raise TypeError(f"texts must yield str, got {type(text).__name__} (text {number})")
                try:
                    out.write(json.dumps({"text": text}, ensure_ascii=False))
                except UnicodeEncodeError as exc:
                    raise ValueError(f"text {number} contains a lone surrogate at index {exc.start}; "
                                     "it cannot be encoded as UTF-8") from None
                out.write("\n")
        self._files = plan_shards([path], self.shard_bytes, "text", "strict")

    # -- reading ---------------------------------------------------------------

    @property
    def size(self) -> Optional[int]:
        """Bytes of input when known before reading (files), else ``None``."""
        if self._files is None or any(s.end < 0 for s in self._files):
            return None
        return sum(s.size for s in self._files)

    def shards(self) -> Iterator[Shard]:
        """The shards of the corpus, afresh (texts of an iterable are read again)."""
        if self._files is not None:
            return iter(self._files)
        if self._column is not None:
            return _text_batches(self._dataset_texts(), self.shard_bytes)
        return _text_batches(iter(self._texts), self.shard_bytes)  # type: ignore[call-overload]

    def _dataset_texts(self) -> Iterator[str]:
        dataset = self._texts
        column = self._column
        if hasattr(dataset, "select_columns"):
            dataset = dataset.select_columns([column])  # type: ignore[attr-defined]
        for batch in dataset.iter(batch_size=1000):  # type: ignore[attr-defined]
            for text in batch[column]:
                if not isinstance(text, str):
                    raise TypeError(f"column {column!r} must hold str, got {type(text).__name__}")
                yield text

    def close(self) -> None:
        """Remove the temporary files (idempotent)."""
        if self._workdir is not None:
            import shutil

            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "TrainingCorpus":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
