"""Opening an input video and describing it: streams, rate, VFR, colour, rotation, audio."""

from __future__ import annotations

import heapq
import logging
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from itertools import islice, takewhile
from pathlib import Path
from typing import Iterator

import av

from ..errors import InputError
from .colour import PRIMARIES_NAMES, RANGE_NAMES, SPACE_NAMES, TRC_NAMES, Colour, source_colour
from .orientation import orientation_op, parse_display_matrix, swaps_axes

log = logging.getLogger(__name__)

_SIDE_DATA = av.sidedata.sidedata.Type
_DISPLAYMATRIX = _SIDE_DATA.DISPLAYMATRIX


def _unknown_side_data(cls, value):
    """A frame side-data type newer than PyAV's list: FFmpeg 8 attaches EXIF (type 31) to every
    JPEG or TIFF frame that has it, and listing a frame's side data then raised ValueError (an
    internal error on any camera photo). It becomes a member of its own, which nothing reads."""
    if not isinstance(value, int):
        return None
    member = object.__new__(cls)
    member._name_, member._value_ = f"TYPE_{value}", value
    return cls._value2member_map_.setdefault(value, member)


_SIDE_DATA._missing_ = classmethod(_unknown_side_data)


def open_input(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a media file for reading, turning every failure into a one-line InputError."""
    p = Path(path)
    if str(path) == "-" and not p.exists():
        raise InputError("cannot read a video from standard input ('-'): it is opened more than once (to probe "
                         "it, then for its frames, sound and tags); save it to a file first, or pipe raw frames "
                         "through 'videoinv filter'")
    if not p.exists():
        raise InputError(f"input not found: {p}")
    if p.is_dir():
        raise InputError(f"input is a directory, not a video file: {p}")
    try:
        container = av.open(str(p), metadata_errors="ignore")
        if container.format.name == "image2":
            container = _as_picture_pipe(container, p)
        return container
    except PermissionError:
        raise InputError(f"cannot read {p}: permission denied") from None
    except av.error.FFmpegError as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(f"cannot read {p}: {reason}; is it a complete, valid video file?") from None


def _as_picture_pipe(container, path: Path):
    """FFmpeg reads some pictures (many a plain JPEG) with its image-sequence demuxer, which cannot
    go back to the start once read: after the probe's first decode the picture had no frames
    left ("no frames to write"). The picture's own demuxer (jpeg_pipe, ...) can."""
    codec = container.streams.video[0].codec_context.name if container.streams.video else None
    name = {"mjpeg": "jpeg_pipe"}.get(codec, f"{codec}_pipe")
    if name not in av.formats_available:
        return container
    container.close()
    return av.open(str(path), format=name, metadata_errors="ignore")


def cover_stream(container: av.container.InputContainer):
    """The cover picture's stream (a one-packet video stream marked attached_pic), or None."""
    return next((s for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic), None)


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The real video stream: cover art and thumbnails are skipped, and of several the first
    marked default (a Matroska file keeps no cover-art mark: its picture may come first)."""
    skip = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails
    real = [s for s in container.streams.video if not s.disposition & skip]
    if not real:
        raise InputError(f"{container.name} has no video stream")
    return next((s for s in real if s.disposition & av.stream.Disposition.default), real[0])


def frame_orientation(frame: av.VideoFrame) -> str:
    """The upright transform for a decoded frame's display matrix (see orientation.py)."""
    for sd in frame.side_data:
        if sd.type == _DISPLAYMATRIX:
            return orientation_op(parse_display_matrix(bytes(sd)))
    return "none"


@dataclass
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration: float | None
    bit_rate: int | None
    language: str | None


@dataclass
class VideoInfo:
    """What ``videoinv probe`` prints; sizes are upright (after rotation)."""

    path: str
    format: str
    size_bytes: int
    bit_rate: int | None
    duration: float | None
    stream_index: int
    codec: str
    profile: str | None
    pix_fmt: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    orientation: str
    fps: Fraction
    avg_fps: Fraction | None
    time_base: Fraction
    start_time: float
    frame_count: int
    frame_count_exact: bool
    missing_frames: int  # frames the file's index lists but its data no longer holds (truncated)
    intact_until: float | None  # with missing frames: the time (from the start) where data ends
    vfr: bool | None
    colour: Colour
    colour_tags: dict
    audio: list[AudioInfo] = field(default_factory=list)
    # what goes with the video into an output that can hold it: subtitle streams (index, codec,
    # language), attached files (index, filename, mimetype, size) and a cover picture (index,
    # codec, width, height, and its file name where Matroska holds it as an attached file)
    subtitles: list[dict] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)
    cover: dict | None = None

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("fps", "avg_fps", "time_base"):
            v = getattr(self, key)
            d[key] = None if v is None else f"{v.numerator}/{v.denominator}"
        d["fps_float"] = float(self.fps)
        d["colour"] = {"matrix": self.colour.matrix, "range": self.colour.range,
                       "primaries": PRIMARIES_NAMES.get(self.colour.primaries, self.colour.primaries),
                       "transfer": TRC_NAMES.get(self.colour.trc, self.colour.trc),
                       "assumed": list(self.colour.assumed)}
        d["has_audio"] = self.has_audio
        return d


