"""Streaming video reader: decoded, upright, colour-correct RGB frames one at a time.

Memory is bounded whatever the video's length: frames are decoded on demand (the decoder's own
threads hold a few frames). Frame numbers (``FrameRecord.index``) are exact when reading from the
start. After a seek they are derived from the timestamp and the frame rate for constant-rate
video, and from a packet scan (demuxing, no decoding) for variable-rate video, so they stay exact
there too.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av
import numpy as np

from ..errors import InputError, VideoinvError
from . import helpers
from .frame import FrameRecord
from .orientation import apply_orientation
from .probe import describe_container, open_input, scan_video_packets, video_stream
from .regions import RegionConverter
from .timing import TimePoint

log = logging.getLogger(__name__)

_SWS_FLAGS = (av.video.reformatter.Interpolation.BILINEAR | av.video.reformatter.Interpolation.FULL_CHR_H_INT
              | av.video.reformatter.Interpolation.ACCURATE_RND)


class Reader:
    """Iterate over a video's frames as :class:`FrameRecord` (``[H,W,3]`` uint8 RGB).

    ``start``/``end``: :class:`TimePoint` or text (``"12.5"``, ``"1:02"``, ``"150f"``); ``end``
    is exclusive. Times are relative to the video stream's first timestamp.
    ``salvage``: skip packets that fail to decode instead of raising (damaged files).
    ``threads``: decode on FFmpeg's frame/slice threads (unless ``video.helpers`` has them off
    when the reader opens).
    """

    def __init__(self, path: str | os.PathLike, start=None, end=None, threads: bool = True,
                 salvage: bool = False):
        self.path = str(path)
        self.start = TimePoint.parse(start)
        self.end = TimePoint.parse(end)
        self.salvage = salvage
        self.decode_start: int | None = None  # see _seek
        self.container = open_input(path)
        try:
            self.stream = video_stream(self.container)
            if threads and helpers.on():
                self.stream.thread_type = "AUTO"
            self.info = describe_container(self.container, path)
        except BaseException:
            self.container.close()
            raise
        self._tb = self.info.time_base
        self._t0 = round(self.info.start_time / self._tb) if self.info.start_time else 0
        self._step = 1 / (self.info.fps * self._tb)  # frame interval in ticks (CFR)
        colour = self.info.colour
        # converters kept across frames: a frame's own (``frame.reformat``) sets up swscale
        # afresh each time, and FFmpeg 8 then starts and joins two threads per frame
        self._converters = threading.local()
        if colour.is_hdr:
            log.warning("%s is HDR (%s); it is converted to 8-bit RGB without tone mapping",
                        self.path, colour.describe())
        if colour.matrix == "rgb":
            self._convert = {}
        else:
            self._convert = dict(src_colorspace=colour.sws_matrix, src_color_range=colour.range_tag,
                                 dst_color_range=2, interpolation=_SWS_FLAGS)
        self.regions = None  # converts parts of frames (8-bit YUV), for records' region()
        if RegionConverter.supports(self.stream.codec_context.pix_fmt or "", colour.matrix):
            # the converter reaches the whole-frame conversion through a weak reference: with the
            # bound method itself, reader and converter made a cycle, and a finished reader with
            # its container and decoder (about 100 MB for a 720p H.264 stream) waited for Python's
            # cycle collector, once for every video a process edits (the records that use the
            # converter hold the reader themselves)
            whole = weakref.WeakMethod(self.to_rgb)
            self.regions = RegionConverter(colour.matrix, colour.range, self.info.orientation,
                                           lambda frame: whole()(frame))
        if {"matrix", "range"} & set(colour.assumed):  # what decoding depends on (untagged primaries and
            # transfer only tag the output; a picture's RGB, or JPEG's BT.601 full range, is implied)
            log.info("%s: colour tags missing, assuming %s", self.path, colour.describe())
        if self.info.missing_frames:
            self._check_truncation()

    def _check_truncation(self) -> None:
        """A file cut short: refuse (before any work) unless the range stays in the intact part
        or the user asked to salvage what is there."""
        info = self.info
        intact = info.frame_count - info.missing_frames
        end = self.end
        inside = end is not None and (
            (end.frame is not None and end.frame <= intact)
            or (end.seconds is not None and info.intact_until is not None and end.seconds <= info.intact_until))
        if self.salvage:
            log.warning("%s is truncated: the last %d of %d frames are missing; keeping the rest",
                        self.path, info.missing_frames, info.frame_count)
        elif not inside:
            self.container.close()
            raise InputError(f"{self.path} is truncated: its last {info.missing_frames} of {info.frame_count} "
                             "frames are missing (the file ends early); --salvage keeps the frames that "
                             "are there")

    # -- context management ---------------------------------------------------------------------
    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- public iteration -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[FrameRecord]:
        return self.frames()

    def frames(self, rgb: bool = True) -> Iterator[FrameRecord]:
        """Decode the selected range and yield one record per frame, in presentation order.

        With ``rgb=False`` the RGB image is made on first use of ``record.image`` (a consumer
        that only passes frames on never pays for the conversion)."""
        threshold, base = self._seek()
        end_pts = self._pts_from_seconds(self.end.seconds) if self.end and self.end.seconds is not None else None
        end_index = self.end.frame if self.end else None
        last_pts = None
        count = 0
        for frame in self._decoded():
            pts = frame.pts if frame.pts is not None else self._next_pts(last_pts)
            if pts < threshold:
                continue
            if base is None:  # constant rate after a seek: number the first frame by its time
                base = max(0, round((pts - self._t0) / self._step))
            index = base + count
            if (end_index is not None and index >= end_index) or (end_pts is not None and pts >= end_pts):
                break
            last_pts = pts
            count += 1
            record = FrameRecord(index=index, pts=pts, time_base=self._tb, source=frame, to_rgb=self.to_rgb,
                                 regions=self.regions, size=(self.info.width, self.info.height),
                                 duration=frame.duration or None)
            yield record.load() if rgb else record

    def batches(self, size: int) -> Iterator[list[FrameRecord]]:
        """The same frames in lists of ``size`` (the last one may be shorter)."""
        batch: list[FrameRecord] = []
        for record in self.frames():
            batch.append(record)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    def to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """``[H,W,3]`` uint8 RGB of a decoded frame, with the stream's colour rule and rotation."""
        converter = getattr(self._converters, "sws", None)
        if converter is None:  # one per thread that converts (a converter is not thread-safe)
            converter = self._converters.sws = av.video.reformatter.VideoReformatter()
        rgb = converter.reformat(frame, format="rgb24", threads=helpers.swscale_threads(),
                                 **self._convert).to_ndarray()
        return apply_orientation(rgb, self.info.orientation)

    # -- internals ------------------------------------------------------------------------------
    def _decoded(self) -> Iterator[av.VideoFrame]:
        skipped = 0
        demuxed = self.container.demux(self.stream)
        while True:
            try:
                packet = next(demuxed)
            except StopIteration:
                break
            except av.error.FFmpegError as err:
                raise InputError(f"reading {self.path} failed ({err.strerror}); "
                                 "the file looks truncated or damaged") from None
            try:
                yield from packet.decode()
            except av.error.FFmpegError as err:
                if not self.salvage:
                    raise InputError(
                        f"decoding {self.path} failed near {self._describe_packet(packet)} "
                        f"({err.strerror}); the file looks truncated or damaged "
                        "(--salvage skips unreadable packets)") from None
                skipped += 1
        if skipped:
            log.warning("%s: skipped %d undecodable packet(s)", self.path, skipped)

    def _describe_packet(self, packet) -> str:
        ts = packet.pts if packet.pts is not None else packet.dts
        return "the end" if ts is None else f"{float((ts - self._t0) * self._tb):.2f}s"

    def _next_pts(self, last_pts: int | None) -> int:
        return self._t0 if last_pts is None else last_pts + max(1, round(self._step))

    def _pts_from_seconds(self, seconds: Fraction) -> int:
        return self._t0 + int(seconds / self._tb)

    def _seek(self) -> tuple[float, int | None]:
        """Seek to the start point. Returns the first pts to keep and the frame number of the
        first kept frame (None: derive it from that frame's timestamp, constant rate only)."""
        start = self.start
        self.decode_start = None  # the pts of the first frame decoded after a seek (None: from the start)
        if start is None or start.frame == 0 or start.seconds == 0:
            self.container.seek(0, stream=self.stream)  # also when iterating a second time
            return -float("inf"), 0
        if not self.info.vfr:
            n_target = start.frame * self._step if start.frame is not None else start.seconds / self._tb
            target = self._t0 + round(n_target)
            # half a frame early, exactly: where a tick is a whole frame (AVI's time base is
            # 1/rate) a whole tick took the frame before too
            threshold = target - self._step / 2
            self._seek_before(math.floor(threshold))
            return threshold, None
        # variable rate: a packet scan maps frame numbers and times exactly
        if start.frame is not None:
            table = scan_video_packets(self.container, self.stream, until_count=start.frame)
            if start.frame >= len(table):
                raise VideoinvError(f"--start {start} is past the end of {self.path} ({len(table)} frames)")
            target, base = table[start.frame], start.frame
        else:
            target = self._pts_from_seconds(start.seconds)
            table = scan_video_packets(self.container, self.stream, until_pts=target)
            base = bisect.bisect_left(table, target)
        self._seek_before(target)
        return target, base

    def _seek_before(self, pts: int) -> None:
        """Seek so that decoding starts at or before ``pts``, and set ``decode_start``. A demuxer
        without an index (MPEG-TS) lands on a packet before ``pts``, but the decoder starts at the
        next keyframe, which can lie after it: a range then began at a later frame, or found none.
        So the first picture decoded is looked at, and the seek goes back 1, 2, 4 ... seconds
        further until it comes at or before ``pts`` (or the seek reaches the start: None)."""
        back, self.decode_start = 0, None
        while True:
            at = pts - back
            self.container.seek(max(0, at), stream=self.stream, backward=True)
            if at <= self._t0:
                return
            first = next(self._decoded(), None)
            if first is not None and (first.pts is None or first.pts <= pts):
                self.container.seek(max(0, at), stream=self.stream, backward=True)  # to decode it again
                self.decode_start = first.pts
                return
            back = max(2 * back, round(1 / self._tb))


