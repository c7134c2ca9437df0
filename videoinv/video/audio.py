"""Audio for the output: copied packet for packet, re-encoded only when the container forbids it.

The audio is read from its own handle on the source file (or another file) and muxed in
timestamp order between the video packets, so the output is properly interleaved and memory
stays bounded. Packets are copied unchanged (bit-exact); when the output format cannot store the
codec (e.g. PCM in MP4) it is re-encoded (AAC, or Opus for WebM/Ogg) and the log says so.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction

import av

from ..errors import InputError
from .probe import open_input

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioPlan:
    """Where the output's audio comes from.

    ``path``: file to take audio from (the input for ``--audio copy``, or a user's file);
    ``start``: source time (seconds) before which packets are dropped (None: keep all);
    ``offset``: seconds subtracted from every timestamp (the trim start, so the output starts at 0);
    ``cut``: stop at the end of the video (a trimmed range, or a user's audio file); otherwise
    every packet is copied;
    ``all_streams``: copy every audio stream (True for the input) or only the first;
    ``audio``: take audio streams at all (False: subtitles only);
    ``subtitles``: also copy the subtitle streams the output's file type can store (the input's).
    """

    path: str
    start: float | None = None
    offset: float = 0.0
    cut: bool = False
    all_streams: bool = True
    audio: bool = True
    subtitles: bool = False


def _can_copy(format_name: str, path: str, index: int) -> bool:
    """Whether the output format can store stream ``index`` of ``path`` without re-encoding:
    a real packet is muxed into an in-memory file of that format (some limits, like MP4's
    channel layouts, are only checked when packets and the trailer are written)."""
    try:
        with av.open(path, metadata_errors="ignore") as src:
            stream = src.streams[index]
            packet = next((p for p in src.demux(stream) if p.size), None)
            with av.open(io.BytesIO(), "w", format=format_name) as probe:
                out = probe.add_stream_from_template(stream)
                probe.start_encoding()
                if packet is not None:
                    packet.stream = out
                    probe.mux(packet)
        return True
    except (av.error.FFmpegError, ValueError):
        return False


# FFmpeg's default layouts for a channel count (used when the source's order is unspecified)
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _transcode_codec(format_name: str) -> str:
    return "libopus" if any(n in format_name.split(",") for n in ("webm", "ogg")) else "aac"


TRANSCODE_BIT_RATE = 192_000  # audio that has to be re-encoded


def audio_codec(format_name: str, path: str, index: int) -> str:
    """``"copy"`` where the output format can store stream ``index`` of ``path`` as it is, else
    the encoder it is re-encoded with (AAC; Opus for WebM and Ogg)."""
    return "copy" if _can_copy(format_name, path, index) else _transcode_codec(format_name)


def has_subtitles(path: str) -> bool:
    """Whether ``path`` holds a subtitle stream (asked of the file: a plugin's reader may not use PyAV)."""
    with av.open(str(path), metadata_errors="ignore") as source:
        return bool(source.streams.subtitles)


def copyable_subtitles(path: str, format_name: str) -> list[int]:
    """Indices of the subtitle streams of ``path`` that a ``format_name`` file can store as they
    are; the others are named in a warning (text subtitles are not converted here)."""
    with av.open(str(path), metadata_errors="ignore") as source:
        streams = [(s.index, s.codec_context.name) for s in source.streams.subtitles]
    kept = []
    for index, codec in streams:
        if _can_copy(format_name, path, index):
            kept.append(index)
        else:
            log.warning("subtitle stream #%d (%s) of %s cannot be stored in the output's file type (%s): "
                        "left out (a .mkv keeps it)", index, codec, path, format_name)
    return kept


class _Track:
    """One audio stream of the source (or a subtitle stream, copied) and its stream in the output."""

    def __init__(self, source, output, format_name: str, plan: AudioPlan):
        self.source = source  # not to be touched once the mux is closed (PyAV crashes)
        self.plan = plan
        self.kind = source.type  # "audio" or "subtitle"
        codec = "copy" if self.kind == "subtitle" else audio_codec(format_name, plan.path, source.index)
        self.copy = codec == "copy"
        if self.copy:
            self.out = output.add_stream_from_template(source)
        else:
            cc = source.codec_context
            layout = cc.layout.name if cc.layout and "channels" not in cc.layout.name else \
                _DEFAULT_LAYOUTS.get(cc.channels, "stereo")
            rate = cc.sample_rate if codec == "aac" else 48000
            self.out = output.add_stream(codec, rate=rate, layout=layout)
            self.out.bit_rate = TRANSCODE_BIT_RATE
            log.info("%s audio cannot be stored in this format; re-encoding it to %s",
                     cc.name, codec)
        self.tb = Fraction(source.time_base.numerator, source.time_base.denominator)
        self.shift = round(Fraction(plan.offset) / self.tb)
        self.lead: int | None = None  # ticks the first packet is moved by where it may not start below 0


def check_audio_file(path) -> None:
    """An ``--audio FILE``: there, readable by FFmpeg and holding an audio stream; checked before
    any model loads or frame is decoded."""
    if not os.path.isfile(path):
        raise InputError(f"audio file not found: {path} (--audio takes copy, drop or a file)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except PermissionError:
        raise InputError(f"cannot read the --audio file {path}: permission denied") from None
    except av.error.FFmpegError as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(f"cannot read the --audio file {path}: {reason}; give an audio or video file "
                         "(.m4a, .wav, .mp3, .mp4 ...)") from None
    with container:
        if not container.streams.audio:
            raise InputError(f"{path} has no audio stream to use with --audio")


class AudioMux:
    """Copies (or re-encodes) audio packets into ``output`` up to a given time, on demand."""

    def __init__(self, output: av.container.OutputContainer, plan: AudioPlan, from_zero: bool = False):
        self.plan = plan
        self.output = output
        self.container = open_input(plan.path)
        fmt = output.format.name
        streams = list(self.container.streams.audio) if plan.audio else []
        if not streams and plan.audio and not plan.all_streams:
            self.container.close()
            raise InputError(f"{plan.path} has no audio stream to use with --audio")
        if not plan.all_streams:
            streams = streams[:1]
        if streams and output.default_audio_codec == "none":  # e.g. GIF (an --audio FILE is refused before)
            log.warning("a %s file holds no sound: the audio of %s is left out", fmt, plan.path)
            streams = []
        if plan.subtitles:
            streams += self._subtitles(fmt)
        if not streams:  # the input simply has no audio (or subtitles)
            self.container.close()
            self.tracks = []
            self._packets = iter(())
            return
        # ``from_zero``: the output is a fixed-rate file type (AVI), which plays its audio as one run
        # from the start, so the negative start of AAC's priming packet means nothing there; left
        # in, FFmpeg shifted the video after its first frame by a tick to make room (an empty frame
        # at 1/30 s, as the ffmpeg program's own AVI output has)
        self._from_zero = from_zero
        self.tracks = [_Track(s, output, fmt, plan) for s in streams]
        self._by_index = {t.source.index: t for t in self.tracks}
        if plan.start:
            # start a little early: the first packet may begin before the window
            self.container.seek(max(0, int((plan.start - 1.0) * 1_000_000)))
        self._packets = self.container.demux([t.source for t in self.tracks])
        self._pending = None
        self._done = False
        self._ended: set[int] = set()  # tracks whose packets have passed self.end
        self.end: float | None = None  # output time at which to stop (set by finish)

    def _subtitles(self, format_name: str) -> list:
        keep = set(copyable_subtitles(self.plan.path, format_name))
        return [stream for stream in self.container.streams.subtitles if stream.index in keep]

    def feed_until(self, seconds: float) -> None:
        """Mux every packet whose (output) time is <= ``seconds``."""
        if not self.tracks:
            return
        while not self._done:
            if self._pending is None:
                try:
                    self._pending = next(self._packets)
                except StopIteration:
                    self._done = True
                    break
                except av.error.FFmpegError as err:
                    log.warning("audio of %s ends early: %s", self.plan.path, err)
                    self._done = True
                    break
            packet = self._pending
            track = self._by_index[packet.stream.index]
            if packet.dts is None and packet.pts is None:
                self._pending = None
                continue
            ts = packet.dts if packet.dts is not None else packet.pts
            t = float(ts * track.tb) - self.plan.offset
            if t > seconds:
                break
            self._pending = None
            self._emit(track, packet)

    def _emit(self, track: _Track, packet) -> None:
        start = float(packet.pts * track.tb) if packet.pts is not None else None
        dur = float(packet.duration * track.tb) if packet.duration else 0.0
        if start is not None:
            if self.plan.start is not None and start + dur <= self.plan.start:
                return
            if self.end is not None and start - self.plan.offset >= self.end:
                self._ended.add(track.source.index)
                self._done = len(self._ended) == len(self.tracks)
                return
        if track.kind == "subtitle" and packet.pts is not None and packet.pts < track.shift:
            # a cue running across the trim start begins at the new start (left negative, it moved
            # the whole output later: a trimmed range would not start at 0)
            cut = track.shift - packet.pts
            if packet.duration:
                packet.duration = max(1, packet.duration - cut)
            packet.pts = packet.dts = track.shift
        if track.copy:
            if track.shift:
                packet.pts = None if packet.pts is None else packet.pts - track.shift
                packet.dts = None if packet.dts is None else packet.dts - track.shift
            packet.stream = track.out
            self._mux(track, packet)
            return
        for frame in packet.decode():
            if frame.pts is not None:
                frame.pts = round((frame.pts - track.shift) * track.tb * frame.sample_rate)
                frame.time_base = Fraction(1, frame.sample_rate)
            for out_packet in track.out.encode(frame):
                self._mux(track, out_packet)

    def _mux(self, track: _Track, packet) -> None:
        if self._from_zero:
            if track.lead is None:
                first = packet.dts if packet.dts is not None else packet.pts
                track.lead = max(0, -first) if first is not None else 0
            if track.lead:
                packet.pts = None if packet.pts is None else packet.pts + track.lead
                packet.dts = None if packet.dts is None else packet.dts + track.lead
        self.output.mux(packet)

    def finish(self, video_end: float | None = None) -> None:
        """Mux the remaining audio and flush encoders; with ``plan.cut``, packets starting at or
        after ``video_end`` (output seconds) are left out."""
        if self.plan.cut:
            self.end = video_end
        self.feed_until(math.inf)
        for track in self.tracks:
            if not track.copy:
                for out_packet in track.out.encode(None):
                    self._mux(track, out_packet)
        self.close()

    def close(self) -> None:
        if self.tracks:
            self.container.close()
