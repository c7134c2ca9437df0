"""The ``videoinv`` command."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click

from . import __version__
from .errors import VideoinvError

log = logging.getLogger("videoinv")

CHAIN_HELP = "chain spec, ffmpeg filter syntax (see 'videoinv stages'); 'copy' passes frames through"


def _common(func):
    """-v/--verbose and -q/--quiet on every command (they may follow the command's arguments, or
    come before the command: ``videoinv -q edit ...``)."""

    @click.option("-v", "--verbose", count=True, help="more log output (FFmpeg's warnings too)")
    @click.option("-q", "--quiet", is_flag=True, help="errors only, no progress bar")
    @functools.wraps(func)
    def wrapper(*args, verbose: int, quiet: bool, **kwargs):
        from .console import setup_logging

        before = click.get_current_context().find_root().params
        verbose, quiet = verbose + before.get("verbose", 0), quiet or before.get("quiet", False)
        setup_logging(verbose, quiet)
        return func(*args, quiet=quiet, **kwargs)

    return wrapper


def _quality_options(func):
    """--crf and --preset, as edit, filter-file and bench speed take them."""
    from .video.writer import X264_PRESETS

    func = click.option("--preset", type=click.Choice(X264_PRESETS), default=None,
                        help="speed/size trade-off [default: veryfast for x264, else medium]")(func)
    return click.option("--crf", type=int, default=None, help="quality (lower is better) [default: 18; for "
                        "mpeg4, mpeg1/2video and JPEG the quantiser, 1-31, default 2]")(func)


_WIDTH = click.option("--width", type=click.IntRange(2, 16384), default=None,
                      help="scale the output to this many pixels wide, the height in proportion "
                      "(e.g. 480 for a small .gif or a preview) [default: the input's]")


def _range_options(func):
    """--start/--end, as edit, invert, inspect, filter-file and bench compare (for A) take them."""
    func = click.option("--end", default=None, help="stop before this time or frame (exclusive)")(func)
    return click.option("--start", default=None, help="start at a time (12.5, 1:02.5) or frame (150f)")(func)


def _encode_options(func):
    """Video encoder options shared by edit and filter-file."""
    options = [
        click.option("--pix-fmt", default=None,
                     help="stored pixel format [default: yuv420p; yuv444p for ffv1; else the encoder's first "
                     "where it lacks yuv420p, e.g. yuv422p10le for prores_ks]"),
        click.option("--color-matrix", default="bt709", show_default=True,
                     type=click.Choice(["bt709", "bt601", "bt2020", "smpte240m", "source"]),
                     help="YUV matrix the output is converted to and tagged with"),
        click.option("--color-range", default="tv", show_default=True,
                     type=click.Choice(["tv", "pc", "source"]), help="YUV range of the output"),
        click.option("--odd", type=click.Choice(["pad", "crop"]), default="pad", show_default=True,
                     help="odd width/height with 4:2:0: pad (repeat the edge) or crop one pixel"),
        _WIDTH,
        click.option("-y", "--overwrite", is_flag=True, help="replace OUTPUT if it exists"),
    ]
    for option in reversed(options):
        func = option(func)
    func = _quality_options(func)
    return click.option("--codec", default=None,
                        help="video encoder: libx264, libx265, ffv1 (lossless), h264_nvenc, libvpx-vp9, ... "
                             "[default: libx264; libvpx-vp9 for .webm, gif for .gif, the picture's own for "
                             ".png, .jpg, .webp, .tif, .bmp]")(func)


def _make_encode(output, codec, crf, preset, pix_fmt, color_matrix, color_range, odd, width):
    from .video.writer import EncodeOptions, default_codec

    return EncodeOptions(codec=codec or default_codec(output), crf=crf, preset=preset, pix_fmt=pix_fmt,
                         matrix=color_matrix, range=color_range, odd=odd, width=width)


def _report(summary: dict, bar, as_json: bool) -> None:
    """The summary line (and JSON). Where start-up (loading the models) took a good part of the
    run, the frame rate after it is given too: the progress bar showed that one."""
    seconds, setup = bar.elapsed, bar.setup
    run = seconds - setup
    summary = dict(summary, seconds=round(seconds, 3), fps=round(summary["frames"] / seconds, 2) if seconds else None,
                   setup_seconds=round(setup, 3), fps_after_setup=round(summary["frames"] / run, 2) if run > 0 else None)
    if as_json:
        click.echo(json.dumps(summary))
    from .video.writer import is_image

    picture = summary["frames"] == 1 and is_image(summary["output"])  # no sound, no frame rate to speak of
    audio = f", audio {summary['audio']}" if "audio" in summary and not picture else ""
    if summary.get("subtitles"):
        audio += f", {_count(summary['subtitles'], 'subtitle stream')} copied"
    extra = "".join(f"; {summary[k]}" for k in ("edited", "model", "note") if k in summary)
    size = f"{summary['width']}x{summary['height']} {summary['codec']}"
    if picture:
        what, rate = f"a {size} picture", f"{setup:.1f} s of it start-up" if setup > 1.0 else ""
    else:
        what = f"{_count(summary['frames'], 'frame')} {size}"
        rate = f"{summary['fps'] or 0:.1f} fps"
        if setup > 1.0 and setup > 0.2 * seconds and summary["fps_after_setup"]:
            rate += f"; {summary['fps_after_setup']:.1f} fps after {setup:.1f} s of start-up"
    log.info("wrote %s: %s%s in %.1f s%s%s", summary["output"], what, audio, seconds, f" ({rate})" if rate else "", extra)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="videoinv", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="more log output, for every command")
@click.option("-q", "--quiet", is_flag=True, help="errors only, no progress bar, for every command")
def cli(verbose: int, quiet: bool) -> None:
    """Edit faces in videos through a StyleGAN2 latent space.

    Streams the frames, runs them through a chain of stages and writes the result with the
    source's exact timing, colours and audio.
    """


def _face_options(func):
    """Options of the face-editing chain shared by edit and invert."""
    options = [
        click.option("--model", default=None, help="fse (needs its weights), random:<size>[:<channels>] "
                     "(random weights: plumbing only) or GENERATOR+ENCODER  [default: fse]"),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N"),
        click.option("--faces", default="all", show_default=True, help="all, largest, or track ids (0,2)"),
        click.option("--every", type=click.IntRange(1), default=5, show_default=True, help="detect every N frames"),
        click.option("--detector", default="auto", show_default=True,
                     help="hog, cnn, a plugin's (retinaface), or auto: RetinaFace on a GPU when its weights "
                     "are present, else hog"),
        click.option("--smooth", type=click.Choice(["stream", "offline", "none"]), default="stream",
                     show_default=True, help="alignment smoothing"),
        click.option("--latent-smooth", type=click.Choice(["off", "causal", "lookahead"]), default="off",
                     show_default=True, help="temporal smoothing of W+ and F per face"),
        click.option("--seed", type=int, default=None, help="noise seed (track t uses seed+t) [default: 0]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _speed_options(func):
    """How a run uses the machine (never what it computes, except float rounding for batch,
    dtype and conv): passed to the command as one ``speed`` dict."""
    options = [
        click.option("--model-batch", type=click.IntRange(1), default=None,
                     help="frames whose faces go through a model together; halved by itself on out-of-memory "
                     "[default: 8; the generator's 1 on the CPU]"),
        click.option("--dtype", type=click.Choice(["float32", "tf32", "bfloat16", "float16"]), default="float32",
                     show_default=True, help="model precision: float32 in full, tf32 (TensorFloat-32 math on "
                     "CUDA), bfloat16 or float16 (autocast; float16 needs CUDA)"),
        click.option("--conv", type=click.Choice(["auto", "grouped", "shared"]), default="auto", show_default=True,
                     help="the generator's modulated conv form (auto: the faster one for the batch)"),
        click.option("--compile", "compile_", type=click.Choice(["off", "on", "graphs"]), default="off",
                     show_default=True, help="torch.compile the models (graphs: CUDA graphs too); the first "
                     "batches are slow while it compiles"),
        click.option("--detect-workers", type=click.IntRange(0), default=None,
                     help="processes detecting faces ahead of the tracker [default: 1 with 4+ cores]"),
        click.option("--threads", type=click.IntRange(1), default=None,
                     help="torch CPU threads [default: every core, or 1 per block where a light model "
                     "renders blocks side by side]"),
        click.option("--sequential", is_flag=True, help="run the stages one after the other on one thread "
                     "(no overlap; the same output; the default on one core without a GPU)"),
    ]

    @functools.wraps(func)
    def command(*args, model_batch, dtype, conv, compile_, detect_workers, threads, sequential, **kwargs):
        speed = {"batch": model_batch, "dtype": dtype, "conv": conv, "compile": compile_, "workers": detect_workers,
                 "threads": threads, "threaded": False if sequential else None}
        return func(*args, speed=speed, **kwargs)

    for option in reversed(options):
        command = option(command)
    return command


def _edit_options(model, device, faces, every, smooth, latent_smooth, seed, edits=(), segments="face",
                  exclude="", feather=15.0, blend="alpha", colour=False, latents=None, speed=None, detector="auto"):
    from .edit.recipe import EditOptions

    speed = speed or {}
    return EditOptions(edits=list(edits), model=model or "fse", device=device, faces=faces, every=every,
                       detector=detector, smooth=smooth, latent_smooth=latent_smooth, seed=seed,
                       segments=segments, exclude=exclude, feather=feather, blend=blend, colour=colour, latents=latents,
                       batch=speed.get("batch"), dtype=speed.get("dtype", "float32"),
                       conv=speed.get("conv", "auto"), workers=speed.get("workers"),
                       compile=speed.get("compile", "off"))


# edit's options that only build the face-editing chain (--chain takes their place)
_EDIT_ONLY = ("segments", "exclude", "feather", "blend", "colour", "device", "faces", "every", "detector", "smooth",
              "latent_smooth", "seed", "model_batch", "dtype", "conv", "compile_", "detect_workers")

# of those, what a latent cache (edit --latents) has already done
_INVERT_ONLY = ("every", "detector", "smooth", "latent_smooth", "detect_workers")


def _given_on_command_line(names) -> list[str]:
    """The flags (e.g. ``--segments``) of those parameters the user set, in the command's order."""
    ctx = click.get_current_context()
    return [param.opts[0] for param in ctx.command.params if param.name in names
            and ctx.get_parameter_source(param.name) is click.core.ParameterSource.COMMANDLINE]