def _rate(value) -> Fraction | None:
    if not value:
        return None
    return Fraction(value.numerator, value.denominator)


def scan_video_packets(container, stream, until_pts: int | None = None,
                       until_count: int | None = None) -> list[int]:
    """Sorted presentation timestamps of the video packets, by demuxing only (no decoding).

    Reads the whole stream, or stops once every frame with ``pts < until_pts`` (or the first
    ``until_count`` frames in presentation order, and the one after them) is known (see
    :func:`presentation_pts`). The container is rewound to the start afterwards.
    """
    pts: Iterator[int] = presentation_pts(container, stream)
    if until_count is not None:
        pts = islice(pts, until_count + 1)
    if until_pts is not None:
        pts = takewhile(lambda p: p < until_pts, pts)
    table = list(pts)
    container.seek(0, stream=stream)
    return table


def presentation_pts(container, stream) -> Iterator[int]:
    """The video packets' presentation timestamps in presentation order, read as they are
    demuxed (no decoding): each is given once no later packet can come before it (packets come
    in decode order, and a packet's pts is never below its dts)."""
    waiting: list[int] = []
    for packet in container.demux(stream):
        if packet.pts is None or not packet.size:
            continue
        heapq.heappush(waiting, packet.pts)
        dts = packet.dts if packet.dts is not None else packet.pts
        while waiting and waiting[0] < dts:
            yield heapq.heappop(waiting)
    while waiting:
        yield heapq.heappop(waiting)


def missing_packets(container, stream) -> list[int]:
    """Timestamps of the stream's indexed packets that lie (partly) beyond the end of the file:
    a file cut short keeps its index (MP4 with the index at the front) but loses the data."""
    size = container.size
    entries = stream.index_entries or []
    if not size:
        return []
    return [e.timestamp for e in entries if e.pos >= 0 and e.pos + e.size > size]


def _is_picture(container) -> bool:
    """A still picture (.png, .jpg, .webp, .tif, .bmp) read by an image demuxer."""
    return container.format.name.endswith("_pipe") or container.format.name == "image2"


def is_vfr_from_pts(pts: list[int]) -> bool:
    """Whether frame intervals differ by more than 1% (and one tick) from each other."""
    if len(pts) < 3:
        return False
    steps = [b - a for a, b in zip(pts, pts[1:])]
    lo, hi = min(steps), max(steps)
    return hi - lo > max(1, 0.01 * hi)


def describe(path: str | os.PathLike, scan: bool = False) -> VideoInfo:
    """Probe a video. With ``scan`` every packet is read (not decoded) to count frames exactly
    and decide VFR from the timestamps; otherwise both come from the headers."""
    with open_input(path) as container:
        return describe_container(container, path, scan)


