"""The weight files videoinv knows by name, and the local cache that holds them.

Nothing is bundled or fetched behind the user's back: ``videoinv weights fetch NAME`` downloads a
file from the source its project documents, ``videoinv weights import NAME FILE`` takes a file
the user already has (after checking its layout), and a stage that needs a missing file stops
with a message that says exactly how to get it.

Cache: ``$VIDEOINV_HOME`` if set, else ``$XDG_CACHE_HOME/videoinv`` (``~/.cache/videoinv``);
files live in ``<cache>/weights/``, and ``checksums.json`` there records each file's sha256 the
first time it arrives when no checksum is published, so ``verify`` can catch later damage.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import VideoinvError
from .download import DownloadError, Progress, download, sha256_of

NVIDIA_NC = "NVIDIA Source Code License-NC: non-commercial research and evaluation only"
INTERDIGITAL = "InterDigital Limited Software Evaluation License: fundamental research only, no commercial use"
FSE_REPO = "https://raw.githubusercontent.com/InterDigitalInc/FeatureStyleEncoder/ffbf1708a98eced5369139069914b4c2e0eaf54d"
FACEXLIB = "https://github.com/xinntao/facexlib/releases/download"


@dataclass(frozen=True)
class WeightFile:
    name: str
    filename: str
    purpose: str
    licence: str
    url: str  # https://... or gdrive:<id>
    documented_at: str  # where the project publishes the link
    layout: str  # what `import` checks: generator-1024 | encoder | w+direction | torch-state
    size: int | None = None
    sha256: str | None = None

    @property
    def terms(self) -> str:
        """The licence in a few words."""
        if "NVIDIA" in self.licence:
            return "non-commercial (NVIDIA NC)"
        if "InterDigital" in self.licence:
            return "research only (InterDigital)"
        return "see upstream (facexlib MIT)"

    @property
    def page(self) -> str:
        """A link a person can open in a browser."""
        if self.url.startswith("gdrive:"):
            return f"https://drive.google.com/file/d/{self.url.split(':', 1)[1]}/view"
        return self.url


WEIGHTS: dict[str, WeightFile] = {w.name: w for w in [
    WeightFile("stylegan2-ffhq-1024", "stylegan2-ffhq-config-f.pt",
               "StyleGAN2 FFHQ 1024 generator (rosinality conversion of config-f): g_ema + latent_avg",
               NVIDIA_NC, "gdrive:1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT",
               "github.com/eladrich/pixel2style2pixel README (auxiliary models)", "generator-1024"),
    WeightFile("psp-ffhq-encode", "psp_ffhq_encode.pt",
               "pSp FFHQ inversion model; its decoder + latent_avg are the generator FeatureStyleEncoder "
               "was trained with", "pSp code MIT; the decoder is NVIDIA's FFHQ StyleGAN2: " + NVIDIA_NC,
               "gdrive:1bMTNWkh5LArlaWSc_wa8VKyq2V42T2z0",
               "github.com/InterDigitalInc/FeatureStyleEncoder download_models.sh", "generator-1024"),
    WeightFile("fse-encoder", "143_enc.pth", "FeatureStyleEncoder (W+ and the 16x16x512 feature tensor)",
               INTERDIGITAL, "gdrive:1RnnBL77j_Can0dY1KOiXHvG224MxjvzC",
               "github.com/InterDigitalInc/FeatureStyleEncoder download_models.sh", "encoder"),
    *[WeightFile(f"fse-direction-{key}", f"{attr}_boundary.npy",
                 f"W+ edit direction '{key}' of FeatureStyleEncoder (1x9216, unit norm)", INTERDIGITAL,
                 f"{FSE_REPO}/boundaries_ours/{attr}_boundary.npy",
                 "github.com/InterDigitalInc/FeatureStyleEncoder boundaries_ours/", "w+direction", size=36992)
      for key, attr in (("smile", "Smiling"), ("eyeglasses", "Eyeglasses"), ("makeup", "Heavy_Makeup"))],
    *[WeightFile(f"e4e-direction-{key}", f"{key}.pt",
                 f"W edit direction '{key}' (InterFaceGAN on the FFHQ StyleGAN2, published with e4e)",
                 "MIT (encoder4editing); the generator it was fitted on: " + NVIDIA_NC,
                 f"https://github.com/omertov/encoder4editing/raw/main/editings/interfacegan_directions/{key}.pt",
                 "github.com/omertov/encoder4editing (editings/interfacegan_directions)", "w-direction")
      for key in ("age", "pose", "smile")],
    WeightFile("retinaface-resnet50", "detection_Resnet50_Final.pth",
               "RetinaFace ResNet-50 face detector (facexlib weights; RetinaFace plugin)",
               "facexlib release asset (facexlib is MIT-licensed; see its upstream model's terms)",
               f"{FACEXLIB}/v0.1.0/detection_Resnet50_Final.pth", "github.com/xinntao/facexlib releases",
               "torch-state", size=109_497_761),
    WeightFile("retinaface-mobilenet", "detection_mobilenet0.25_Final.pth",
               "RetinaFace MobileNet-0.25 face detector (facexlib weights; RetinaFace plugin)",
               "facexlib release asset (facexlib is MIT-licensed; see its upstream model's terms)",
               f"{FACEXLIB}/v0.1.0/detection_mobilenet0.25_Final.pth", "github.com/xinntao/facexlib releases",
               "torch-state", size=1_789_735),
    WeightFile("bisenet-parsing", "parsing_bisenet.pth",
               "BiSeNet face parsing, 19 classes (facexlib weights; BiSeNet plugin)",
               "facexlib release asset (facexlib is MIT-licensed; see its upstream model's terms)",
               f"{FACEXLIB}/v0.2.0/parsing_bisenet.pth", "github.com/xinntao/facexlib releases",
               "torch-state", size=53_289_463),
]}


class WeightsError(VideoinvError):
    """A named weight file is unknown, missing or wrong."""


def cache_dir() -> Path:
    if os.environ.get("VIDEOINV_HOME"):
        return Path(os.environ["VIDEOINV_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "videoinv"


def weights_dir() -> Path:
    return cache_dir() / "weights"


def spec(name: str) -> WeightFile:
    if name not in WEIGHTS:
        raise WeightsError(f"unknown weight file {name!r}; known: {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def path_of(name: str) -> Path:
    return weights_dir() / spec(name).filename


def status(name: str) -> str:
    """present | partial (a download to resume) | missing."""
    p = path_of(name)
    if p.exists():
        return "present"
    return "partial" if p.with_name(p.name + ".part").exists() else "missing"


def how_to_get(name: str) -> str:
    w = spec(name)
    return (f"get it with 'videoinv weights fetch {name}', or download {w.page} yourself and run "
            f"'videoinv weights import {name} FILE' (licence: {w.licence})")


def require(name: str) -> Path:
    """The cached file for ``name``, or a WeightsError that says how to get it."""
    p = path_of(name)
    if not p.exists():
        raise WeightsError(f"{name} ({spec(name).filename}) is not in {weights_dir()}; {how_to_get(name)}")
    return p


# -- recorded checksums ------------------------------------------------------------------------
def _records_path() -> Path:
    return weights_dir() / "checksums.json"


def _records() -> dict:
    try:
        return json.loads(_records_path().read_text())
    except (OSError, ValueError):
        return {}


def _record(name: str, digest: str, size: int, source: str) -> None:
    records = _records()
    records[name] = {"sha256": digest, "size": size, "source": source,
                     "recorded": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _records_path().parent.mkdir(parents=True, exist_ok=True)
    tmp = _records_path().with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=2, sort_keys=True))
    os.replace(tmp, _records_path())


def expected_sha256(name: str) -> str | None:
    return spec(name).sha256 or _records().get(name, {}).get("sha256")


# -- operations --------------------------------------------------------------------------------
def fetch(name: str, progress: Progress | None = None, force: bool = False) -> Path:
    """Download ``name`` into the cache (resuming a partial download); returns its path."""
    w = spec(name)
    dest = path_of(name)
    if dest.exists() and not force:
        return dest
    try:
        digest = download(w.url, dest, sha256=w.sha256, size=w.size, progress=progress)
    except DownloadError as err:
        raise WeightsError(f"fetching {name} failed: {err}. Or download {w.page} yourself and run "
                           f"'videoinv weights import {name} FILE'") from None
    _record(name, digest, dest.stat().st_size, w.url)
    return dest


def check_layout(name: str, path: str | os.PathLike) -> str:
    """Open ``path`` the way videoinv will use it as ``name``; returns a description, or raises."""
    w = spec(name)
    if w.layout in ("w+direction", "w-direction"):
        from ..edit.directions import load_direction_file

        try:
            direction = load_direction_file(path, name)
        except VideoinvError as err:
            raise WeightsError(str(err)) from None
        want = (18, 512) if w.layout == "w+direction" else (512,)
        if tuple(direction.vector.shape) != want:
            kind = "a W+ direction of 18x512" if w.layout == "w+direction" else "a W direction of 512"
            raise WeightsError(f"{path} has {direction.vector.numel()} values; {name} is {kind} values")
        return f"{'W+' if len(want) == 2 else 'W'} direction {tuple(direction.vector.shape)}"
    from .checkpoints import build_encoder, build_generator, load_checkpoint, read_file

    if w.layout == "torch-state":
        contents = read_file(path)
        return f"checkpoint with {len(contents)} entries"
    ckpt = load_checkpoint(path)
    if w.layout == "encoder":
        build_encoder(ckpt)
        return f"FeatureStyleEncoder ({ckpt.layout})"
    G = build_generator(ckpt)
    if w.layout == "generator-1024" and G.size != 1024:
        raise WeightsError(f"{path} holds a {G.size}x{G.size} generator; {name} is the 1024 FFHQ one")
    if ckpt.latent_avg is None:
        raise WeightsError(f"{path} has no latent_avg; {name} must carry it")
    return f"StyleGAN2 {G.size} generator ({ckpt.layout}), latent_avg {tuple(ckpt.latent_avg.shape)}"


def import_file(name: str, source: str | os.PathLike, link: bool = False, force: bool = False) -> tuple[Path, str]:
    """Check ``source``'s layout, then copy (or symlink) it into the cache as ``name``."""
    source = Path(source).expanduser()
    if not source.is_file():
        raise WeightsError(f"{source} is not a file")
    w = spec(name)
    dest = path_of(name)
    if dest.exists() and not force:
        raise WeightsError(f"{name} is already in the cache ({dest}); pass --force to replace it")
    described = check_layout(name, source)
    digest = sha256_of(source)
    if w.sha256 and digest != w.sha256:
        raise WeightsError(f"{source} has sha256 {digest[:16]}..., but the published {name} has "
                           f"{w.sha256[:16]}...; it is a different file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".importing")
    tmp.unlink(missing_ok=True)
    if link:
        tmp.symlink_to(source.resolve())
    else:
        shutil.copyfile(source, tmp)
    os.replace(tmp, dest)
    _record(name, digest, source.stat().st_size, f"imported from {source}")
    return dest, described


def verify(names=None) -> list[tuple[str, str, str]]:
    """(name, result, detail) for each cached file: ok | MISMATCH | unrecorded."""
    out = []
    for name in names or list(WEIGHTS):
        p = path_of(name)
        if not p.exists():
            continue
        expected = expected_sha256(name)
        digest = sha256_of(p)
        if expected is None:
            out.append((name, "unrecorded", f"sha256 {digest}"))
        elif digest == expected:
            out.append((name, "ok", f"sha256 {digest[:16]}..."))
        else:
            out.append((name, "MISMATCH", f"sha256 {digest[:16]}..., expected {expected[:16]}..."))
    return out