@dataclass
class FrameSpan:
    """A ``--start``/``--end`` range as the reader takes it, for the ffmpeg program
    (``filter-file``), which then keeps the same frames as ``edit``. Positions count frames in
    presentation order from the first; ``times`` are the presentation times of frames 0 to at
    least ``stop``, in seconds from the file's start as the program counts ``-ss`` (the
    container's start time)."""

    first: int  # the first frame kept
    stop: int | None  # the frame after the last kept (None: to the end of the video)
    key: int  # where decoding starts (a keyframe at or before ``first``)
    times: list[Fraction]

    def decode_options(self) -> tuple[dict[str, str], str]:
        """The decoder's input options and a ``select`` expression. Its seek goes to just before
        the keyframe and the frames are then counted: the program's own seek to a time lands on
        the next keyframe where the demuxer has no index (MPEG-TS: 0.34 s gave the frame at 0.5 s)
        and its timestamps there are counted from other origins; the reader steps back instead."""
        options = {"ss": f"{float(max(Fraction(0), self.times[self.key] - Fraction(1, 1000))):.6f}"} if self.key else {}
        if self.stop is not None:  # only to bound the decoding: a second past the end
            options["to"] = f"{float(self.times[self.stop] + 1):.6f}"
        first = self.first - self.key
        return options, f"gte(n,{first})" if self.stop is None else f"between(n,{first},{self.stop - self.key - 1})"

    def sound_window(self) -> dict[str, str]:
        """Input options ``ss``/``to`` for the sound, subtitles and chapters: from the first frame
        kept to the end of the last."""
        window = {"ss": f"{float(self.times[self.first]):.6f}"} if self.first else {}
        if self.stop is not None:
            window["to"] = f"{float(self.times[self.stop]):.6f}"
        return window


