"""Where outputs are written: the checks every writing command and function
makes before it starts, and the temporary files of atomic writes.

:func:`check_output` refuses, with a message naming the path as given, an
output that is one of the inputs (compared as real files: symlinks and
``./`` spellings included), a directory, a named pipe or a device, a path
whose directory is missing or not writable, and ``-`` where a file is meant.
A symlink is written through: its target gets the new content and the link
stays. :func:`atomic_write` and :func:`temporary_beside` create the
temporary file in the target's directory with the mode an ordinary
``open()`` would give (an existing file's mode is kept, a new file gets
``0o666`` less the umask), and remove it on any exception, ``KeyboardInterrupt``
included; ``bytepiece.cli`` turns SIGTERM into the same cleanup.
"""
from __future__ import annotations

import os
import secrets
import stat
from typing import Callable, Iterable, Optional, Tuple, Union

__all__ = ["check_output", "temporary_beside", "atomic_write"]

PathLike = Union[str, "os.PathLike[str]"]


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output(path: PathLike, inputs: Iterable[Optional[PathLike]] = (),
                 option: Optional[str] = None) -> str:
    """Check that ``path`` can take an output; return the real path to write.

    ``inputs`` are the files the run reads (``None`` and ``-`` are skipped);
    ``option`` names the command-line flag that gave ``path`` (then ``-`` is
    refused rather than taken as a file name). Raises ``ValueError``,
    ``IsADirectoryError``, ``FileNotFoundError`` or ``PermissionError``
    whose message starts with ``path`` as given.
    """
    name = os.fspath(path)
    if not name:
        raise ValueError(f"{option or 'output'}: empty path")
    if option and name == "-":
        raise ValueError(f"{option} -: this output cannot go to standard output; "
                         "give a file name (./- for a file named '-')")
    real = os.path.realpath(name)
    try:
        info = os.stat(real)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise PermissionError(f"{name}: cannot use as output ({exc.strerror})") from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"{name}: is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{name}: is {_kind(info.st_mode)}, not a regular file; "
                             "outputs are written to a file and renamed into place")
    directory = os.path.dirname(real)
    shown = os.path.dirname(name) or "."
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{name}: directory {shown} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: directory {shown} is not writable")
    if info is not None:
        for source in inputs:
            if source is None:
                continue
            source = os.fspath(source)
            if source == "-":
                continue
            try:
                same = os.path.samefile(source, real)
            except OSError:
                continue
            if same:
                where = "" if source == name else f" ({source})"
                raise ValueError(f"{name}: is also an input{where}; write the output elsewhere")
    return real


def temporary_beside(real: str) -> Tuple[int, str]:
    """``(fd, path)`` of a new empty file beside ``real`` (a path from
    :func:`check_output`), opened for writing, with the mode ``open(real, "w")``
    would leave: ``real``'s own mode when it exists, else ``0o666`` less the umask
    (the kernel applies it, as for ``open``)."""
    directory, base = os.path.split(real)
    try:
        keep = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        keep = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".tmp-{secrets.token_hex(4)}-{base}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise type(exc)(f"{real}: cannot write in {directory} ({exc.strerror})") from None
        if keep is not None:
            try:
                os.fchmod(fd, keep)
            except (AttributeError, OSError):
                pass
        return fd, tmp
    raise FileExistsError(f"{real}: no free temporary name in {directory}")


def atomic_write(path: PathLike, write: Callable, inputs: Iterable[Optional[PathLike]] = ()) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename.

    ``path`` is checked first (:func:`check_output`, against ``inputs``).
    An interrupted write (error, Ctrl-C, SIGTERM in the command line, crash)
    never leaves a partial file at ``path``: either the old content or the
    complete new one is there. A symlink at ``path`` keeps pointing at its
    target, which gets the new content.
    """
    real = check_output(path, inputs)
    fd, tmp = temporary_beside(real)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
