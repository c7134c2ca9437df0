"""Whole jobs: a video file through a chain into a new video file."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Callable

from ..chain import Chain
from ..errors import ChainError, InputError, OutputError, VideoinvError
from ..files import atomic_output, check_output_path
from ..registry import default_registry
from ..video.audio import AudioPlan, check_audio_file, has_subtitles
from ..video.chapters import ffmetadata, window_chapters
from ..video.ffmpeg_cli import (check_encoder as check_program_encoder, decode_command, encode_command, error_message,
                                ffmpeg_binary, ffmpeg_python, sound_plan)
from ..video.probe import describe, open_input, presentation_pts, scan_video_packets, video_stream
from ..video.frame import FrameRecord
from ..video.rawpipe import RawFrameReader, RawFrameWriter
from ..video.reader import Reader, frame_span
from ..video.regions import pays
from ..video.helpers import ffmpeg_helpers
from ..video.timing import check_start, parse_range, parse_rate
from ..video.writer import (EncodeOptions, Writer, check_container, check_encode, default_codec, default_pix_fmt,
                            holds_sound, is_image, jpeg_colours, picture_sizes)
from .runner import Pipeline, prefetch, timed, torch_threads

log = logging.getLogger(__name__)


def _audio_plan(audio: str, reader: Reader, first: FrameRecord) -> list[AudioPlan]:
    """Where the output's audio and subtitles come from. ``audio``: "copy" (the input's audio),
    "drop", or the path of a file to take audio from; the input's subtitles are copied in every
    case (where the output's file type can store them)."""
    subtitles = has_subtitles(reader.path)
    if reader.start is None and reader.end is None:
        timing = {}  # every packet, timestamps unchanged
    else:
        start = first.time if reader.start is not None else None
        timing = dict(start=start, offset=start or 0.0, cut=True)
    own = AudioPlan(path=reader.path, audio=audio == "copy", subtitles=subtitles, **timing)
    plans = [own] if (own.audio and reader.info.has_audio) or subtitles else []
    if audio not in ("copy", "drop"):
        plans.append(AudioPlan(path=audio, cut=True, all_streams=False))  # checked by check_audio_file
    return plans


def _range_end(reader) -> Fraction | None:
    """Where ``--end`` falls on the source's timeline, in seconds (None: no end, or past the
    video's end); a frame number at that frame's time (a packet scan)."""
    end, info = reader.end, reader.info
    if end is None:
        return None
    if end.seconds is not None:  # from the start of the video, as the reader takes it
        return round(Fraction(info.start_time) / info.time_base) * info.time_base + end.seconds
    with open_input(reader.path) as container:
        table = scan_video_packets(container, video_stream(container), until_count=end.frame + 1)
    return table[end.frame] * info.time_base if end.frame < len(table) else None


def _check_picture(input, output, audio: str, start, end) -> None:
    """A picture output (.png, .jpg, ...) holds one frame and no sound: refuse, before any work, a
    video given whole or an audio file."""
    name = Path(output).name
    if audio not in ("copy", "drop"):
        raise OutputError(f"{name} is a picture: it cannot hold the --audio {audio}; leave --audio out")
    if not Path(input).is_file():
        return
    info = describe(input)
    if start is None and end is None and info.frame_count > 1:
        raise OutputError(f"{name} is a picture and {input} has {info.frame_count} frames: pick one with "
                          "--start and --end (e.g. --start 60f --end 61f), or use a .mp4, .mkv, .mov or .webm name")
    at = lambda point, default: default if point is None else point.frame if point.frame is not None else \
        math.ceil(point.seconds * info.fps)  # noqa: E731  (the first frame at or after a time, at the nominal rate)
    first, last = at(start, 0), min(at(end, info.frame_count), info.frame_count)
    if last - first > 1:
        raise OutputError(f"{name} is a picture and --start/--end take {last - first} frames: give an end one frame "
                          f"after the start (e.g. --start {first}f --end {first + 1}f)")


def check_replayed_video(chain: str | Chain, input: str | os.PathLike) -> None:
    """Refuse a chain whose ``latents`` stage replays a cache made from another video, before
    any stage is built: a model loaded for nothing would speak first (its random-weights
    warning), and take its time. The models are checked once built (:func:`check_replayed`)."""
    from ..chain import bind_options, parse_chain

    try:
        calls = [call for call in parse_chain(chain).stages if call.name == "latents"]
        if not calls:
            return  # (the stage's module, and torch with it, is not imported for nothing)
        latents = default_registry().stage("latents")
        paths = [bind_options(latents, call)["path"] for call in calls]
    except ChainError:
        return  # building the chain says what is wrong with it
    from ..edit.cache import LatentCache, fingerprint

    video_print = None
    for path in filter(None, paths):
        if video_print is None:
            video_print = fingerprint(input, describe(input))
        LatentCache(path).check_video(video_print)


def check_replayed(pipeline: Pipeline) -> None:
    """Refuse a chain whose ``latents`` stage replays a cache made with other weights than the
    chain's model stages have (as ``edit --latents`` does), once they are built; the video was
    checked before (:func:`check_replayed_video`)."""
    caches = [stage.cache for stage in pipeline.stages if stage.name == "latents"]
    if not caches:
        return
    from ..edit.cache import model_info

    models = next((stage.models for stage in pipeline.stages if getattr(stage, "models", None) is not None), None)
    for cache in caches:
        cache.check_models(model_info(models) if models else None, {"size": models.size} if models else {})


def prepare_edit(input: str | os.PathLike, options) -> Chain:
    """Load the models (failing on missing weights before any decoding), check a latent cache
    against the video and models, decide ``options.threaded`` if it is None, and return the
    chain for ``options`` (an EditOptions)."""
    from ..edit.cache import LatentCache, fingerprint, model_info
    from ..edit.directions import NAMED, check_name
    from ..edit.spec import EditSpec
    from ..models.specs import bundle_parts, load_models, require_all

    options.check_precision()
    options.face_selection()  # a bad --faces fails here, before the models load
    options.check_segments()
    names = [EditSpec.parse(text).name for text in options.edits]
    for name in names:
        check_name(name)  # a typo is reported before any weights are asked for or loaded
    cache = None if options.latents is None else LatentCache(options.latents)  # a missing file fails here
    if cache is not None:  # another video's cache, before any weights are asked for or loaded
        cache.check_video(fingerprint(input, describe(input)))
    require_all([*bundle_parts(options.model), *(NAMED[n] for n in names if n in NAMED)],
                f"this edit ({options.model}, {', '.join(names) or 'no direction'})")
    models = load_models(options.model, options.device)
    if options.threaded is None:
        options.threaded = options.prefers_threads()
    if cache is not None:
        cache.check_models(model_info(models), {"size": models.size})
        if options.seed is None:
            options.seed = cache.metadata.get("seed", 0)
    if options.seed is None:
        options.seed = 0
    return options.chain(models.size)


def _in_parts(pipeline: Pipeline, info) -> bool:
    """Whether the stages get frames left in YUV, to convert the parts they read (every stage
    reads only parts, and the frames are large enough for that to pay: ``video.regions``)."""
    return pipeline.reads_parts and pays(info.width, info.height)


def edit_video(input: str | os.PathLike, output: str | os.PathLike, chain: str | Chain | None = None, *,
               edits: list[str] | None = None, model: str | None = None, options=None,
               start=None, end=None, encode: EncodeOptions | None = None, audio: str = "copy",
               overwrite: bool = False, salvage: bool = False, batch_size: int = 8,
               passthrough: bool = True, reader: str = "pyav", threaded: bool | None = None,
               threads: int | None = None,
               on_frame: Callable[[FrameRecord], None] | None = None,
               on_start: Callable[[Reader], None] | None = None) -> dict:
    """Run a chain over every frame of ``input`` (or the ``start``-``end`` range) and write
    ``output`` with the source's timing and audio. Returns a summary dict.

    The chain is ``chain`` (a spec), or the face-editing chain built from ``edits`` (e.g.
    ``["smile=1.5"]``), ``model`` and ``options`` (an :class:`~videoinv.edit.recipe.EditOptions`
    for the rest: faces, segments, latent cache ...); with none of them, ``copy``.

    ``passthrough``: frames no stage changed are encoded from the decoded picture (no RGB round
    trip) when the output's colour and size allow; False sends every frame through RGB.
    ``reader``: the frame reader by registry name ("pyav", or a plugin's such as "decord").
    ``threaded``: every stage on its own thread, overlapping decoding and encoding (the output
    is the same as without); None: yes wherever there is more than one core
    (``EditOptions.prefers_threads``). ``threads``: torch's CPU threads (default: ``options.torch_threads()``
    for a face edit, else every core).

    ``on_start(reader)`` is called once the input is open (e.g. to size a progress bar);
    ``on_frame(record)`` after each frame is written.
    """
    audio_inputs = [audio] if audio not in ("copy", "drop") else []
    check_output_path(output, [input, *audio_inputs], overwrite)
    for path in audio_inputs:
        check_audio_file(path)  # before the models load
    start, end = parse_range(start, end)  # a bad --start/--end fails before the models load
    if start is not None and Path(input).is_file():
        check_start(start, describe(input))
    encode = encode or EncodeOptions(codec=default_codec(output))
    check_encode(encode)  # before the models load and the frames are decoded
    check_container(output, encode.codec)  # audio it cannot store is re-encoded
    if is_image(output):
        _check_picture(input, output, audio, start, end)
    elif audio_inputs and not holds_sound(output):
        raise OutputError(f"a {Path(output).suffix} file holds no sound, so it cannot take --audio {audio}: leave "
                          "--audio out, or use a .mp4, .mkv, .mov or .webm name")
    if chain is None and (edits or model or options):
        from ..edit.recipe import EditOptions

        options = options or EditOptions()
        options.edits = [edits] if isinstance(edits, str) else list(edits) if edits is not None else options.edits
        options.model = model or options.model
        if not Path(input).is_file():
            describe(input)  # the input's own one-line error comes first
        options.threaded = threaded
        chain = prepare_edit(input, options)
        threaded = options.threaded
    threaded = True if threaded is None else threaded
    if options is None or options.latents is None:
        check_replayed_video(chain or "copy", input)
    pipeline = Pipeline(chain or "copy", batch_size=batch_size, threaded=threaded, from_frames=True)
    try:
        if options is None or options.latents is None:  # prepare_edit checked --latents' cache
            check_replayed(pipeline)
    except BaseException:
        pipeline.close()
        raise
    reader_cls = default_registry().get("reader", reader)
    if pipeline.needs_prepass:  # e.g. offline smoothing: analyse the whole range first
        log.info("first pass: analysing %s", input)
        with reader_cls(input, start=start, end=end, salvage=salvage) as first:
            pipeline.prepass(prefetch(first.frames(rgb=not _in_parts(pipeline, first.info)), depth=2 * batch_size))
    with ffmpeg_helpers(options is None or options.ffmpeg_helpers()), \
            reader_cls(input, start=start, end=end, salvage=salvage) as reader, pipeline, \
            torch_threads(threads or (options.torch_threads() if options is not None else None)):
        info = reader.info
        if on_start is not None:
            on_start(reader)
        trimmed = reader.start is not None
        writer: Writer | None = None
        cache = None
        if options is not None and options.latents is not None:
            from ..edit.cache import LatentCache

            cache = LatentCache(options.latents)
        uncovered = 0  # frames outside the range the latent cache was made from: never edited
        try:
            # RGB is made on the decoding thread when some stage will look at whole pictures
            rgb = not (pipeline.is_identity and passthrough) and not _in_parts(pipeline, info)
            with pipeline.stream(timed(reader.frames(rgb=rgb), pipeline.seconds, "decode")) as records:
                for record in records:
                    t = time.perf_counter()
                    if writer is None:
                        # a trimmed range starts at 0 in the output; otherwise timestamps are kept
                        offset = record.pts * info.time_base if trimmed else Fraction(0)
                        writer = Writer(output, info.width, info.height, info.time_base, info.fps, encode,
                                        info, [] if is_image(output) else _audio_plan(audio, reader, record),
                                        inputs=[input, *audio_inputs], overwrite=overwrite, offset=offset,
                                        until=_range_end(reader), passthrough=passthrough)
                    writer.write(record)
                    pipeline.seconds["encode"] += time.perf_counter() - t
                    uncovered += cache is not None and not cache.covers(record.index)
                    if on_frame is not None:
                        on_frame(record)
            if writer is None:
                raise InputError(f"no frames to write: {input} has none in the selected range")
            t = time.perf_counter()
            writer.close()
            pipeline.seconds["encode"] += time.perf_counter() - t
        except BaseException as err:
            if writer is not None:
                writer.abort(err)
            raise
        tracks = [t for side in writer.audio for t in side.tracks]
        sound = [t for t in tracks if t.kind == "audio"]
        return {"input": str(input), "output": str(output), "frames": writer.frames_written,
                "passed_through": writer.frames_passed_through, "patched": writer.frames_patched,
                "changed": writer.frames_changed, **({"uncovered": uncovered} if cache is not None else {}),
                "width": writer.size[0], "height": writer.size[1], "codec": writer.options.codec,
                "encoder": writer.encoder_options,
                "audio": "none" if not sound else "copied" if all(t.copy for t in sound) else "re-encoded",
                "subtitles": len(tracks) - len(sound),
                "busy_seconds": {k: round(v, 3) for k, v in pipeline.seconds.items()}}


def filter_raw(instream, outstream, size: tuple[int, int], rate, chain: str | Chain = "copy", *,
               pix_fmt: str = "rgb24", batch_size: int = 8,
               on_frame: Callable[[FrameRecord], None] | None = None) -> int:
    """Raw frames in, processed raw frames out (same size, format and count), as a filter in an
    ffmpeg pipe. Returns the number of frames written."""
    reader = RawFrameReader(instream, size[0], size[1], parse_rate(rate), pix_fmt)
    writer = RawFrameWriter(outstream, pix_fmt)
    pipeline = Pipeline(chain, batch_size=batch_size, threaded=True, from_frames=True)
    if pipeline.needs_prepass:
        pipeline.close()
        raise ChainError("this chain reads the video twice (smooth=offline); a pipe can be read "
                         "only once: use smooth=stream with filter, or filter-file")
    short_read: InputError | None = None

    def frames():
        nonlocal short_read
        try:
            yield from reader
        except InputError as err:  # a partial last frame: finish the complete ones first
            short_read = err

    with pipeline:
        for record in pipeline.run(frames()):
            writer.write(record)
            if on_frame is not None:
                on_frame(record)
    writer.flush()
    if short_read is not None:
        raise short_read
    return writer.frames_written


def filter_file(source: str | os.PathLike, target: str | os.PathLike, chain: str | Chain = "copy", *,
                encode: EncodeOptions | None = None, audio: str = "copy", overwrite: bool = False,
                ffmpeg: str = "ffmpeg", batch_size: int = 8, start=None, end=None,
                on_start: Callable | None = None,
                on_frame: Callable[[FrameRecord], None] | None = None) -> dict:
    """Decode ``source`` with the ffmpeg CLI, run ``chain`` here, encode ``target`` with the
    ffmpeg CLI (see :mod:`videoinv.video.ffmpeg_cli`). ``start``/``end``: the range, as
    ``edit_video`` takes it (its audio, subtitles and chapters cut to match)."""
    builder, binary = ffmpeg_python(), ffmpeg_binary(ffmpeg)
    source, encode = str(source), encode or EncodeOptions(codec=default_codec(target))
    if audio not in ("copy", "drop"):
        raise VideoinvError("filter-file takes --audio copy or drop")
    check_output_path(target, [source], overwrite)
    start, end = parse_range(start, end)
    check_encode(encode, encoder=False)  # the ffmpeg program's own encoders may differ from ours:
    formats = check_program_encoder(binary, encode)  # asked of it
    if encode.pix_fmt is None and formats and default_pix_fmt(encode.codec) not in formats:
        encode = replace(encode, pix_fmt=formats[0])
    check_container(target, encode.codec)
    if is_image(target):
        _check_picture(source, target, "drop", start, end)
        encode = jpeg_colours(encode)
    info = describe(source)
    check_start(start, info)
    span = frame_span(source, start, end)  # the frames edit keeps, and where they lie
    sound = span.sound_window() if span is not None else {}
    check_replayed_video(chain, source)
    if on_start is not None:
        on_start(info)
    size = (info.width, info.height)
    if audio == "copy" and info.has_audio and not holds_sound(target) and not is_image(target):
        log.warning("a %s file holds no sound: the audio of %s is left out", Path(target).suffix, source)
    with atomic_output(target, [source], overwrite) as tmp, \
            Pipeline(chain, batch_size=batch_size, threaded=True, from_frames=True) as pipeline, \
            tempfile.TemporaryDirectory(prefix="videoinv-ffmpeg-") as logs, open_input(source) as timeline:
        check_replayed(pipeline)
        if pipeline.needs_prepass:  # e.g. offline smoothing: a first pass over the range, as edit's
            log.info("first pass: analysing %s", source)
            with Reader(source, start=start, end=end) as first:
                pipeline.prepass(prefetch(first.frames(rgb=not _in_parts(pipeline, first.info)), depth=2 * batch_size))
        chapters = None
        if "to" in sound:  # the ffmpeg program keeps the chapters after an input's end
            chapters = os.path.join(logs, "chapters.txt")
            with open(chapters, "w", encoding="utf-8") as f:
                f.write(ffmetadata(window_chapters(source, sound, 1 / info.fps)))
        dec_cmd = decode_command(builder, source, info, binary, span)
        with_sound = audio == "copy" and info.has_audio and holds_sound(target)
        enc_cmd = encode_command(builder, source, str(tmp), info, size, encode, with_sound, binary, sound, chapters,
                                 folder=logs)
        log.debug("decoder: %s", " ".join(dec_cmd))
        log.debug("encoder: %s", " ".join(enc_cmd))
        dec_log, enc_log = os.path.join(logs, "decode.log"), os.path.join(logs, "encode.log")
        with open(dec_log, "wb") as dl, open(enc_log, "wb") as el:
            dec = subprocess.Popen(dec_cmd, stdout=subprocess.PIPE, stderr=dl)
            enc = subprocess.Popen(enc_cmd, stdin=subprocess.PIPE, stderr=el)
        pipe_error: VideoinvError | None = None
        try:
            # the frames' numbers and times are the source's, as edit gives them to the stages
            # (keyframed edits, a latent cache): read from the packets as the frames come
            first, times = span.first if span is not None else 0, video_stream(timeline)
            reader = RawFrameReader(dec.stdout, size[0], size[1], info.fps, name="ffmpeg's decoded frames",
                                    first=first, stamps=islice(presentation_pts(timeline, times), first, None),
                                    time_base=Fraction(times.time_base.numerator, times.time_base.denominator))
            writer = RawFrameWriter(enc.stdin, name="ffmpeg's encoder input")
            try:
                for record in pipeline.run(reader):
                    writer.write(record)
                    if on_frame is not None:
                        on_frame(record)
                writer.flush()
            except (InputError, OutputError) as err:
                pipe_error = err  # the exit codes below say which side failed, and why
                if isinstance(err, OutputError):
                    dec.kill()  # nobody reads its pipe any more: it would wait on it for ever
            try:
                enc.stdin.close()
            except BrokenPipeError:
                pass
            dec_rc, enc_rc = dec.wait(), enc.wait()
        except BaseException:
            for proc in (dec, enc):
                proc.kill()
                proc.wait()
            raise
        finally:
            dec.stdout.close()
        if dec_rc != 0 and not isinstance(pipe_error, OutputError):  # else it was killed above
            raise InputError(f"ffmpeg could not decode {source}: {error_message(dec_log)}")
        if enc_rc != 0:
            raise OutputError(f"ffmpeg could not encode {target}: {error_message(enc_log)}")
        if pipe_error is not None:
            raise pipe_error
        if writer.frames_written == 0:
            raise InputError(f"ffmpeg decoded no frames from {source}"
                             + (" in the selected range" if span is not None else ""))
    _, stored = picture_sizes(encode, encode.pix_fmt or default_pix_fmt(encode.codec), *size)
    codecs, subtitles = sound_plan(source, info, str(target), with_sound)
    return {"input": source, "output": str(target), "frames": writer.frames_written,
            "width": stored[0], "height": stored[1], "codec": encode.codec,
            "audio": "none" if not codecs else "copied" if all(c == "copy" for c in codecs) else "re-encoded",
            "subtitles": len(subtitles)}


def invert_video(input: str | os.PathLike, output: str | os.PathLike, *, model: str | None = None, options=None,
                 start=None, end=None, overwrite: bool = False, salvage: bool = False, batch_size: int = 8,
                 threaded: bool | None = None, threads: int | None = None,
                 on_frame: Callable[[FrameRecord], None] | None = None,
                 on_start: Callable[[Reader], None] | None = None) -> dict:
    """Detect, track, align and invert every face of ``input`` and store the result in the
    latent cache ``output`` (``.vinv``) for ``edit_video(..., options=EditOptions(latents=...))``."""
    from ..edit.cache import FORMAT, LatentCacheWriter, fingerprint, model_info
    from ..edit.recipe import EditOptions
    from ..models.specs import load_models

    options = options or EditOptions()
    options.model = model or options.model
    info = describe(input)
    if Path(output).suffix != ".vinv":
        raise OutputError(f"a latent cache is named *.vinv, not {Path(output).name}")
    check_output_path(output, [input], overwrite)
    start, end = parse_range(start, end)
    check_start(start, info)
    options.check_precision()
    options.face_selection()  # a bad --faces fails here, before the models load
    models = load_models(options.model, options.device)
    options.threaded = threaded = options.prefers_threads() if threaded is None else threaded
    pipeline = Pipeline(options.analysis(models.size), batch_size=batch_size, threaded=threaded, from_frames=True)
    if pipeline.needs_prepass:
        with Reader(input, start=start, end=end, salvage=salvage) as first:
            pipeline.prepass(prefetch(first.frames(rgb=not _in_parts(pipeline, first.info)), depth=2 * batch_size))
    metadata = {"format": FORMAT, "fingerprint": fingerprint(input, info), "models": model_info(models),
                "size": models.size, "seed": options.seed if options.seed is not None else 0,
                "smooth": options.smooth, "latent_smooth": options.latent_smooth, "every": options.every,
                "detector": options.detector_name(),
                "faces": options.faces, "range": [str(start) if start else None, str(end) if end else None]}
    frames = faces = 0
    with ffmpeg_helpers(options.ffmpeg_helpers()), \
            Reader(input, start=start, end=end, salvage=salvage) as reader, pipeline, \
            torch_threads(threads or options.torch_threads()), \
            LatentCacheWriter(output, metadata, inputs=[input], overwrite=overwrite) as cache, \
            pipeline.stream(reader.frames(rgb=not _in_parts(pipeline, reader.info))) as records:
        if on_start is not None:
            on_start(reader)
        for record in records:
            cache.add(record)
            frames += 1
            faces += len(record.faces)
            if on_frame is not None:
                on_frame(record)
        if frames == 0:  # the cache is not written
            raise InputError(f"no frames to invert: {input} has none in the selected range")
    return {"input": str(input), "output": str(output), "frames": frames, "faces": faces,
            "tracks": len(cache.rows), "model": options.model}
