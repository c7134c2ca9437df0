"""Files attached to a Matroska source (the fonts its styled subtitles are drawn with, mostly)
and a cover picture (an MP4's attached picture, or a Matroska cover file).

They are copied into an output whose file type holds them (attachments: Matroska; a cover: MP4
and Matroska); any other type leaves them out with a warning, as a subtitle stream it cannot
hold is left out.
"""

from __future__ import annotations

import logging
import os

import av

from .probe import cover_stream

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


def kept_attachments(path: str | os.PathLike, format_name: str) -> list[tuple[str, str, bytes]]:
    """The attached files of ``path`` (as :func:`read_attachments` gives them) that an output of
    muxer ``format_name`` gets: all where the type holds them; where it cannot, none, and a
    warning names them."""
    files = read_attachments(path)
    if files and format_name not in _HOLDS_ATTACHMENTS:
        log.warning("%s has attached files (%s) that the output's file type (%s) cannot hold: left out "
                    "(a .mkv keeps them)", path, ", ".join(name for name, _, _ in files), format_name)
        return []
    return files


def copy_attachments(path: str | os.PathLike, output: av.container.OutputContainer) -> None:
    """Attach the files of ``path`` to ``output`` (before its header is written), where its file
    type holds them."""
    for name, mimetype, data in kept_attachments(path, output.format.name):
        output.add_attachment(name, mimetype, data)


# A cover picture (an MP4's, as yt-dlp's --embed-thumbnail writes it) is a one-packet video
# stream with the attached_pic disposition; Matroska keeps a cover as an attached file instead.
_COVER_FILES = {"mjpeg": ("cover.jpg", "image/jpeg"), "png": ("cover.png", "image/png")}


def read_cover(path: str | os.PathLike) -> tuple[int, bytes, tuple[str, str] | None] | None:
    """(stream index, bytes, (file name, MIME type) as Matroska names it: its attached file's
    own, else one for the codec, None for a codec it cannot hold) of the cover picture of ``path``,
    if it has one."""
    try:
        with av.open(str(path), metadata_errors="ignore") as source:
            pic = cover_stream(source)
            data = None if pic is None else next((bytes(p) for p in source.demux(pic) if p.size), None)
            if data is None:
                return None
            named = _COVER_FILES.get(pic.codec_context.name)
            if named is not None and pic.metadata.get("filename"):
                named = (pic.metadata["filename"], pic.metadata.get("mimetype") or named[1])
            return pic.index, data, named
    except (av.error.FFmpegError, OSError):
        return None


def _cover_left_out(path, format_name: str) -> None:
    log.warning("the cover picture of %s cannot be kept in the output's file type (%s): left out (a .mp4 or .mkv "
                "keeps it)", path, format_name)


def add_cover(path: str | os.PathLike, output: av.container.OutputContainer) -> av.Packet | None:
    """Give ``output`` (before its header is written) the cover picture of ``path``: as an
    attached file in Matroska, or as a cover stream in MP4, whose one packet this returns, to be
    muxed once the header is written."""
    cover = read_cover(path)
    if cover is None:
        return None
    index, data, named = cover
    fmt = output.format.name
    if fmt == "matroska" and named is not None:
        output.add_attachment(*named, data)
        return None
    if fmt != "mp4":
        _cover_left_out(path, fmt)
        return None
    with av.open(str(path), metadata_errors="ignore") as source:
        stream = output.add_stream_from_template(source.streams[index])
    stream.disposition = av.stream.Disposition.attached_pic
    packet = av.Packet(data)
    packet.stream = stream
    return packet


def cover_arguments(path: str | os.PathLike, format_name: str, folder: str, attached: int,
                    input_number: int) -> tuple[list[str], list[str]]:
    """The ffmpeg program's input and output options that keep the cover picture of ``path`` as
    :func:`add_cover` does. ``folder``: where a cover for Matroska is written to be attached,
    after the ``attached`` files already mapped; an MP4's cover is read from ``path`` opened again
    as input ``input_number``, whole (the cover packet has no time, and an input's -ss drops it)."""
    cover = read_cover(path)
    if cover is None:
        return [], []
    index, data, named = cover
    if format_name == "matroska" and named is not None:
        name, mimetype = named
        file = os.path.join(folder, os.path.basename(name) or "cover")
        with open(file, "wb") as f:
            f.write(data)
        return [], ["-attach", file, f"-metadata:s:t:{attached}", f"mimetype={mimetype}"]
    if format_name != "mp4":
        _cover_left_out(path, format_name)
        return [], []
    return ["-i", str(path)], ["-map", f"{input_number}:{index}", "-c:v:1", "copy", "-disposition:v:1", "attached_pic"]