def frame_span(path: str | os.PathLike, start, end) -> FrameSpan | None:
    """Where ``start``/``end`` (TimePoints or text) lie in ``path``, by the reader's own rules
    (it decodes from the keyframe to the first frame kept; the rest is a packet scan); None
    without a range."""
    with Reader(path, start=start, end=end, threads=False) as reader:
        if reader.start is None and reader.end is None:
            return None
        first = next(reader.frames(rgb=False), None)
        if first is None:
            raise InputError(f"no frames to write: {path} has none in the selected range")
        key_pts = reader.decode_start
        end_pts = (reader._pts_from_seconds(reader.end.seconds)
                   if reader.end is not None and reader.end.seconds is not None else None)
    with open_input(path) as container:
        stream = video_stream(container)
        tb = Fraction(stream.time_base.numerator, stream.time_base.denominator)
        origin = Fraction(container.start_time or 0, 1_000_000)  # in AV_TIME_BASE units
        if end_pts is not None:  # the reader stops at the first frame at or after it
            stop = bisect.bisect_left(scan_video_packets(container, stream, until_pts=end_pts), end_pts)
        else:
            stop = reader.end.frame if reader.end is not None else None
        table = scan_video_packets(container, stream, until_count=stop + 1) if stop is not None else \
            scan_video_packets(container, stream, until_pts=first.pts + 1)
    if stop is not None and stop >= len(table):
        stop = None
    position = bisect.bisect_left(table, first.pts)
    key = bisect.bisect_left(table, key_pts) if key_pts is not None else 0
    return FrameSpan(first=position, stop=stop, key=min(key, position), times=[pts * tb - origin for pts in table])