def describe_container(container, path, scan: bool = False) -> VideoInfo:
    stream = video_stream(container)
    cc = stream.codec_context
    pix_fmt = cc.format.name if cc.format else (cc.pix_fmt or "unknown")
    colour = source_colour(cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc,
                           pix_fmt, cc.width, cc.height)
    orientation = "none"
    try:
        first = next(container.decode(stream), None)
        if first is not None:
            orientation = frame_orientation(first)
        container.seek(0, stream=stream)
    except av.error.FFmpegError as err:
        kind = "picture" if _is_picture(container) else "video"
        reason = getattr(err, "strerror", None) or str(err)  # not FFmpeg's errno and function name
        raise InputError(f"cannot decode {path}: {reason}; is it a complete, valid {kind} file?") from None
    tb = Fraction(stream.time_base.numerator, stream.time_base.denominator)
    fps = _rate(stream.guessed_rate) or _rate(stream.average_rate) or Fraction(25)
    avg = _rate(stream.average_rate)
    duration = container.duration / 1e6 if container.duration else None
    vduration = float(stream.duration * tb) if stream.duration else duration
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    missing = missing_packets(container, stream)
    if scan or _is_picture(container):  # a picture file has no duration to count frames from: it has one
        pts = scan_video_packets(container, stream)
        count, exact, vfr = len(pts), True, is_vfr_from_pts(pts)
        if missing and stream.frames:  # cut short: the index counts the frames (the missing ones too)
            count = stream.frames
    else:
        exact = bool(stream.frames)
        count = stream.frames or (round(vduration * float(avg or fps)) if vduration else 0)
        vfr = None if avg is None else abs(float(avg) - float(fps)) > 0.01 * float(fps)
    w, h = (cc.height, cc.width) if swaps_axes(orientation) else (cc.width, cc.height)
    audio = []
    for a in container.streams.audio:
        acc = a.codec_context
        atb = a.time_base
        audio.append(AudioInfo(
            index=a.index, codec=acc.name, sample_rate=acc.sample_rate, channels=acc.channels,
            layout=acc.layout.name if acc.layout else "", bit_rate=acc.bit_rate or None,
            duration=float(a.duration * atb) if a.duration and atb else None,
            language=a.language))
    subtitles = [{"index": t.index, "codec": t.codec_context.name, "language": t.language}
                 for t in container.streams.subtitles]
    attachments = [{"index": t.index, "filename": t.name or t.metadata.get("filename"),
                    "mimetype": t.mimetype or t.metadata.get("mimetype"), "size": len(t.data)}
                   for t in container.streams if t.type == "attachment"]
    pic = cover_stream(container)
    cover = None if pic is None else {"index": pic.index, "codec": pic.codec_context.name,
                                      "width": pic.codec_context.width, "height": pic.codec_context.height,
                                      "filename": pic.metadata.get("filename")}
    return VideoInfo(
        path=str(path), format=container.format.name, size_bytes=container.size,
        bit_rate=container.bit_rate or None, duration=duration, stream_index=stream.index,
        codec=cc.name, profile=cc.profile, pix_fmt=pix_fmt, width=w, height=h,
        coded_width=cc.width, coded_height=cc.height, orientation=orientation, fps=fps,
        avg_fps=avg, time_base=tb, start_time=start, frame_count=count,
        frame_count_exact=exact, missing_frames=len(missing),
        intact_until=float(min(missing) * tb) - start if missing else None, vfr=vfr, colour=colour,
        colour_tags={"matrix": SPACE_NAMES.get(cc.colorspace, str(cc.colorspace)),
                     "range": RANGE_NAMES.get(cc.color_range, str(cc.color_range)),
                     "primaries": PRIMARIES_NAMES.get(cc.color_primaries, str(cc.color_primaries)),
                     "transfer": TRC_NAMES.get(cc.color_trc, str(cc.color_trc))},
        audio=audio, subtitles=subtitles, attachments=attachments, cover=cover)