@cli.command()
@click.argument("input", type=click.Path(dir_okay=True, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="output video file")
@click.option("--edit", "edits", multiple=True, metavar="NAME[@A-B]=STRENGTH",
              help="an edit (repeatable): smile=1.5, age@0-7=-2 (W+ layers 0-7 only), smile=0:0s,1.5:2s,0:4s "
              "(strength:time keyframes), sefa0=3, file.npy=1")
@click.option("--segments", default="face", show_default=True,
              help="where the edited face is pasted: skin, brows, eyes, nose, mouth, lips, forehead, face (a+b)")
@click.option("--exclude", default="", help="segments kept from the source (a+b)")
@click.option("--feather", type=click.FloatRange(min=0), default=15.0, show_default=True, help="mask edge, px at 1024")
@click.option("--blend", type=click.Choice(["alpha", "laplacian"]), default="alpha", show_default=True)
@click.option("--colour", is_flag=True, help="match the pasted face's colour to the frame")
@click.option("--latents", default=None, type=click.Path(path_type=str),
              help="a latent cache from 'videoinv invert' (skips detection and inversion)")
@_face_options
@click.option("--chain", default=None, help=CHAIN_HELP + " (instead of the options above)")
@_encode_options
@click.option("--audio", default="copy", show_default=True, metavar="copy|drop|FILE",
              help="copy the input's audio unchanged, drop it, or take it from FILE")
@_range_options
@click.option("--salvage", is_flag=True, help="skip undecodable packets of a damaged input")
@click.option("--reader", default="pyav", show_default=True, help="frame reader: pyav, or a plugin's (decord)")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
              help="frames per batch through the stages")
