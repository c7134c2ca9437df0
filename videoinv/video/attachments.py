"""Files attached to a Matroska source (the fonts its styled subtitles are drawn with, mostly).

They are copied into an output whose file type holds attachments (Matroska); any other type
leaves them out with a warning, as a subtitle stream it cannot hold is left out.
"""

from __future__ import annotations

import logging
import os

import av

log = logging.getLogger(__name__)

_HOLDS_ATTACHMENTS = {"matroska"}  # muxer names (WebM's muxer refuses them)


def read_attachments(path: str | os.PathLike) -> list[tuple[str, str, bytes]]:
    """(file name, MIME type, bytes) of each file attached to ``path``; none where it cannot be
    opened as a file (e.g. a raw pipe)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as source:
            return [(s.name or s.metadata.get("filename") or f"attachment-{s.index}",
                     s.mimetype or s.metadata.get("mimetype") or "application/octet-stream", bytes(s.data))
                    for s in source.streams if s.type == "attachment"]
    except (av.error.FFmpegError, OSError):
        return []


def keeps_attachments(path: str | os.PathLike, format_name: str) -> bool:
    """Whether an output of muxer ``format_name`` gets the attachments of ``path``: True where it
    has some and the type holds them; where it cannot, a warning names them."""
    files = read_attachments(path)
    if not files:
        return False
    if format_name in _HOLDS_ATTACHMENTS:
        return True
    log.warning("%s has attached files (%s) that the output's file type (%s) cannot hold: left out "
                "(a .mkv keeps them)", path, ", ".join(name for name, _, _ in files), format_name)
    return False


def copy_attachments(path: str | os.PathLike, output: av.container.OutputContainer) -> None:
    """Attach the files of ``path`` to ``output`` (before its header is written), where its file
    type holds them."""
    if keeps_attachments(path, output.format.name):
        for name, mimetype, data in read_attachments(path):
            output.add_attachment(name, mimetype, data)
