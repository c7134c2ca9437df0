"""The RAVDESS evaluation: index a download, sample videos, invert each one and measure it.

RAVDESS names every file ``MM-VV-EE-II-SS-RR-AA.ext`` (modality 01 full audio-video, 02 video
only, 03 audio only; vocal channel 01 speech, 02 song; emotion 01-08; intensity 01-02; statement
01-02; repetition 01-02; actor 01-24) and ships them in ``Actor_NN/`` folders, possibly inside
``Video_Speech_Actor_NN/`` or ``Video_Song_Actor_NN/``. :func:`index` finds every such video under
a root, whatever the nesting.

Sampling is deterministic and independent of the Python version and of the listing order: the
candidate videos are ordered by ``sha256("<seed>:<stem>")`` and the first ``n`` are taken, so a
larger ``n`` (same seed) extends a smaller sample instead of replacing it.

Each sampled video goes through the same pipeline as ``videoinv edit`` (detect, track, align,
invert, synthesize, blend; with ``--edit`` the edit too), one face per frame (the largest). While
it runs, every frame's aligned input crop and synthesized crop are compared (see
:mod:`videoinv.metrics.evaluate`). A video's result is written as ``DIR/videos/<stem>.json`` the
moment it finishes (atomically), next to its output video ``DIR/videos/<stem>.mp4``; a rerun
skips the videos whose result is there. Every result carries the settings it was made with
(model and its weights' hash, edits, crop size, frame cap, alignment options); a rerun with
different settings is refused (naming the difference) unless ``redo`` is given, which recomputes
every video: results made under different settings are never mixed into one report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..errors import InputError, VideoinvError
from ..files import atomic_output

log = logging.getLogger(__name__)

NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
VIDEO_EXTENSIONS = (".mp4",)
MODALITIES = {"av": "01", "video-only": "02"}
VOCAL = {"speech": "01", "song": "02"}
EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
RESULT_VERSION = 1


@dataclass(frozen=True)
class RavdessVideo:
    """One RAVDESS video file and what its name says."""

    path: Path
    modality: str  # "av" | "video-only"
    vocal: str  # "speech" | "song"
    emotion: str
    intensity: int  # 1 normal, 2 strong
    statement: int
    repetition: int
    actor: int

    @property
    def stem(self) -> str:
        return self.path.stem

    def describe(self) -> dict:
        return {"stem": self.stem, "path": str(self.path), "modality": self.modality, "vocal": self.vocal,
                "emotion": self.emotion, "intensity": self.intensity, "statement": self.statement,
                "repetition": self.repetition, "actor": self.actor}


def parse_name(path: str | os.PathLike) -> RavdessVideo | None:
    """The RAVDESS fields of a video file's name, or None when the name does not follow the
    convention (audio-only files and other files included)."""
    p = Path(path)
    m = NAME.match(p.stem)
    if not m or p.suffix.lower() not in VIDEO_EXTENSIONS:
        return None
    modality, vocal, emotion, intensity, statement, repetition, actor = (int(g) for g in m.groups())
    if modality not in (1, 2) or vocal not in (1, 2) or not 1 <= emotion <= 8 or intensity not in (1, 2) \
            or statement not in (1, 2) or repetition not in (1, 2) or not 1 <= actor <= 24:
        return None
    return RavdessVideo(p, "av" if modality == 1 else "video-only", "speech" if vocal == 1 else "song",
                        EMOTIONS[emotion - 1], intensity, statement, repetition, actor)


def index(root: str | os.PathLike) -> list[RavdessVideo]:
    """Every RAVDESS video under ``root`` (any depth), sorted by file name. A name found twice
    (the same archive extracted in two places) counts once: the first path in sorted order."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"RAVDESS folder not found: {root}")
    found: dict[str, RavdessVideo] = {}
    duplicates = 0
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            video = parse_name(Path(dirpath) / name)
            if video is None:
                continue
            if video.stem in found:
                duplicates += 1
                continue
            found[video.stem] = video
    if not found:
        raise InputError(f"no RAVDESS videos under {root}: expected files named like 02-01-06-01-02-01-12.mp4 "
                         "(modality-channel-emotion-intensity-statement-repetition-actor) in Actor_NN folders")
    if duplicates:
        log.warning("%d RAVDESS file name(s) found more than once under %s; the first copy is used", duplicates, root)
    return [found[k] for k in sorted(found)]


def parse_actors(text: str | None) -> frozenset[int] | None:
    """``"1,2,5-8"`` -> {1, 2, 5, 6, 7, 8}; None or "" -> None (every actor)."""
    if not text:
        return None
    actors: set[int] = set()
    for part in text.replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise VideoinvError(f"bad --actors {text!r}: use numbers and ranges such as 1,2,5-8") from None
        if not 1 <= first <= last <= 24:
            raise VideoinvError(f"bad --actors {text!r}: RAVDESS actors are 1-24 (ranges low-high)")
        actors.update(range(first, last + 1))
    return frozenset(actors)


