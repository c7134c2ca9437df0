"""``videoinv filter-file``: the raw-frame filter between two ffmpeg processes.

For users who prefer the ffmpeg command line's codecs: one ffmpeg decodes the input to raw RGB
frames (auto-rotated, converted with the same colour rule as our reader), the chain processes them
in this process, and a second ffmpeg encodes them (tagged BT.709 TV range by default, converted
with that matrix) and copies the input's audio, re-encoded where the output format cannot store
it. The commands are built with ffmpeg-python.

A raw pipe carries no timestamps: the output is constant-frame-rate at the input's nominal rate.
Use ``videoinv edit`` to keep variable-frame-rate timing exactly.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess

from ..errors import OutputError, VideoinvError
from .attachments import cover_arguments, kept_attachments
from .audio import TRANSCODE_BIT_RATE, audio_codec, copyable_subtitles
from .colour import PRIMARIES_NAMES, SPACE_NAMES, TRC_NAMES, output_colour
from .palette import GENERATE, USE
from .writer import KNOWN_ENCODERS, EncodeOptions, container_format, encoder_settings, is_image, picture_sizes

log = logging.getLogger(__name__)

_QUIET = ("-hide_banner", "-nostdin", "-loglevel", "error")


def ffmpeg_python():
    try:
        import ffmpeg
    except ImportError:
        ffmpeg = None
    if ffmpeg is None or not hasattr(ffmpeg, "input"):
        raise VideoinvError("filter-file needs the ffmpeg-python package: pip install 'videoinv[ffmpeg]'")
    return ffmpeg


def ffmpeg_binary(name: str = "ffmpeg") -> str:
    path = shutil.which(name)
    if path is None:
        raise VideoinvError(f"the ffmpeg program ({name}) was not found; install it "
                            "(e.g. apt-get install ffmpeg) or use 'videoinv edit'")
    return path


def check_encoder(binary: str, options: EncodeOptions) -> list[str]:
    """Refuse, before any work, an encoder the ffmpeg program ``binary`` lacks, one that is not a
    video encoder, and a ``--pix-fmt`` it cannot take (the program would pick another format
    without a word). Returns the pixel formats the encoder takes (empty where it does not say)."""
    def ask(*args: str) -> str:
        try:
            return subprocess.run([binary, "-hide_banner", *args], capture_output=True, text=True,
                                  errors="replace", timeout=60).stdout
        except (OSError, subprocess.SubprocessError) as err:
            raise VideoinvError(f"cannot run the ffmpeg program ({binary}): {err}") from None

    kinds = {m.group(2): m.group(1) for m in re.finditer(r"^ ([VAS])\S{5} (\S+)", ask("-encoders"), re.M)}
    video = [name for name in KNOWN_ENCODERS if kinds.get(name) == "V"]
    codec = options.codec
    if codec not in kinds:
        raise OutputError(f"encoder {codec!r} is not in the ffmpeg program's build ({binary}); "
                          f"available: {', '.join(video)}")
    if kinds[codec] != "V":
        raise OutputError(f"{codec!r} is not a video encoder; use one of {', '.join(video)}")
    found = re.search(r"Supported pixel formats:(.*)", ask("-h", f"encoder={codec}"))
    formats = found.group(1).split() if found else []
    if options.pix_fmt is not None and formats and options.pix_fmt not in formats:
        more = ", ..." if len(formats) > 8 else ""
        raise OutputError(f"the ffmpeg program's {codec} cannot encode --pix-fmt {options.pix_fmt}; it takes "
                          f"{', '.join(formats[:8])}{more}")
    return formats


def decode_command(ffmpeg, source: str, info, binary: str = "ffmpeg", span=None) -> list[str]:
    """ffmpeg argv that writes the input's frames as raw rgb24 to stdout, one per source frame
    (``span``: a range, as ``reader.FrameSpan``, whose frames the reader would keep)."""
    seek, select = span.decode_options() if span is not None else ({}, None)
    colour = info.colour
    scale = "out_range=pc:flags=bilinear+full_chroma_int+accurate_rnd"
    if colour.matrix != "rgb":
        scale = f"in_color_matrix={colour.matrix}:in_range={colour.range}:" + scale
    stream = ffmpeg.input(source, **seek).video
    if select is not None:
        stream = stream.filter("select", select)
    stream = stream.filter("scale", **dict(kv.split("=") for kv in scale.split(":")))
    out = ffmpeg.output(stream, "pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
    return out.global_args(*_QUIET).compile(cmd=binary)


def encode_command(ffmpeg, source: str, target: str, info, size: tuple[int, int],
                   options: EncodeOptions, audio: bool, binary: str = "ffmpeg", window: dict | None = None,
                   chapters: str | None = None, *, folder: str) -> list[str]:
    """ffmpeg argv that reads raw rgb24 frames from stdin and writes ``target``; the audio,
    subtitles, tags, chapters, attached files and cover picture come from ``source`` (cut to
    ``window`` where given), the chapters from the FFMETADATA file ``chapters`` instead where
    given. ``folder``: a temporary folder (the caller's) where a file to attach may be written
    (a cover for Matroska)."""
    window = window or {}
    pix_fmt, codec_opts = encoder_settings(options)
    colour = output_colour(info.colour, options.matrix, options.range, pix_fmt)
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{size[0]}x{size[1]}",
                         framerate=f"{info.fps.numerator}/{info.fps.denominator}").video
    (w, h), (ew, eh) = picture_sizes(options, pix_fmt, *size)
    if (w, h) != size:  # --width, as edit scales
        video = video.filter("scale", w, h, flags="area" if w < size[0] else "bicubic")
    if (ew, eh) != (w, h):
        if options.odd == "crop":
            video = video.filter("crop", ew, eh, 0, 0)
        else:
            video = video.filter("pad", ew, eh, 0, 0).filter(
                "fillborders", right=ew - w, bottom=eh - h, mode="smear")
    if pix_fmt == "pal8":  # each frame its own palette, as edit writes a GIF (see palette.py)
        copies = video.split()
        video = ffmpeg.filter([copies[0], copies[1].filter("palettegen", **GENERATE)], "paletteuse", **USE)
    kwargs = {"c:v": options.codec, "pix_fmt": pix_fmt}
    kwargs.update({f"{k}:v" if k in ("b",) else k: v for k, v in codec_opts.items()})
    if colour.matrix != "rgb":
        video = video.filter("scale", out_color_matrix=colour.matrix, out_range=colour.range,
                             flags="bilinear+full_chroma_inp+accurate_rnd")
        kwargs.update(colorspace=SPACE_NAMES[colour.space_tag], color_range=colour.range)
    kwargs.update(color_primaries=PRIMARIES_NAMES.get(colour.primaries, "bt709"),
                  color_trc=TRC_NAMES.get(colour.trc, "bt709"))
    streams = [video]
    codecs, subtitles = sound_plan(source, info, target, audio)
    if codecs:
        streams.append(ffmpeg.input(source, **window)["a"])
        for i, (stream, codec) in enumerate(zip(info.audio, codecs)):  # copied where the format can store it
            kwargs[f"c:a:{i}"] = codec
            if codec != "copy":
                kwargs[f"b:a:{i}"] = str(TRANSCODE_BIT_RATE)
                log.info("%s audio cannot be stored in this format; re-encoding it to %s", stream.codec, codec)
    for i, index in enumerate(subtitles):  # as edit does, whatever the audio
        streams.append(ffmpeg.input(source, **window)[str(index)])
        kwargs[f"c:s:{i}"] = "copy"
    if "ss" in window:  # stream copy took every packet from the seek point on, before the start too
        kwargs["copypriorss"] = "0"  # (MP4 hid them with an edit list; Matroska moved the video later)
    out = ffmpeg.output(*streams, target, **kwargs)
    args = out.global_args(*_QUIET, "-y").compile(cmd=binary)
    # the source's file tags and chapters, as edit keeps them: it is the second input (added
    # where no stream is taken from it), and the raw pipe, the first, has none
    pipe = args.index("pipe:")
    second = [*(arg for key in sorted(window) for arg in (f"-{key}", window[key])), "-i", source]
    if args[pipe + 1: pipe + 1 + len(second)] != second:
        args[pipe + 1: pipe + 1] = second
    inputs_end = pipe + 1 + len(second)
    chapter_input = 1
    if chapters is not None:
        chapter_input = args[:inputs_end].count("-i")
        args[inputs_end:inputs_end] = ["-f", "ffmetadata", "-i", chapters]
        inputs_end += 4
    outputs = ["-map_metadata", "1", "-map_chapters", str(chapter_input)]
    if not is_image(target):  # attached files and a cover picture, as edit keeps them
        fmt = container_format(target)
        attached = len(kept_attachments(source, fmt))
        outputs += ["-map", "1:t", "-c:t", "copy"] if attached else []
        cover_inputs, cover_outputs = cover_arguments(source, fmt, folder, attached, args[:inputs_end].count("-i"))
        args[inputs_end:inputs_end] = cover_inputs
        outputs += cover_outputs
    at = len(args) - 1 - args[::-1].index(target)
    args[at:at] = outputs
    return args


def sound_plan(source: str, info, target: str, audio: bool) -> tuple[list[str], list[int]]:
    """What goes with the video into ``target``: the encoder of each audio stream of the source
    ("copy" where the file type can store it; none unless ``audio``), and the indexes of the
    subtitle streams it can store."""
    fmt = container_format(target)
    codecs = [audio_codec(fmt, source, stream.index) for stream in info.audio] if audio else []
    return codecs, copyable_subtitles(source, fmt)


def error_message(path: str) -> str:
    """What ffmpeg's log file says went wrong: the first message of a component (``[h263 @ 0x..]
    The specified picture size ...``, which names the cause), else its last line."""
    with open(path, "rb") as f:
        lines = f.read().decode(errors="replace").strip().splitlines()
    for line in lines:
        m = re.match(r"^\[(\S+) @ 0x[0-9a-fA-F]+\] (.+)$", line)
        if m:
            return f"{m.group(1)}: {m.group(2).strip()}"
    return lines[-1] if lines else "no message"
