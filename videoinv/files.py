"""Output files that appear whole or not at all, and that never replace an input."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError


_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}


def os_problem(err: OSError, named: bool = True) -> str | None:
    """A one-line message for the OS errors a user can fix (a full disk, a folder they may not
    write to), else None; ``named``: with the file the error names."""
    name = getattr(err, "filename", None)
    if err.errno in _NO_SPACE:
        where = f"cannot write {final_name(name)}: " if named and name else ""
        return f"{where}no space left on the device; free some space, or write the output to another disk"
    if err.errno in _NOT_ALLOWED and name:  # without a file it is some library's refusal (NVENC: EPERM)
        reason = (err.strerror or "not allowed").lower()
        if named:  # reading or writing: the error does not say which
            return f"{final_name(name)}: {reason}; check the permissions of the file and its folder"
        return f"{reason}; write the output to a folder you can write to"
    return None


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Report a full disk or a folder the user may not write to, met while writing ``path``, as
    an :class:`OutputError` naming ``path``; other errors pass unchanged."""
    try:
        yield
    except OSError as err:
        if os_problem(err) is None:
            raise
        raise OutputError(f"cannot write {path}: {os_problem(err, named=False)}") from None


def disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in _NO_SPACE


def final_name(path: str | os.PathLike) -> str:
    """The name a temporary file of :func:`atomic_output` will have (``dir/.out.x1y2.partial.mp4``
    -> ``dir/out.mp4``); any other path as it is."""
    p = Path(path)
    stem, dot, rest = p.name[1:].rpartition(".partial")
    if p.name.startswith(".") and dot and "." in stem:
        return str(p.with_name(stem.rsplit(".", 1)[0] + rest))
    return str(path)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (also through links); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_output_path(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                      overwrite: bool = False, example: str = "out.mp4") -> Path:
    """Refuse an output that is an input, a directory, in a missing folder, or (without
    ``overwrite``) an existing file. ``example`` is the file name the directory error suggests."""
    out = Path(output)
    if str(output) == "-":
        raise OutputError("cannot write to standard output ('-'): the output is written under a temporary name "
                          f"and moved into place once complete; give a file name such as {example}, or pipe raw "
                          "frames through 'videoinv filter'")
    for src in inputs:
        if src is not None and same_file(out, src):
            raise OutputError(f"output {out} is the same file as the input; choose another output name")
    if out.is_dir():
        raise OutputError(f"output {out} is a directory; give a file name such as {out / example}")
    if not out.parent.exists():
        raise OutputError(f"cannot write {out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK):  # a read-only disk, or another user's folder
        raise OutputError(f"cannot write {out}: folder {out.parent} is not writable; write the output to a "
                          "folder you can write to")
    if out.exists() and not overwrite:
        raise OutputError(f"output {out} exists; pass --overwrite (-y) to replace it")
    return out


@contextlib.contextmanager
def atomic_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                  overwrite: bool = False, example: str = "out.mp4") -> Iterator[Path]:
    """Yield a temporary path next to ``output`` (same extension); rename it to ``output`` when
    the block succeeds, delete it when the block raises (including KeyboardInterrupt)."""
    out = check_output_path(output, inputs, overwrite, example)
    with writing(out):
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=f".partial{out.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
    try:
        yield tmp
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename not in (None, str(tmp)) or (err.filename is None and err.errno not in _NO_SPACE):
            raise  # not about this file
        with writing(out):
            raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not overwrite and out.exists():
        raise OutputError(f"output {out} appeared while writing; the result is kept as {tmp}")
    os.replace(tmp, out)


def discard_atomic(cm: contextlib.AbstractContextManager, err: BaseException | None = None) -> None:
    """Leave an entered :func:`atomic_output` block as failed: its temporary file is deleted and
    nothing appears under the final name. ``err`` is what went wrong (an interrupt when None)."""
    exc = err if err is not None else KeyboardInterrupt()
    try:
        cm.__exit__(type(exc), exc, exc.__traceback__)
    except BaseException:  # noqa: BLE001 - the context manager re-raises what it was given
        pass