@_speed_options
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary on stdout")
@_common
def edit(input, output, edits, segments, exclude, feather, blend, colour, latents, model, device, faces, every,
         detector, smooth, latent_smooth, seed, chain, codec, crf, preset, pix_fmt, color_matrix, color_range, odd,
         width, overwrite, audio, start, end, salvage, reader, batch_size, speed, as_json, quiet):
    """Edit the faces in INPUT and write OUTPUT with the source's timing, colours and audio.

    \b
    videoinv edit in.mp4 -o out.mp4 --edit smile=1.5
    videoinv edit in.mp4 -o out.mp4 --edit age=2 --edit smile=0:0s,1.5:2s --segments mouth+eyes
    videoinv edit in.mp4 -o out.mp4 --latents in.vinv --edit pose=-1    (after videoinv invert)
    videoinv edit in.mp4 -o out.mp4 --chain copy                        (re-encode only)
    """
    from .console import FrameProgress, progress_enabled
    from .pipeline.jobs import edit_video

    encode = _make_encode(output, codec, crf, preset, pix_fmt, color_matrix, color_range, odd, width)
    options = None
    if chain is not None:
        if edits or latents or model:
            raise VideoinvError("give either --chain or the edit options (--edit, --model, --latents), not both")
        ignored = _given_on_command_line(_EDIT_ONLY)
        if ignored:  # they used to be dropped without a word
            raise VideoinvError(f"{', '.join(ignored)} set{'s' if len(ignored) == 1 else ''} up the face edit, "
                                "which --chain replaces: give the chain's stages their own options instead "
                                "(e.g. blend=segments=mouth+eyes:feather=10; 'videoinv stages' lists them)")
    elif edits or latents or model:
        fixed = _given_on_command_line(_INVERT_ONLY) if latents else []
        if fixed:  # the cache holds the tracks and latents these made: they used to be ignored without a word
            raise VideoinvError(f"{', '.join(fixed)} shape{'s' if len(fixed) == 1 else ''} the detection and "
                                f"inversion that {latents} already holds: give {'it' if len(fixed) == 1 else 'them'} "
                                "to 'videoinv invert' when making the cache, or drop --latents")
        options = _edit_options(model, device, faces, every, smooth, latent_smooth, seed, edits, segments, exclude,
                                feather, blend, colour, latents, speed, detector=detector)
    with FrameProgress(f"edit {click.format_filename(input)}", progress_enabled(quiet)) as bar:
        summary = edit_video(input, output, chain, options=options, start=start, end=end, encode=encode, audio=audio,
                             overwrite=overwrite, salvage=salvage, batch_size=batch_size,
                             reader=reader, threaded=speed["threaded"], threads=speed["threads"], on_frame=bar.advance,
                             on_start=lambda reader: bar.start(_expected_frames(reader)))
    if options is not None:
        summary["edited"] = f"faces edited in {summary['changed']} of {summary['frames']} frames"
        if summary.get("uncovered"):
            log.warning("%d of %d frames lie outside the frames %s was inverted from: they are not edited "
                        "(run 'videoinv invert' over the range you edit)", summary["uncovered"], summary["frames"],
                        latents)
        if summary["changed"] == 0:
            log.warning("no face was edited: %s", _no_face(options, latents))
    if options is not None and options.model.startswith("random"):
        summary["model"] = f"{options.model} (random weights: plumbing only)"
    if options is None and chain is None:
        summary["note"] = "no --edit given: re-encoded only (see 'videoinv edit --help')"
    _report(summary, bar, as_json)


@cli.command()
@click.argument("input", type=click.Path(path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="the latent cache (.vinv)")
@_face_options
@_range_options
@click.option("-y", "--overwrite", is_flag=True, help="replace OUTPUT if it exists")
@_speed_options
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary on stdout")
@_common
def invert(input, output, model, device, faces, every, detector, smooth, latent_smooth, seed, start, end,
           overwrite, speed, as_json, quiet):
    """Detect, align and invert every face of INPUT once, into a latent cache for 'edit --latents'."""
    from .console import FrameProgress, progress_enabled
    from .pipeline.jobs import invert_video

    options = _edit_options(model, device, faces, every, smooth, latent_smooth, seed, speed=speed, detector=detector)
    with FrameProgress(f"invert {click.format_filename(input)}", progress_enabled(quiet)) as bar:
        summary = invert_video(input, output, options=options, start=start, end=end, overwrite=overwrite,
                               threaded=speed["threaded"], threads=speed["threads"],
                               on_frame=bar.advance, on_start=lambda reader: bar.start(_expected_frames(reader)))
    if as_json:
        click.echo(json.dumps(summary))
    if summary["faces"] == 0:
        log.warning("the cache holds no face: %s", _no_face(options))
    counts = ", ".join(_count(summary[k], k[:-1]) for k in ("frames", "faces"))
    log.info("wrote %s: %s in %s, model %s, in %.1f s", output, counts, _count(summary["tracks"], "track"),
             summary["model"], bar.elapsed)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _no_face(options, latents: str | None = None) -> str:
    """Why no face was edited (or inverted)."""
    if options.faces not in ("all", "largest", ""):
        return f"no track matched --faces {options.faces} ('videoinv inspect' draws each track's id)"
    if latents:
        return f"{latents} holds no face in these frames"
    return "no face was found in any frame (try --detector cnn, or --every 1)"


@cli.group()
def directions():
    """Edit directions: the named ones, and those computed from a generator (GANSpace, SeFa)."""


@directions.command("list")
@click.option("--model", default=None, help="also list the computed directions cached for this model")
@_common
def directions_list(model, quiet):
    """Named directions and where their files are."""
    from .edit.directions import NAMED
    from .models import weights as W

    for name, weight in NAMED.items():
        w = W.spec(weight)
        click.echo(f"{name:12s} {W.status(weight):8s} {weight} ({w.terms}): {w.purpose}")
    click.echo("ganspaceN   computed  principal component N of mapped latents (strength in std devs)")
    click.echo("sefaN       computed  closed-form factorisation direction N (strength in std devs)")
    click.echo("FILE        any .npy, .pt or .safetensors direction (W: 512 values, W+: layers x 512)")
    if model:
        from .edit.directions import cached_tables
        from .models.specs import load_models

        for path in cached_tables(load_models(model).G):
            click.echo(f"cached: {path}")


@directions.command("compute")
@click.option("--model", required=True, help="whose generator (fse, random:256, GENERATOR+ENCODER)")
@click.option("--method", type=click.Choice(["ganspace", "sefa"]), required=True)
@click.option("--layers", default=None, help="SeFa: W+ rows A-B to factorise [default: all]")
@click.option("--samples", type=click.IntRange(min=100), default=10_000, show_default=True,
              help="mapped latents sampled")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--top", type=int, default=8, show_default=True, help="how many to print")
@_common
def directions_compute(model, method, layers, samples, seed, top, quiet):
    """Compute (and cache) GANSpace or SeFa directions of a generator; edit with ganspaceN/sefaN."""
    from .edit.directions import computed
    from .models.specs import load_models

    span = None
    if layers:
        if method != "sefa":
            raise VideoinvError("--layers is for --method sefa (GANSpace works on the whole W code)")
        lo, sep, hi = layers.partition("-")
        if not (lo.strip().isdigit() and (hi.strip().isdigit() or not sep)):
            raise VideoinvError(f"bad --layers {layers!r}: give W+ rows as A-B, e.g. 0-5, or one row, e.g. 3")
        span = (int(lo), int(hi or lo))
        if span[1] < span[0]:
            raise VideoinvError(f"bad --layers {layers!r}: the last row comes before the first; write {hi}-{lo}")
    G = load_models(model).G
    if span and span[1] >= G.n_latent:
        raise VideoinvError(f"--layers {layers}: this generator has W+ rows 0-{G.n_latent - 1}")
    table = computed(G, method, span, samples, seed, refresh=True)
    for i in range(min(top, len(table["vectors"]))):
        click.echo(f"{method}{i}: std {float(table['scales'][i]):.4f}")
    log.info("%d %s directions cached for this generator", len(table["vectors"]), method)


def _expected_frames(reader) -> int | None:
    info = reader.info
    total = info.frame_count
    if reader.end is not None:
        if reader.end.frame is not None:
            total = min(total, reader.end.frame)
        elif reader.end.seconds is not None:
            total = min(total, round(float(reader.end.seconds * info.fps)))
    if reader.start is not None:
        first = reader.start.frame if reader.start.frame is not None else round(float(reader.start.seconds * info.fps))
        total -= first
    return max(total, 0) or None


@cli.command("filter")
@click.option("--size", required=True, help="frame size WIDTHxHEIGHT, e.g. 1280x720")
@click.option("--rate", required=True, help="frame rate, e.g. 30 or 30000/1001")
@click.option("--pix-fmt", type=click.Choice(["rgb24", "bgr24"]), default="rgb24", show_default=True)
@click.option("--chain", default="copy", show_default=True, help=CHAIN_HELP)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
              help="frames per batch through the stages")
