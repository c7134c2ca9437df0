"""Streaming video writer: RGB frames in, an encoded file with the source's timing and audio out.

* Encoders by name: libx264 (default), libx265, ffv1 (lossless), h264_nvenc/hevc_nvenc when the
  machine has an NVIDIA GPU, or anything else this FFmpeg build has (plain options only).
* RGB is converted to YUV with the matrix and range the stream is tagged with (BT.709 TV range by
  default), so colours round-trip exactly (to within 4:2:0 + rounding).
* Each frame keeps its source pts/time_base, so variable-frame-rate video keeps its timing.
* Odd sizes with a 4:2:0/4:2:2 pixel format are padded (edge pixels repeated) or cropped by one.
* The file is written under a temporary name next to the target and renamed on success only.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field, replace
from fractions import Fraction

import av
import cv2
import numpy as np

from ..errors import OutputError
from ..files import atomic_output, discard_atomic, disk_full, os_problem
from . import helpers
from .attachments import add_cover, copy_attachments
from .audio import AudioMux, AudioPlan
from .chapters import cut as cut_chapters, read_tags
from .colour import output_colour
from .frame import FrameRecord
from .palette import PaletteConverter
from .probe import VideoInfo
from .regions import plane_array

log = logging.getLogger(__name__)

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
_NVENC_PRESET = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3",
                 "fast": "p3", "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7",
                 "placebo": "p7"}
# codec -> default pixel format and how it takes quality/speed settings
_ENCODERS = {
    "libx264": ("yuv420p", "crf", "x264"),
    "libx265": ("yuv420p", "crf", "x264"),
    "libx264rgb": ("rgb24", "crf", "x264"),
    "ffv1": ("yuv444p", None, None),
    "h264_nvenc": ("yuv420p", "cq", "nvenc"),
    "hevc_nvenc": ("yuv420p", "cq", "nvenc"),
    "av1_nvenc": ("yuv420p", "cq", "nvenc"),
    "libsvtav1": ("yuv420p", "crf", None),
    "libvpx-vp9": ("yuv420p", "crf", None),
    "png": ("rgb24", None, None),
    # the other pictures, lossless too: WebP in its lossless mode (from 8-bit RGB; its lossy mode
    # keeps a quarter of the colour, as 4:2:0 does), TIFF (Deflate) and BMP in their RGB orders
    "libwebp": ("bgra", None, None),
    "tiff": ("rgb24", None, None),
    "bmp": ("bgr24", None, None),
    "gif": ("pal8", None, None),  # a palette of its own for each frame (palette.py)
    "mjpeg": ("yuvj444p", "qscale", None),
    # MPEG-4 part 2 and MPEG-1/2 take a fixed quantiser (ffmpeg -q:v); by default they ran at
    # 200 kb/s, 33 dB on the sample clip where x264 at CRF 18 gives 42
    "mpeg4": ("yuv420p", "qscale", None),
    "mpeg2video": ("yuv420p", "qscale", None),
    "mpeg1video": ("yuv420p", "qscale", None),
}
# still-image outputs: one frame, written by FFmpeg's image2 muxer with the extension's encoder
IMAGE_ENCODERS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".webp": "libwebp", ".tif": "tiff",
                  ".tiff": "tiff", ".bmp": "bmp"}
# the preset when none is given. x264's veryfast: at CRF 18 it encodes 720p about twice as fast
# as medium (benchmarks/encode_presets.py: 87 against 48 fps on the sample clip, 80 against 32
# on noisy footage, 2 cores) at a bitrate within 10% and a PSNR at most 1.3 dB lower (48.0 against
# 49.3 dB, 31.8 against 32.0: nothing visible), so the encoder does not set the pace of an edit;
# x265 and NVENC keep their encoders' own defaults (medium, p4)
DEFAULT_PRESET = {"libx264": "veryfast", "libx264rgb": "veryfast"}
# the quality values each encoder takes (x264 and x265 clamp a larger CRF to 51 without a word;
# NVENC's cq 0 means "let the encoder choose")
_QUALITY_RANGE = {"crf": (0, 51), "cq": (0, 51), "qscale": (1, 31)}
# the quality when none is given: CRF / cq 18, and quantiser 2 (ffmpeg's "high quality" for -q:v)
_DEFAULT_QUALITY = {"crf": 18, "cq": 18, "qscale": 2}
_QUALITY_RANGE_OF = {"libsvtav1": (1, 63), "libvpx-vp9": (0, 63)}
KNOWN_ENCODERS = tuple(_ENCODERS)
# tags the muxer writes for itself (the source's would be wrong for the new file)
_MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}
_VARIABLE_FPS = 0x400  # FFmpeg's AVFMT_VARIABLE_FPS: the file type keeps each frame's timestamp


@dataclass
class EncodeOptions:
    """What the user chooses about the video stream (``videoinv edit --codec ...``)."""

    codec: str = "libx264"
    crf: int | None = None  # default 18 for CRF encoders
    preset: str | None = None  # default DEFAULT_PRESET, else "medium" (x264 names; p1..p7 for NVENC)
    pix_fmt: str | None = None  # default per codec (yuv420p; yuv444p for ffv1)
    matrix: str = "bt709"
    range: str = "tv"
    odd: str = "pad"  # "pad" | "crop": what to do with odd sizes in 4:2:0/4:2:2
    threads: bool = True
    extra: dict = field(default_factory=dict)  # raw encoder options
    width: int | None = None  # scale the picture to this width, the height in proportion (--width)

    def scaled(self, width: int, height: int, even: bool = False) -> tuple[int, int]:
        """The picture size for a ``width x height`` source: ``width`` wide, the height in
        proportion (the nearest even one where ``even``: subsampled chroma)."""
        if not self.width or self.width == width:
            return width, height
        step = 2 if even else 1
        return self.width, max(step, round(height * self.width / width / step) * step)


def available_encoders() -> list[str]:
    return [c for c in KNOWN_ENCODERS if c in av.codecs_available]


def check_encoder(codec: str) -> None:
    """Refuse an encoder this FFmpeg build (PyAV's) does not have."""
    if codec not in av.codecs_available:
        raise OutputError(f"encoder {codec!r} is not in this FFmpeg build; "
                          f"available: {', '.join(available_encoders())}")
    try:
        is_video = av.codec.Codec(codec, "w").type == "video"
    except av.error.FFmpegError:
        is_video = False
    if not is_video:
        raise OutputError(f"{codec!r} is not a video encoder; use one of {', '.join(available_encoders())}")


def check_encode(opts: EncodeOptions, encoder: bool = True) -> None:
    """Refuse, before any work, an encoder this FFmpeg lacks, a pixel format it cannot take, a
    CRF outside the encoder's range or a preset it does not know (the errors opening the output
    would give). ``encoder=False``: the encoder is another program's, so check only what does not
    depend on its build (``ffmpeg_cli.check_encoder`` asks the ffmpeg program for the rest)."""
    check_pix_fmt(opts.pix_fmt)
    if encoder:
        check_encoder(opts.codec)
        formats = av.codec.Codec(opts.codec, "w").video_formats
        names = [f.name for f in formats or ()]
        if opts.pix_fmt is not None and names and opts.pix_fmt not in names:
            more = ", ..." if len(names) > 8 else ""
            raise OutputError(f"{opts.codec} cannot encode --pix-fmt {opts.pix_fmt}; it takes "
                              f"{', '.join(names[:8])}{more}")
    _check_quality(opts)


def check_pix_fmt(pix_fmt: str | None) -> None:
    if pix_fmt is None:
        return
    try:
        av.VideoFormat(pix_fmt)
    except ValueError:
        raise OutputError(f"unknown --pix-fmt {pix_fmt!r}; use a pixel format name such as yuv420p, "
                          "yuv444p or yuv420p10le (ffmpeg -pix_fmts lists them)") from None


def _check_quality(opts: EncodeOptions) -> None:
    _, quality_key, preset_kind = _ENCODERS.get(opts.codec, ("yuv420p", None, None))
    if quality_key and opts.crf is not None:
        low, high = _QUALITY_RANGE_OF.get(opts.codec, _QUALITY_RANGE[quality_key])
        if not low <= opts.crf <= high:
            raise OutputError(f"--crf {opts.crf} is outside {opts.codec}'s range {low}-{high} (lower is better)")
    if preset_kind == "x264" and opts.preset is not None and opts.preset not in X264_PRESETS:
        raise OutputError(f"unknown preset {opts.preset!r}; use one of {', '.join(X264_PRESETS)}")


def encoder_settings(opts: EncodeOptions) -> tuple[str, dict[str, str]]:
    """The pixel format and FFmpeg encoder options for ``opts`` (CRF, preset, extras)."""
    _check_quality(opts)
    codec = opts.codec
    _, quality_key, preset_kind = _ENCODERS.get(codec, ("yuv420p", None, None))
    options: dict[str, str] = {}
    quality = _DEFAULT_QUALITY.get(quality_key) if opts.crf is None else opts.crf
    if quality_key == "qscale":  # a fixed quantiser (ffmpeg -q:v), held by bounding the rate control to it
        options.update(qmin=str(quality), qmax=str(quality))
    elif quality_key:
        options[quality_key] = str(quality)
    elif opts.crf is not None:
        log.warning("%s has no CRF setting; --crf %s is ignored", codec, opts.crf)
    preset = opts.preset or (DEFAULT_PRESET.get(codec, "medium") if preset_kind else None)
    if preset_kind == "x264":
        options["preset"] = preset
    elif preset_kind == "nvenc":
        options["preset"] = _NVENC_PRESET.get(preset, preset)
        options["rc"] = "vbr"
        options["b"] = "0"
    elif preset is not None:
        options["preset"] = preset
    if codec == "libvpx-vp9":
        options["b"] = "0"  # constant quality
    if codec in ("libwebp", "libwebp_anim"):
        options["lossless"] = "1"
    if codec == "tiff":  # FFmpeg's default, PackBits, saves nothing on a photo: Deflate is a fifth of it
        options["compression_algo"] = "deflate"
    options.update({str(k): str(v) for k, v in opts.extra.items()})
    if codec == "libx265":  # x265 prints a 20-line banner straight to stderr, even with -q
        level = "info" if logging.getLogger("videoinv").isEnabledFor(logging.DEBUG) else "error"
        params = options.get("x265-params", "")
        if "log-level" not in params:
            options["x265-params"] = ":".join(filter(None, (f"log-level={level}", params)))
    return opts.pix_fmt or default_pix_fmt(codec), options


def default_pix_fmt(codec: str) -> str:
    """The pixel format used without --pix-fmt: ours for the encoders we know, else yuv420p where
    the encoder takes it, else the encoder's own first choice (prores_ks: yuv422p10le)."""
    if codec in _ENCODERS:
        return _ENCODERS[codec][0]
    try:
        names = [f.name for f in av.codec.Codec(codec, "w").video_formats or ()]
    except (av.error.FFmpegError, ValueError):  # e.g. an encoder only the ffmpeg program has
        names = []
    return "yuv420p" if not names or "yuv420p" in names else names[0]


def picture_sizes(opts: EncodeOptions, pix_fmt: str, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """For a ``width x height`` source: the size the picture is scaled to (``--width``) and the
    size it is stored at (even where the chroma is subsampled; see ``encoded_size``)."""
    scaled = opts.scaled(width, height, even=chroma_even(pix_fmt)[1])
    return scaled, encoded_size(*scaled, pix_fmt, opts.odd)


def chroma_even(pix_fmt: str) -> tuple[bool, bool]:
    """Whether width / height must be even for this pixel format (subsampled chroma)."""
    fmt = av.VideoFormat(pix_fmt, 64, 64)
    return fmt.chroma_width(64) < 64, fmt.chroma_height(64) < 64


def encoded_size(width: int, height: int, pix_fmt: str, odd: str = "pad") -> tuple[int, int]:
    """The size a ``width x height`` picture is stored at: subsampled chroma needs even sizes,
    reached by padding (``odd="pad"``, edge pixels repeated) or cropping one pixel (logged)."""
    if odd not in ("pad", "crop"):
        raise OutputError(f"--odd takes pad or crop, not {odd!r}")
    even_w, even_h = chroma_even(pix_fmt)
    step = -1 if odd == "crop" else 1
    w = width + (step if even_w and width % 2 else 0)
    h = height + (step if even_h and height % 2 else 0)
    if (w, h) != (width, height):
        verb = "cropping" if odd == "crop" else "padding (edge pixels repeated)"
        log.warning("%dx%d has an odd side and %s needs even sizes: %s to %dx%d", width, height,
                    pix_fmt, verb, w, h)
    return w, h


def _copy_frame(frame: av.VideoFrame) -> av.VideoFrame:
    """A new frame with ``frame``'s pixels and colour tags (8-bit formats)."""
    out = av.VideoFrame(frame.width, frame.height, frame.format.name)
    for target, source in zip(out.planes, frame.planes):
        plane_array(target)[:] = plane_array(source)
    out.colorspace, out.color_range = frame.colorspace, frame.color_range
    return out


class Writer:
    """Write :class:`FrameRecord` images to ``path``.

    ``width``/``height``: the size of the frames that will be written (RGB, upright);
    ``time_base``: timestamps of the records are expressed in it (the source's);
    ``rate``: nominal frame rate (for the container header and rate control);
    ``source``: the source's :class:`VideoInfo` (its primaries/transfer are kept; frames no
    stage changed are encoded from the decoded picture when colour, size and orientation allow);
    ``audio``: an :class:`AudioPlan` or a list of them (audio and subtitles from several files),
    or None for neither;
    ``inputs``: files the output must never replace;
    ``offset``: seconds subtracted from every timestamp (video and audio), e.g. the start of a
    trimmed range so that the output starts at 0;
    ``until``: where the range ends, in seconds on the source's timeline (chapters are cut there);
    ``passthrough``: False sends every frame through RGB (even those no stage changed).
    Use as a context manager: the output appears on a clean exit only.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, time_base: Fraction,
                 rate: Fraction, options: EncodeOptions | None = None,
                 source: VideoInfo | None = None, audio: AudioPlan | list[AudioPlan] | None = None,
                 inputs=(), overwrite: bool = False, offset: Fraction = Fraction(0),
                 until: Fraction | None = None, passthrough: bool = True):
        self.options = jpeg_colours(options or EncodeOptions())
        self.path = str(path)
        self.image = is_image(path)
        self.offset = Fraction(offset)
        self.until = None if until is None else Fraction(until)
        self._allow_passthrough = passthrough
        self._atomic = atomic_output(path, inputs=inputs, overwrite=overwrite)
        self.tmp = self._atomic.__enter__()
        self._closed = False
        try:
            self._open(width, height, Fraction(time_base), Fraction(rate), source, audio)
        except BaseException as err:
            self.abort(err)
            raise

    # -- setup ----------------------------------------------------------------------------------
    def _open(self, width, height, time_base, rate, source, audio) -> None:
        check_encoder(self.options.codec)
        pix_fmt, options = encoder_settings(self.options)
        source_colour = source.colour if source is not None else None
        self.colour = output_colour(source_colour, self.options.matrix, self.options.range, pix_fmt)
        self.src_size = (width, height)
        self.scaled_size, self.size = picture_sizes(self.options, pix_fmt, width, height)
        try:
            self.container = av.open(str(self.tmp), "w", format=container_format(self.path),
                                     options={"update": "1"} if self.image else None)  # one file, not a series
        except (av.error.FFmpegError, ValueError) as err:
            raise OutputError(f"cannot write {self.path}: {err}; use a .mp4, .mkv, .mov or .webm name") from None
        # a file type without per-frame timestamps (AVI) plays frame n at n / rate: given the source's
        # time base it filled the gaps between ticks with empty frames (a 30 fps clip became 613
        # frames at 600 fps)
        self.fixed_rate = not self.container.format.flags & _VARIABLE_FPS
        if self.fixed_rate:
            time_base = 1 / rate
            if source is not None and source.vfr:
                log.warning("%s: a .%s file has a fixed frame rate: the source's variable frame timing is "
                            "rounded to %.3f fps (a .mkv or .mp4 keeps it)", self.path,
                            os.path.splitext(self.path)[1].lstrip(".") or "this", float(rate))
        stream = self.container.add_stream(self.options.codec, rate=rate)
        stream.width, stream.height = self.size
        stream.pix_fmt = pix_fmt
        stream.time_base = time_base
        cc = stream.codec_context
        cc.time_base = time_base
        cc.colorspace = self.colour.space_tag
        cc.color_range = self.colour.range_tag
        cc.color_primaries = self.colour.primaries
        cc.color_trc = self.colour.trc
        if self.options.threads:
            cc.thread_type = "AUTO"
        stream.options = options
        if self.options.codec == "libsvtav1":  # its banner goes straight to stderr; SVT_LOG 1: errors only
            os.environ.setdefault("SVT_LOG", "3" if logging.getLogger("videoinv").isEnabledFor(logging.DEBUG) else "1")
        self.encoder_options = {"codec": self.options.codec, "pix_fmt": pix_fmt, **options}
        self.stream = stream
        self.time_base = time_base
        self._palette = PaletteConverter(*self.size, time_base) if pix_fmt == "pal8" else None
        self.rate = rate
        if source is not None:
            self._copy_tags(source.path)
            if not self.image:
                copy_attachments(source.path, self.container)
        self.audio: list[AudioMux] = []  # audio (and subtitles) to copy; abort closes those opened
        for plan in [] if audio is None else [audio] if isinstance(audio, AudioPlan) else audio:
            self.audio.append(AudioMux(self.container, plan, from_zero=self.fixed_rate))
        cover = add_cover(source.path, self.container) if source is not None and not self.image else None
        try:
            self.container.start_encoding()
        except av.error.FFmpegError as err:
            if disk_full(err):  # not the codec's fault
                raise OutputError(f"cannot write {self.path}: {os_problem(err, named=False)}") from None
            hint = "no NVIDIA GPU/driver here? " if "nvenc" in self.options.codec else ""
            settings = ", ".join([pix_fmt, *(f"{k}={v}" for k, v in options.items())])
            raise OutputError(f"cannot start encoding {self.path} with {self.options.codec} "
                              f"({settings}): {err.strerror}; {hint}"
                              "try another --codec, --pix-fmt or output extension") from None
        if cover is not None:  # an MP4's cover: its one packet, before the frames
            self.container.mux(cover)
        # one converter for the whole stream: a frame's own (``frame.reformat``) sets up swscale
        # afresh for every frame, and for RGB -> YUV FFmpeg 8 then starts and joins two threads
        # each time (a third of all threads a pipelined run created, each faulting its stack in)
        self._rgb_converter = av.video.reformatter.VideoReformatter()
        self._source_converter = av.video.reformatter.VideoReformatter()  # decoded frames to pix_fmt
        self._patch_converter = av.video.reformatter.VideoReformatter()  # changed rectangles to pix_fmt
        self._convert = {} if self.colour.matrix == "rgb" else dict(
            dst_colorspace=self.colour.sws_matrix, src_color_range=2,
            dst_color_range=self.colour.range_tag,
            interpolation=av.video.reformatter.Interpolation.BILINEAR
            | av.video.reformatter.Interpolation.FULL_CHR_H_INP
            | av.video.reformatter.Interpolation.ACCURATE_RND)
        # frames no stage changed can skip the RGB round trip: same matrix and range (swscale
        # converts YUV formats, not matrices), same size, nothing to rotate
        self._passthrough = (
            self._allow_passthrough and source is not None and source.orientation == "none"
            and self.colour.matrix != "rgb" and source_colour.matrix == self.colour.matrix
            and source_colour.range == self.colour.range
            and (source.coded_width, source.coded_height) == self.size == self.src_size)
        # edited frames can take the decoded picture with only their changed rectangles
        # converted, where the output's pixels are 8-bit planar YUV (written into by plane)
        fmt = av.VideoFormat(pix_fmt)
        self._patchable = (self._passthrough and not fmt.is_rgb and all(c.bits == 8 for c in fmt.components)
                           and len({c.plane for c in fmt.components}) == len(fmt.components) == 3)
        self.frames_passed_through = 0
        self.frames_patched = 0
        self.frames_changed = 0  # frames a stage drew into (a face edited)
        self._last_pts: int | None = None
        self._end_pts: int | None = None
        self._shift = round(self.offset / self.time_base)
        self.frames_written = 0

    def _copy_tags(self, path: str) -> None:
        """The source's file-level tags (title, creation time, location ...) and chapters, as the
        ffmpeg program keeps them; chapters move with a trimmed start and are cut at the end."""
        tags, chapters, _ = read_tags(path)
        self.container.metadata.update({k: v for k, v in tags.items() if k.lower() not in _MUXER_TAGS})
        kept = cut_chapters(chapters, self.offset, self.until, 1 / self.rate)
        if kept:
            self.container.set_chapters(kept)

    # -- writing --------------------------------------------------------------------------------
    def write(self, record: FrameRecord) -> None:
        """Encode one frame at its own timestamp."""
        if self.image and self.frames_written:
            raise OutputError(f"{os.path.basename(self.path)} is a picture: it holds one frame, and a second came; "
                              f"pick one with --start and --end (e.g. --start {record.index - 1}f --end "
                              f"{record.index}f) or {_VIDEO_NAMES}")
        self.frames_changed += bool(record.changed)
        if self._passthrough and record.source is not None and not record.changed:
            frame = self._from_source(record.source)
            self.frames_passed_through += 1
        elif self._patchable and record.source is not None:
            frame = self._patched(record)
            self.frames_patched += 1
        else:
            frame = self._from_rgb(record)
        pts = self._pts(record)
        frame.pts = pts
        frame.time_base = self.time_base
        duration = round(record.duration * record.time_base / self.time_base) if record.duration else 0
        if duration:
            frame.duration = duration
        self._end_pts = pts + (duration or round(1 / (self.rate * self.time_base)))
        for ready in self._palette.convert(frame) if self._palette is not None else [frame]:
            self._mux(self.stream.encode(ready))
        self.frames_written += 1

    def _from_rgb(self, record: FrameRecord) -> av.VideoFrame:
        image = record.image
        if (image.shape[1], image.shape[0]) != self.src_size or image.dtype != np.uint8:
            raise OutputError(f"frame {record.index} is {image.shape[1]}x{image.shape[0]} {image.dtype}, "
                              f"the writer expects {self.src_size[0]}x{self.src_size[1]} uint8")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(self._fit(image)), format="rgb24")
        if self._palette is not None:  # mapped onto its own palette in write()
            return frame
        return self._rgb_converter.reformat(frame, format=self.stream.pix_fmt,
                                            threads=helpers.swscale_threads(), **self._convert)

    def _from_source(self, frame: av.VideoFrame) -> av.VideoFrame:
        """The decoded picture itself, in the output's pixel format (no RGB round trip)."""
        if frame.format.name != self.stream.pix_fmt:
            rng = self.colour.range_tag
            frame = self._source_converter.reformat(frame, format=self.stream.pix_fmt,
                                                    threads=helpers.swscale_threads(),
                                                    src_colorspace=self.colour.sws_matrix,
                                                    dst_colorspace=self.colour.sws_matrix, src_color_range=rng,
                                                    dst_color_range=rng)
        frame.pict_type = av.video.frame.PictureType.NONE  # libx264 would copy the source's GOP
        return frame

    def _patched(self, record: FrameRecord) -> av.VideoFrame:
        """The decoded picture with only the record's ``changed`` rectangles converted from RGB:
        every other pixel keeps the source's own values (no round trip through RGB, which moves
        values by a level here and there and filters the chroma again), and the conversion costs
        only those rectangles (a face: a few percent of a 720p frame). For 8-bit planar YUV
        output (``_patchable``); other formats take the whole frame from RGB."""
        decoded = record.source
        frame = self._from_source(decoded)
        if frame is decoded:  # the decoder may still predict from it: write into a copy
            frame = _copy_frame(decoded)
        planes = [plane_array(p) for p in frame.planes]
        sx, sy = planes[0].shape[1] // planes[1].shape[1], planes[0].shape[0] // planes[1].shape[0]
        h, w = planes[0].shape
        for x0, y0, x1, y1 in record.changed:
            # whole chroma samples, and a margin of unchanged pixels so that the chroma filter
            # of the changed ones sees their real neighbours rather than a repeated edge
            x0, y0 = max(0, (x0 - 2 * sx) // sx * sx), max(0, (y0 - 2 * sy) // sy * sy)
            x1, y1 = min(w, -(-(x1 + 2 * sx) // sx) * sx), min(h, -(-(y1 + 2 * sy) // sy) * sy)
            if x1 <= x0 or y1 <= y0:
                continue
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(record.region((x0, y0, x1, y1))), format="rgb24")
            # one slice: a face's rectangle is too small for swscale's threads to pay
            part = self._patch_converter.reformat(rgb, format=self.stream.pix_fmt, threads=1, **self._convert)
            for i, (target, source) in enumerate(zip(planes, part.planes)):
                px, py = (x0, y0) if i == 0 else (x0 // sx, y0 // sy)
                target[py:py + source.height, px:px + source.width] = plane_array(source)
        return frame

    def _fit(self, image: np.ndarray) -> np.ndarray:
        if self.scaled_size != self.src_size:  # --width: area averaging down, bicubic up
            shrink = self.scaled_size[0] < self.src_size[0]
            image = cv2.resize(image, self.scaled_size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
        w, h = self.size
        sw, sh = self.scaled_size
        if (w, h) == (sw, sh):
            return image
        image = image[:min(h, sh), :min(w, sw)]
        if w > sw or h > sh:
            image = np.pad(image, ((0, h - image.shape[0]), (0, w - image.shape[1]), (0, 0)), mode="edge")
        return image

    def _pts(self, record: FrameRecord) -> int:
        pts = record.pts if record.time_base == self.time_base else round(
            record.pts * Fraction(record.time_base) / self.time_base)
        pts -= self._shift
        if self._last_pts is not None and pts <= self._last_pts:
            # at a fixed rate, variable timing rounded onto the rate (warned once) takes the next slot
            if not self.fixed_rate:
                log.warning("frame %d has a timestamp that does not increase (%d after %d); moved to %d",
                            record.index, pts, self._last_pts, self._last_pts + 1)
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def _mux(self, packets) -> None:
        for packet in packets:
            if packet.dts is not None:
                for side in self.audio:
                    side.feed_until(float(packet.dts * packet.time_base))
            self.container.mux(packet)

    # -- finishing ------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush the encoder, finish the audio, close the file and move it into place."""
        if self._closed:
            return
        try:
            for ready in self._palette.flush() if self._palette is not None else []:
                self._mux(self.stream.encode(ready))
            self._mux(self.stream.encode(None))
            end = float(self._end_pts * self.time_base) if self._end_pts is not None else None
            for side in self.audio:
                side.finish(end)
            self.container.close()
        except BaseException as err:
            self.abort(err)
            raise
        self._closed = True
        self._atomic.__exit__(None, None, None)

    def abort(self, err: BaseException | None = None) -> None:
        """Discard the output (nothing is left under the target name or the temporary one)."""
        if self._closed:
            return
        self._closed = True
        for thing in (*getattr(self, "audio", ()), getattr(self, "container", None)):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - the file is being discarded anyway
                    pass
        discard_atomic(self._atomic, err)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc)


def container_format(path: str | os.PathLike) -> str | None:
    """The muxer for the target's extension (the temporary name ends in .partial.<ext> too)."""
    if is_image(path):
        return "image2"
    ext = os.path.splitext(str(path))[1].lower().lstrip(".")
    return {"mkv": "matroska", "m4v": "mp4", "ts": "mpegts"}.get(ext, ext or None)


def jpeg_colours(opts: EncodeOptions) -> EncodeOptions:
    """``opts``, with JPEG's own colours for the mjpeg encoder: JFIF readers take BT.601 at full
    range, whatever a video would use."""
    return replace(opts, matrix="bt601", range="pc") if opts.codec == "mjpeg" else opts


def is_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a still image (.png, .jpg, .webp, .tif, .bmp): one frame, no audio."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_ENCODERS


_VIDEO_NAMES = "use a .mp4, .mkv, .mov or .webm name"


def default_codec(path: str | os.PathLike) -> str:
    """The encoder when the user names none: libx264, or VP9 where the container takes only
    VP8/VP9/AV1 (.webm), or GIF's own for a .gif, as the ffmpeg program picks by extension."""
    if is_image(path):
        return IMAGE_ENCODERS[os.path.splitext(str(path))[1].lower()]
    return {"webm": "libvpx-vp9", "gif": "gif"}.get(container_format(path), "libx264")


def check_container(path: str | os.PathLike, codec: str, audio: str | None = None) -> None:
    """Refuse, before any work, a target whose extension names no muxer, or one whose muxer
    cannot store ``codec`` video (or ``audio``): the errors opening the output would give. A
    codec this FFmpeg build does not know (the ffmpeg program's own) is left to the encoder."""
    name, fmt = os.path.basename(str(path)), container_format(path)
    ext = os.path.splitext(name)[1].lower()
    if is_image(path):
        if codec != IMAGE_ENCODERS[ext]:
            raise OutputError(f"a {ext} file holds {IMAGE_ENCODERS[ext]} pictures, not {codec}: leave --codec out, "
                              f"or {_VIDEO_NAMES}")
        return
    if fmt is None:
        raise OutputError(f"cannot write {name}: it has no extension to choose the file type; {_VIDEO_NAMES}")
    try:
        container = av.open(io.BytesIO(), "w", format=fmt)
    except (ValueError, av.error.FFmpegError):
        raise OutputError(f"cannot write {name}: no container format {fmt!r}; {_VIDEO_NAMES}") from None
    try:
        for kind, wanted in (("video", codec), ("audio", audio)):
            if wanted in av.codecs_available and not _stores(container, wanted):
                fits = [c for c in available_encoders() if "nvenc" not in c and _stores(container, c)]
                hints = [f"--codec {_either(fits[:3])}"] if kind == "video" and fits else []
                names = [n for n in (".mp4", ".mkv", ".mov", ".webm") if n != ext and _holds(n, wanted)]
                hints += [f"a {_either(names)} name"] if names else []
                raise OutputError(f"a {ext} file cannot hold {wanted} {kind}"
                                  + (f": use {', or '.join(hints)}" if hints else ""))
    finally:
        container.close()


def _either(items: list[str]) -> str:
    return " or ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} or {items[-1]}"


def holds_sound(path: str | os.PathLike) -> bool:
    """Whether the target's file type stores audio at all (a .gif or a picture does not)."""
    if is_image(path):
        return False
    try:
        with av.open(io.BytesIO(), "w", format=container_format(path)) as container:
            return container.default_audio_codec != "none"
    except (ValueError, av.error.FFmpegError):
        return True  # no such file type: check_container names the problem


def _holds(ext: str, codec: str) -> bool:
    with av.open(io.BytesIO(), "w", format=container_format("x" + ext)) as container:
        return _stores(container, codec)


def _stores(container, codec: str) -> bool:
    try:
        container.add_stream(codec)
    except ValueError:
        return False
    return True