def sample_key(seed: int, stem: str) -> str:
    return hashlib.sha256(f"{seed}:{stem}".encode()).hexdigest()


def select(videos: Iterable[RavdessVideo], n: int, seed: int = 0, modality: str = "video-only",
           actors: frozenset[int] | None = None, vocal: str = "any") -> list[RavdessVideo]:
    """``n`` videos (or all, if fewer match) of the given modality, vocal channel and actors, in
    sample order (see the module docstring)."""
    if modality not in MODALITIES:
        raise VideoinvError(f"--modality takes {' or '.join(MODALITIES)}, not {modality!r}")
    if vocal not in (*VOCAL, "any"):
        raise VideoinvError(f"--vocal takes speech, song or any, not {vocal!r}")
    videos = list(videos)
    pool = [v for v in videos if v.modality == modality and (actors is None or v.actor in actors)
            and (vocal == "any" or v.vocal == vocal)]
    if not pool:
        what = [f"modality {modality}"] + ([f"actors {_ranges(actors)}"] if actors else []) + (
            [f"{vocal}"] if vocal != "any" else [])
        have = sorted({v.modality for v in videos})
        raise InputError(f"none of the {len(videos)} RAVDESS videos matches {', '.join(what)} "
                         f"(modalities present: {', '.join(have)})")
    if n < 1:
        raise VideoinvError("--n must be at least 1")
    pool.sort(key=lambda v: sample_key(seed, v.stem))
    return pool[:n]


def _ranges(values: Iterable[int]) -> str:
    out, run = [], []
    for v in sorted(values):
        if run and v == run[-1] + 1:
            run.append(v)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [v]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class BenchSettings:
    """What determines a video's result (a result made with other settings is never reused)."""

    model: str = "fse"
    edits: tuple[str, ...] = ()
    crop: int = 256  # side of the crops the metrics compare, px
    frames: int | None = None  # at most this many frames per video (None: all)
    every: int = 5
    smooth: str = "stream"
    latent_smooth: str = "off"
    seed: int = 0  # noise seed
    device: str = "auto"
    lpips_net: str = "alex"
    identity: str = "dlib"

    def describe(self) -> dict:
        d = asdict(self)
        d["edits"] = list(self.edits)
        d.pop("device")  # where it ran does not change what it measures
        return d


@dataclass
class Selection:
    n: int = 120
    seed: int = 0
    modality: str = "video-only"
    actors: frozenset[int] | None = None
    vocal: str = "any"

    def describe(self) -> dict:
        return {"n": self.n, "seed": self.seed, "modality": self.modality,
                "actors": _ranges(self.actors) if self.actors else "all", "vocal": self.vocal}


@dataclass
class RunSummary:
    out_dir: Path
    videos: list[dict] = field(default_factory=list)  # per-video results, in sample order
    computed: int = 0
    reused: int = 0
    files: dict[str, Path] = field(default_factory=dict)  # what the report wrote


def result_key(settings: BenchSettings, models_info: dict) -> dict:
    """Everything a per-video result depends on (stored in it, compared on a rerun)."""
    from .lpips import lpips_unavailable_reason

    lpips = "available" if lpips_unavailable_reason(settings.lpips_net) is None else "unavailable"
    return {"version": RESULT_VERSION, "settings": {**settings.describe(), "lpips": lpips}, "models": models_info}


def key_difference(old: dict, new: dict) -> str:
    """A short text naming what differs between two result keys."""
    diffs = []
    for section in ("version", "settings", "models"):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    diffs.append(f"{k} {a.get(k)!r} (now {b.get(k)!r})")
        elif a != b:
            diffs.append(f"{section} {a!r} (now {b!r})")
    return ", ".join(diffs) or "nothing"