@_common
def filter_(size, rate, pix_fmt, chain, batch_size, quiet):
    """Raw frames on stdin -> processed raw frames on stdout (an ffmpeg pipe filter).

    \b
    ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - \\
      | videoinv filter --size 1280x720 --rate 30 --chain copy \\
      | ffmpeg -f rawvideo -pix_fmt rgb24 -s 1280x720 -r 30 -i - -i in.mp4 \\
               -map 0:v -map 1:a? -c:a copy out.mp4
    """
    from .pipeline.jobs import filter_raw
    from .video.timing import parse_rate, parse_size

    dims, fps = parse_size(size), parse_rate(rate)
    if sys.stdin.isatty():
        raise VideoinvError("filter reads raw frames from stdin: pipe ffmpeg's rawvideo output into it "
                            "(see 'videoinv filter --help')")
    if sys.stdout.isatty():
        raise VideoinvError("filter writes raw frames to stdout: pipe them into ffmpeg or a file "
                            "(see 'videoinv filter --help')")
    frames = filter_raw(sys.stdin.buffer, sys.stdout.buffer, dims, fps, chain, pix_fmt=pix_fmt,
                        batch_size=batch_size)
    log.debug("filtered %d frames", frames)


@cli.command("filter-file")
@click.argument("input", type=click.Path(path_type=str))
@click.argument("output", type=click.Path(path_type=str))
@click.option("--chain", default="copy", show_default=True, help=CHAIN_HELP)
@_encode_options
@click.option("--audio", type=click.Choice(["copy", "drop"]), default="copy", show_default=True)
@_range_options
@click.option("--ffmpeg", "ffmpeg_bin", default="ffmpeg", show_default=True, help="the ffmpeg program")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary on stdout")
@_common
def filter_file(input, output, chain, codec, crf, preset, pix_fmt, color_matrix, color_range, odd,
                width, overwrite, audio, start, end, ffmpeg_bin, as_json, quiet):
    """Like 'edit', but decoding and encoding with the ffmpeg program around the raw pipe.

    The raw pipe carries no timestamps: the output has the input's nominal constant frame
    rate. Use 'edit' to keep variable-frame-rate timing.
    """
    from types import SimpleNamespace

    from .console import FrameProgress, progress_enabled
    from .pipeline.jobs import filter_file as run
    from .video.timing import parse_range

    encode = _make_encode(output, codec, crf, preset, pix_fmt, color_matrix, color_range, odd, width)
    start, end = parse_range(start, end)
    with FrameProgress(f"filter {click.format_filename(input)}", progress_enabled(quiet)) as bar:
        summary = run(input, output, chain, encode=encode, audio=audio, overwrite=overwrite, start=start, end=end,
                      ffmpeg=ffmpeg_bin, on_frame=bar.advance,
                      on_start=lambda info: bar.start(_expected_frames(SimpleNamespace(info=info, start=start, end=end))))
    _report(summary, bar, as_json)


