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
import os
import threading
import weakref
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
        if start is None or start.frame == 0 or start.seconds == 0:
            self.container.seek(0, stream=self.stream)  # also when iterating a second time
            return -float("inf"), 0
        half = max(1, round(self._step / 2))
        if not self.info.vfr:
            n_target = start.frame * self._step if start.frame is not None else start.seconds / self._tb
            target = self._t0 + round(n_target)
            self.container.seek(max(0, target - half), stream=self.stream, backward=True)
            return target - half, None
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
        self.container.seek(max(0, target), stream=self.stream, backward=True)
        return target, base