def run_ravdess(root: str | os.PathLike, out_dir: str | os.PathLike, selection: Selection | None = None,
                settings: BenchSettings | None = None, *, redo: bool = False, side_by_side: int = 3,
                on_video: Callable[[int, int, RavdessVideo, str], None] | None = None,
                on_frame: Callable[[], None] | None = None) -> RunSummary:
    """Evaluate the selected videos of the RAVDESS download at ``root`` into ``out_dir`` and
    write the report (see :mod:`videoinv.metrics.report`). ``on_video(i, n, video, state)`` is
    called before each video (state "run" or "done", the latter for a finished one reused)."""
    from ..edit.cache import model_info
    from ..models.specs import load_models
    from .evaluate import VideoEvaluator
    from .report import write_report

    selection, settings = selection or Selection(), settings or BenchSettings()
    chosen = select(index(root), selection.n, selection.seed, selection.modality, selection.actors,
                    selection.vocal)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise VideoinvError(f"-o {out_dir} is a file; give a folder for the results")
    if settings.crop < 16:
        raise VideoinvError("--crop must be at least 16 px (SSIM's window is 11 px)")
    models = load_models(settings.model, settings.device)  # missing weights fail here, before any work
    key = result_key(settings, model_info(models))
    videos_dir = out / "videos"
    videos_dir.mkdir(parents=True, exist_ok=True)
    _remove_partials(videos_dir)
    finished = {} if redo else _finished(videos_dir, key, [v.stem for v in chosen])
    summary = RunSummary(out)
    evaluator = VideoEvaluator(settings)
    for i, video in enumerate(chosen):
        result = finished.get(video.stem)
        if result is not None:
            log.info("[%d/%d] %s: finished in an earlier run, reused", i + 1, len(chosen), video.stem)
            if on_video is not None:
                on_video(i, len(chosen), video, "done")
            summary.reused += 1
        else:
            log.info("[%d/%d] %s: evaluating", i + 1, len(chosen), video.stem)
            if on_video is not None:
                on_video(i, len(chosen), video, "run")
            started = time.time()
            result = evaluator.evaluate(video.path, videos_dir / f"{video.stem}.mp4", on_frame=on_frame)
            result = {"key": key, "video": video.describe(), **result}
            _write_json(videos_dir / f"{video.stem}.json", result)
            summary.computed += 1
            log.info("[%d/%d] %s: %d frames in %.1f s", i + 1, len(chosen), video.stem, result["frames"],
                     time.time() - started)
        summary.videos.append(result)
    summary.files = write_report(out, summary.videos, {"root": str(root), "selection": selection.describe(),
                                                       "settings": settings.describe(), "key": key},
                                 side_by_side=side_by_side)
    return summary


def _finished(videos_dir: Path, key: dict, stems: list[str]) -> dict[str, dict]:
    done = {}
    for stem in stems:
        path = videos_dir / f"{stem}.json"
        if not path.exists():
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            log.warning("%s is unreadable; %s is evaluated again", path, stem)
            continue
        if result.get("key") != key:
            raise VideoinvError(
                f"{videos_dir} holds results made with other settings: {key_difference(result.get('key', {}), key)}; "
                "use another -o folder, or --redo to recompute every video")
        done[stem] = result
    return done


def _remove_partials(videos_dir: Path) -> None:
    """Temporary files of a run that was killed (atomic outputs never renamed into place)."""
    for path in videos_dir.glob(".*.partial.*"):
        path.unlink(missing_ok=True)


def _write_json(path: Path, data: dict) -> None:
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(data, allow_nan=True))


# -- a miniature download (tests, demos) -----------------------------------------------------------
def write_miniature(root: str | os.PathLike, names: Iterable[str], seconds: float = 1.0,
                    size: tuple[int, int] = (1280, 720), fps: int = 30) -> list[Path]:
    """Write RAVDESS-shaped clips under ``root`` (``Actor_NN/<name>.mp4``): the bundled real face
    moving differently in each (path, roll, scale and brightness follow from the name), with a
    tone track in the audio-video ones (modality 01) as in RAVDESS. Returns the paths."""
    import math
    import random

    from ..samples import FaceScene, Motion, write_clip

    w, h = size
    paths = []
    for name in names:
        video = parse_name(f"{name}.mp4")
        if video is None:
            raise ValueError(f"not a RAVDESS video name: {name}")
        r = random.Random(name)
        ax, ay, roll, scale = r.uniform(0.02, 0.12), r.uniform(0.01, 0.05), r.uniform(2, 12), r.uniform(0.6, 0.8)
        px, pr = r.uniform(2, 5), r.uniform(2, 4)
        motion = Motion(centre=lambda t, ax=ax, ay=ay, px=px: (w / 2 + ax * w * math.sin(2 * math.pi * t / px),
                                                                h / 2 + ay * h * math.sin(2 * math.pi * t / 3)),
                        angle=lambda t, roll=roll, pr=pr: roll * math.sin(2 * math.pi * t / pr),
                        size=lambda t, scale=scale: scale * h * (1 + 0.05 * math.sin(2 * math.pi * t / 2)),
                        gain=lambda t, g=r.uniform(0.85, 1.1): g)
        path = Path(root) / f"Actor_{video.actor:02d}" / f"{name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(path, FaceScene(w, h, fps, [motion]), max(1, round(seconds * fps)),
                   audio=video.modality == "av", overwrite=True)
        paths.append(path)
    return paths