@cli.command()
@click.argument("input", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@click.option("--scan", is_flag=True, help="read every packet: exact frame count and VFR check")
@_common
def probe(input, as_json, scan, quiet):
    """Describe INPUT: streams, frame rate / VFR, colour tags, rotation, duration, audio,
    subtitles, attached files and cover picture."""
    from .video.probe import describe

    info = describe(input, scan=scan)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        from rich.console import Console

        Console(highlight=False).print(_probe_table(info))


def _probe_table(info):
    from rich.table import Table

    def dur(seconds):
        return "unknown" if seconds is None else f"{seconds:.3f} s"

    vfr = {True: "variable (VFR)", False: "constant", None: "unknown"}[info.vfr]
    exact = "" if info.frame_count_exact else " (estimate)"
    rotation = "none" if info.orientation == "none" else f"{info.orientation} (applied; upright output)"
    table = Table(title=info.path, show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("container", f"{info.format}, {info.size_bytes:,} bytes"
                      + (f", {info.bit_rate / 1000:.0f} kb/s" if info.bit_rate else "")),
        ("duration", dur(info.duration)),
        ("video", f"#{info.stream_index} {info.codec}"
                  + (f" ({info.profile})" if info.profile else "") + f", {info.pix_fmt}"),
        ("size", f"{info.width}x{info.height}" + ("" if (info.width, info.height) == (
            info.coded_width, info.coded_height) else f" (stored {info.coded_width}x{info.coded_height})")),
        ("rotation", rotation),
        ("frame rate", f"{float(info.fps):.3f} fps ({info.fps.numerator}/{info.fps.denominator}), {vfr}"
                       + (f", average {float(info.avg_fps):.3f}" if info.avg_fps else "")),
        ("frames", f"{info.frame_count}{exact}" + (
            f"; TRUNCATED: the last {info.missing_frames} are missing" if info.missing_frames else "")),
        ("time base", f"{info.time_base.numerator}/{info.time_base.denominator}, "
                      f"video starts at {info.start_time:.3f} s"),
        ("colour tags", ", ".join(f"{k} {v}" for k, v in info.colour_tags.items())),
        ("colour used", info.colour.describe()),
    ]
    if not info.audio:
        rows.append(("audio", "none"))
    for a in info.audio:
        rows.append((f"audio #{a.index}", f"{a.codec}, {a.sample_rate} Hz, {a.layout or a.channels}"
                     + (f", {a.bit_rate / 1000:.0f} kb/s" if a.bit_rate else "")
                     + f", {dur(a.duration)}" + (f", {a.language}" if a.language else "")))
    for t in info.subtitles:
        rows.append((f"subtitles #{t['index']}", t["codec"] + (f", {t['language']}" if t["language"] else "")))
    for t in info.attachments:
        rows.append((f"attached #{t['index']}", f"{t['filename']} ({t['mimetype']}, {t['size']:,} bytes)"))
    if info.cover is not None:
        c = info.cover
        rows.append((f"cover #{c['index']}", f"{c['codec']}, {c['width']}x{c['height']}"
                     + (f", {c['filename']}" if c["filename"] else "")))
    for k, v in rows:
        table.add_row(k, v)
    return table


@cli.command()
@click.argument("input", type=click.Path(path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="annotated video")
@click.option("--json", "json_path", type=click.Path(path_type=str), default=None, help="write per-frame tracks here")
@click.option("--every", type=click.IntRange(1), default=5, show_default=True, help="detect every N frames")
@click.option("--detector", default="auto", show_default=True,
              help="hog, cnn, a plugin's (retinaface), or auto: the one 'edit' picks (RetinaFace on a GPU "
              "when its weights are present, else hog)")
@click.option("--smooth", type=click.Choice(["stream", "offline", "none"]), default="stream", show_default=True)
@click.option("--segments", default="face", show_default=True, help="mask outlines to draw, e.g. mouth+eyes")
@click.option("--faces", default="all", show_default=True,
              help="all, largest, or track ids (0,2): the faces 'edit --faces' would edit")
@click.option("--select", type=click.Choice(["all", "largest"]), default=None, hidden=True)  # --faces' old name
@_range_options
@click.option("--crf", type=int, default=None, help="quality (lower is better) [default: 20 for x264, else the "
              "encoder's own]")
@click.option("--preset", default="veryfast", show_default=True)
@_WIDTH
@click.option("-y", "--overwrite", is_flag=True, help="replace the outputs if they exist")
@_common
def inspect(input, output, json_path, every, detector, smooth, segments, faces, select, start, end, crf, preset,
            width, overwrite, quiet):
    """Draw the faces found in INPUT (ids, boxes, landmarks, smoothed quads, masks) into OUTPUT.

    Needs no model weights. With --json, also writes every frame's tracks.
    """
    from .console import FrameProgress, progress_enabled
    from .edit.recipe import EditOptions
    from .pipeline.jobs import edit_video
    from .video.writer import EncodeOptions, default_codec

    options = EditOptions(detector=detector, segments=segments, faces=select or faces)
    options.check_segments()  # in the option's words; "mouth,eyes" used to break the chain at the comma
    chosen = "".join(f":{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in options.face_selection().items())  # as edit reads --faces
    detector = options.detector_name()  # auto: the faces an edit would see, from the same detector
    chain = (f"detect=every={every}:model={detector}{chosen},"
             f"align=size=256:crops=no:smooth={smooth},annotate=segments={'+'.join(options.segments)}")
    codec = default_codec(output)
    crf = 20 if crf is None and codec == "libx264" else crf  # a picture (.jpg) takes its encoder's own
    log_cm = _track_log(json_path, input, output, overwrite)
    with log_cm as tracks, FrameProgress(f"inspect {click.format_filename(input)}", progress_enabled(quiet)) as bar:
        def on_frame(record):
            bar.advance()
            if tracks is not None:
                tracks.add(record)

        summary = edit_video(input, output, chain, start=start, end=end, overwrite=overwrite,
                             encode=EncodeOptions(codec=codec, crf=crf, preset=preset, width=width), on_frame=on_frame,
                             on_start=lambda reader: bar.start(_expected_frames(reader)))
    _report(summary, bar, False)
    if tracks is not None:
        log.info("%s: %s; tracks written to %s", _count(len(tracks.tracks), "track"),
                 ", ".join(f"#{k} frames {v['first']}-{v['last']}" for k, v in sorted(tracks.tracks.items())),
                 json_path)


def _track_log(json_path, input, output, overwrite):
    import contextlib

    if json_path is None:
        return contextlib.nullcontext(None)
    from .faces.tracklog import TrackLog
    from .files import same_file

    if same_file(json_path, output):
        raise VideoinvError("--json and -o name the same file; choose another name for the tracks")
    return TrackLog(json_path, input, inputs=[input], overwrite=overwrite)


@cli.command()
@click.argument("output", type=click.Path(path_type=str))
@click.option("--seconds", type=click.FloatRange(min=0.04), default=5.0, show_default=True)
@click.option("--size", default="1280x720", show_default=True, help="WIDTHxHEIGHT")
@click.option("--rate", default="30", show_default=True, help="frame rate")
@click.option("--no-audio", is_flag=True, help="leave out the audio track")
@click.option("-y", "--overwrite", is_flag=True, help="replace OUTPUT if it exists")
@_common
def sample(output, seconds, size, rate, no_audio, overwrite, quiet):
    """Write a synthetic clip with a real face and sound, to try the tool on."""
    from .samples import make_sample
    from .video.timing import parse_rate, parse_size

    frames = make_sample(output, seconds, parse_size(size), parse_rate(rate), audio=not no_audio,
                         overwrite=overwrite)
    log.info("wrote %s: %d frames", output, frames)


@cli.command()
@_common
def stages(quiet):
    """List the stages a chain can use, with their options."""
    from .registry import default_registry

    registry = default_registry()
    for name in registry.names("stage"):
        cls = registry.stage(name)
        origin = registry.origin("stage", name)
        click.echo(f"{name}  {cls.summary()}" + ("" if origin == "core" else f"  [{origin}]"))
        for p in cls.params:
            default = "+".join(map(str, p.default)) if isinstance(p.default, (list, tuple)) else p.default
            shared = " (one per chain: given on any stage, the others take it)" if p.shared else ""
            click.echo(f"    {p.name}={p.kind_name}  {p.help}{shared} [default: {default}]")
        if cls.extra_keys:
            click.echo("    NAME=value  (any further names are accepted)")
    click.echo("\nA chain over a video runs its stages in order: detect, align, invert (or latents), edit, "
               "synthesize, blend (e.g. detect,align,invert=model=fse,edit=smile=1,synthesize,blend).")


@cli.group()
def weights():
    """The model weight files: list, fetch, import, verify, convert.

    Nothing is downloaded unless you ask. Several files carry non-commercial licences
    ('videoinv weights list' shows them).
    """


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@_common
def weights_list(as_json, quiet):
    """Every known weight file: purpose, licence, size, status, path."""
    from .models import weights as W

    rows = []
    for name, w in W.WEIGHTS.items():
        path = W.path_of(name)
        rows.append({"name": name, "file": w.filename, "purpose": w.purpose, "licence": w.licence,
                     "size": path.stat().st_size if path.exists() else w.size, "status": W.status(name),
                     "path": str(path), "source": w.page})
    if as_json:
        click.echo(json.dumps({"cache": str(W.weights_dir()), "weights": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    wide = console.width >= 150  # else the file and purpose columns would be squeezed to nothing
    table = Table(title=f"weights in {W.weights_dir()}",
                  caption="full licences and sources: --json" if wide else
                  "files, purposes, full licences and sources: --json (or a wider terminal)")
    table.add_column("name", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=max(len(r["status"]) for r in rows))
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("licence", no_wrap=wide)
    if wide:
        table.add_column("file (in the folder above)", overflow="fold")
        table.add_column("purpose", overflow="fold")
    for r in rows:
        extra = [r["file"], r["purpose"]] if wide else []
        table.add_row(r["name"], r["status"], _human_size(r["size"]), W.spec(r["name"]).terms, *extra)
    console.print(table)


def _human_size(n: int | None) -> str:
    if not n:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


@weights.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="download again even if present")
@_common
def weights_fetch(names, force, quiet):
    """Download weight files from their published sources (resumable, checksummed)."""
    from .console import progress_enabled, stderr
    from .models import weights as W

    for name in names:
        W.spec(name)
    for name in names:
        if W.status(name) == "present" and not force:
            log.info("%s is already present: %s", name, W.path_of(name))
            continue
        log.info("fetching %s from %s (licence: %s)", name, W.spec(name).page, W.spec(name).licence)
        if progress_enabled(quiet):
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                          console=stderr) as bar:
                task = bar.add_task(name, total=W.spec(name).size)
                path = W.fetch(name, progress=lambda done, total: bar.update(task, completed=done, total=total),
                               force=force)
        else:
            path = W.fetch(name, force=force)
        log.info("%s -> %s", name, path)


@weights.command("import")
@click.argument("name")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--link", is_flag=True, help="symlink instead of copying")
@click.option("--force", is_flag=True, help="replace a file already in the cache")
@_common
def weights_import(name, path, link, force, quiet):
    """Put a file you already have into the cache as NAME (its layout is checked first)."""
    from .models import weights as W

    dest, described = W.import_file(name, path, link=link, force=force)
    log.info("%s: %s -> %s", name, described, dest)


@weights.command("check")
@click.argument("names", nargs=-1, required=True)
@_common
def weights_check(names, quiet):
    """Exit 0 when every NAME is in the cache, 1 (saying what is missing) otherwise."""
    from .models import weights as W

    missing = [name for name in names if W.status(name) != "present"]
    if missing:
        raise VideoinvError(f"missing: {', '.join(missing)}; {W.how_to_get(missing[0])}")


@weights.command("verify")
@click.argument("names", nargs=-1)
@_common
def weights_verify(names, quiet):
    """Re-hash cached files against published or recorded checksums."""
    from .models import weights as W

    for name in names:
        W.spec(name)
    results = W.verify(names or None)
    for name, result, detail in results:
        click.echo(f"{name}: {result} ({detail})")
    if not results:
        click.echo(f"no weight files in {W.weights_dir()}")
    bad = [name for name, result, _ in results if result == "MISMATCH"]
    if bad:
        raise VideoinvError(f"damaged: {', '.join(bad)}; fetch them again with 'videoinv weights fetch --force NAME'")


@weights.command("convert")
@click.argument("source", type=click.Path(path_type=str))
@click.argument("output", type=click.Path(path_type=str))
@click.option("-y", "--overwrite", is_flag=True, help="replace OUTPUT if it exists")
@_common
def weights_convert(source, output, overwrite, quiet):
    """Write a checkpoint's model as safetensors (no pickle needed to read it back)."""
    from .models.checkpoints import convert_to_safetensors

    ckpt = convert_to_safetensors(source, output, overwrite)
    log.info("wrote %s: %s (%s, %d tensors%s)", output, ckpt.kind, ckpt.layout, len(ckpt.state_dict),
             ", latent_avg" if ckpt.latent_avg is not None else "")


@cli.group()
def bench():
    """Benchmarks and evaluation: the RAVDESS protocol, metrics between two videos."""


@bench.command("ravdess")
@click.argument("root", type=click.Path(path_type=str))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(path_type=str),
              help="results folder (created; a rerun resumes in it)")
@click.option("--n", "n", type=click.IntRange(1), default=120, show_default=True, help="videos to sample")
@click.option("--seed", type=int, default=0, show_default=True, help="sampling seed")
@click.option("--modality", type=click.Choice(["video-only", "av"]), default="video-only", show_default=True,
              help="RAVDESS modality 02 (video only) or 01 (audio-video)")
@click.option("--actors", default=None, help="actors to sample from, e.g. 1,2,5-8 [default: all]")
@click.option("--vocal", type=click.Choice(["any", "speech", "song"]), default="any", show_default=True,
              help="vocal channel")
@click.option("--model", default="fse", show_default=True,
              help="fse (needs its weights), random:<size>[:<channels>] (plumbing only) or GENERATOR+ENCODER")
@click.option("--edit", "edits", multiple=True, metavar="NAME=STRENGTH",
              help="measure an edit instead of the plain inversion (repeatable)")
@click.option("--crop", type=click.IntRange(16), default=256, show_default=True,
              help="side of the aligned crops the metrics compare, px")
@click.option("--frames", type=click.IntRange(1), default=None,
              help="at most this many frames per video [default: all]")
@click.option("--every", type=click.IntRange(1), default=5, show_default=True, help="detect every N frames")
@click.option("--smooth", type=click.Choice(["stream", "offline", "none"]), default="stream", show_default=True,
              help="alignment smoothing")
@click.option("--latent-smooth", type=click.Choice(["off", "causal", "lookahead"]), default="off", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg"]), default="alex", show_default=True)
@click.option("--identity", type=click.Choice(["dlib", "arcface"]), default="dlib", show_default=True,
              help="identity network (arcface: InsightFace's IResNet, needs its weights)")
@click.option("--side-by-side", type=click.IntRange(0), default=3, show_default=True,
              help="comparison videos (source | output) to write")
@click.option("--redo", is_flag=True, help="recompute every video, even those finished in an earlier run")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON on stdout")
@_common
def bench_ravdess(root, out_dir, n, seed, modality, actors, vocal, model, edits, crop, frames, every, smooth,
                  latent_smooth, device, lpips_net, identity, side_by_side, redo, as_json, quiet):
    """Evaluate inversion (or an edit) on N sampled RAVDESS videos under ROOT; results in OUTPUT.

    Writes OUTPUT/videos/<video>.json and .mp4 as each video finishes (a rerun skips finished
    ones), then results.json, videos.csv, report.md, report.html and side_by_side/*.mp4.

    \b
    videoinv bench ravdess RAVDESS/ -o ravdess-fse --n 120 --seed 0 --modality video-only
    """
    from pathlib import Path

    from .metrics.ravdess import BenchSettings, Selection, parse_actors, run_ravdess
    from .metrics.report import aggregate, table_rows

    out = Path(out_dir).resolve()
    if Path(root).is_dir() and (out == Path(root).resolve() or Path(root).resolve() in out.parents):
        raise VideoinvError(f"-o {out_dir} is inside ROOT; put the results elsewhere (its videos would be "
                            "indexed as RAVDESS files)")
    selection = Selection(n=n, seed=seed, modality=modality, actors=parse_actors(actors), vocal=vocal)
    settings = BenchSettings(model=model, edits=tuple(edits), crop=crop, frames=frames, every=every, smooth=smooth,
                             latent_smooth=latent_smooth, device=device, lpips_net=lpips_net, identity=identity)
    summary = run_ravdess(root, out_dir, selection, settings, redo=redo, side_by_side=side_by_side)
    agg = aggregate(summary.videos)
    if as_json:
        click.echo(json.dumps({"computed": summary.computed, "reused": summary.reused, "summary": agg,
                               "files": {k: str(v) for k, v in summary.files.items()}}))
    elif not quiet:
        from rich.console import Console
        from rich.table import Table

        meta = json.loads((Path(out_dir) / "results.json").read_text())
        header, rows = table_rows(agg, meta)
        table = Table(title="RAVDESS inversion (Table 2 layout)")
        for h in header:
            table.add_column(h, justify="left" if h == "Method" else "right")
        for row in rows:
            table.add_row(*row)
        Console(highlight=False).print(table)
    log.info("%d video(s) evaluated, %d reused from an earlier run; report: %s", summary.computed, summary.reused,
             summary.files["report.md"])


_COMPARE_LABELS = {
    "mse": "MSE ↓", "psnr": "PSNR ↑ (dB)", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "id": "identity to A ↑",
    "tl_id": "TL-ID", "tg_id": "TG-ID", "warp_error": "warping error ↓", "warp_error_source": "  (same, of A)",
    "landmark_jitter": "landmark jitter (px) ↓", "landmark_jitter_source": "  (same, of A)", "seam": "seam ↓",
    "mask_iou": "mask IoU ↑", "mask_iou_source": "  (same, of A)",
    "mask_boundary_change": "mask boundary change ↓", "mask_boundary_change_source": "  (same, of A)",
}


@bench.command("compare")
@click.argument("a", type=click.Path(path_type=str))
@click.argument("b", type=click.Path(path_type=str))
@click.option("--size", type=click.IntRange(16), default=256, show_default=True, help="aligned crop side, px")
@click.option("--identity", type=click.Choice(["dlib", "arcface"]), default="dlib", show_default=True,
              help="identity network (arcface: InsightFace's IResNet, needs its weights)")
@click.option("--json", "as_json", is_flag=True, help="print every number (per frame too) as JSON")
@_range_options
@_common
def bench_compare(a, b, size, identity, as_json, start, end, quiet):
    """Metrics of B (an edit or inversion) against A (its source): fidelity, identity, stability.

    Faces are aligned on A; both videos are cropped there and compared crop to crop. When B was
    made from part of A (edit --start/--end), give the same --start/--end: they pick A's frames.
    """
    from pathlib import Path

    from .metrics.compare import compare_videos
    from .video.probe import describe

    for path in (a, b):
        if not Path(path).is_file():
            describe(path)  # the input's own one-line error
    result = compare_videos(a, b, size=size, identity_backend=identity, start=start, end=end)
    if as_json:
        click.echo(json.dumps(result, allow_nan=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{Path(b).name} against {Path(a).name}",
                  caption=f"{result['frames_with_face']}/{result['frames']} frames with a face; crops {size} px, "
                          "values in [0,1]")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("key", style="dim")
    for key, value in result["summary"].items():
        if key == "lpips" and value is None and result.get("lpips_unavailable"):
            text = "unavailable"
        elif key == "psnr" and value is None and result["summary"]["mse"] == 0:
            text = "∞"  # identical crops
        else:
            text = "–" if value is None else f"{value:.5g}"
        table.add_row(_COMPARE_LABELS.get(key, key), text, key)
    Console(highlight=False).print(table)
    if result.get("lpips_unavailable"):
        log.warning("%s", result["lpips_unavailable"])


@bench.command("speed")
@click.option("--models", default=None, help="comma-separated model specs [default: random:256,random:1024 on "
              "CUDA; random:256:32,random:256,random:1024 on the CPU]")
@click.option("--frames", type=click.IntRange(8), default=None,
              help="frames of the generated 1280x720 clip [default: 120 on CUDA, 60 on the CPU]")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--repeat", type=click.IntRange(1), default=2, show_default=True,
              help="runs of each mode, taking turns (each turn's ratio is reported, and their median)")
@click.option("--no-bf16", is_flag=True, help="skip the bfloat16 run (its PSNR against float32)")
@_quality_options
@click.option("-o", "--output", "out", default=None, type=click.Path(path_type=str),
              help="write the report as JSON here too")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON instead of a table")
@_common
def bench_speed(models, frames, device, repeat, no_bf16, crf, preset, out, as_json, quiet):
    """Pipelined edit vs a naive per-frame loop on a generated 720p clip, with the ceilings.

    For each model: frames/s of both, busy seconds per stage, GPU busy share (CUDA events), their
    ratio, whether the outputs are identical, the bf16 run's PSNR against float32, and which of
    compute (FLOPs over the bf16 matmul rate), decoding or encoding sets the ceiling.
    """
    from .models.specs import pick_device
    from .pipeline.speed import measure, table
    from .video.writer import EncodeOptions

    cuda = pick_device(device).type == "cuda"
    models = models or ("random:256,random:1024" if cuda else "random:256:32,random:256,random:1024")
    frames = frames or (120 if cuda else 60)
    if out:
        from .files import atomic_output, check_output_path

        check_output_path(out, [], overwrite=True, example="speed.json")  # before the run, not after minutes of it
    report = measure([m.strip() for m in models.split(",") if m.strip()], frames=frames, device=device,
                     bf16=not no_bf16, repeat=repeat, progress=(lambda text: None) if quiet or as_json else log.info,
                     encode=EncodeOptions(crf=crf, preset=preset))
    click.echo(json.dumps(report) if as_json else table(report))  # shown even if the file then fails
    if out:
        with atomic_output(out, [], overwrite=True, example="speed.json") as tmp:
            Path(tmp).write_text(json.dumps(report, indent=2))


_interrupts = 0


def _raise_interrupt(signum, frame):
    """SIGINT and SIGTERM. The first stops the command: a KeyboardInterrupt, on whose way out
    every stage's thread is stopped and joined and temporary outputs are removed. A second (an
    impatient Ctrl-C, or ``timeout``, which signals the process and then its whole group) lets
    that clean-up finish: cutting it short left threads working in torch as Python exited, and
    the process aborted. A third quits at once."""
    global _interrupts
    _interrupts += 1
    if _interrupts == 1:
        raise KeyboardInterrupt
    if _interrupts >= 3:
        sys.stderr.write("videoinv: interrupted again; quitting without cleaning up (a .partial file may be "
                         "left beside the output)\n")
        sys.stderr.flush()
        os._exit(130)


def _join_workers(seconds: float = 30.0) -> None:
    """Wait for the pipeline's threads still working after an interrupt; exit at once (no
    interpreter shutdown) if one is still busy after ``seconds``, since a thread inside torch
    as Python shuts down aborts the process."""
    deadline = time.monotonic() + seconds
    workers = [t for t in threading.enumerate() if t.name.startswith("videoinv-") and t is not threading.current_thread()]
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in workers):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the command and turns every failure into a one-line message. Called
    with ``argv`` (from Python), it puts back the caller's SIGINT and SIGTERM handlers when it
    returns. The command itself ignores them once it has returned, so that a late second signal
    does not kill it on its way out: Python's shutdown puts back the default handlers, and a
    second SIGTERM that came then (``timeout``'s to the process group, 0.2 s after the first)
    killed the process after its clean-up, exit status 143 instead of 130."""
    global _interrupts
    _interrupts = 0
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if saved[signal.SIGINT] is signal.default_int_handler:  # not where it is ignored (nohup, &)
        signal.signal(signal.SIGINT, _raise_interrupt)
    try:
        return _main(argv)
    finally:
        for sig, handler in saved.items():
            if argv is not None:
                signal.signal(sig, handler)
            elif signal.getsignal(sig) is _raise_interrupt:  # the work is done or cleaned up
                signal.signal(sig, signal.SIG_IGN)


def _main(argv: list[str] | None) -> int:
    try:
        result = cli.main(args=argv, prog_name="videoinv", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as err:
        return err.exit_code
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("videoinv: interrupted; no output was left behind", err=True)
        _join_workers()
        return 130
    except VideoinvError as err:
        click.echo(f"videoinv: error: {err}", err=True)
        return err.exit_code
    except OSError as err:
        from .files import os_problem

        problem = os_problem(err)
        if problem is None:
            return _internal_error(err)
        click.echo(f"videoinv: error: {problem}", err=True)
        return 1
    except Exception as err:  # noqa: BLE001 - a bug: one line, traceback with -v
        return _internal_error(err)


def _internal_error(err: Exception) -> int:
    """A bug: one line, the traceback with -v."""
    if log.isEnabledFor(logging.DEBUG):
        raise err
    text = " ".join(str(err).split())
    click.echo(f"videoinv: internal error: {type(err).__name__}: {text} (run with -v for a traceback)", err=True)
    return 3


if __name__ == "__main__":
    sys.exit(main())
