"""The latent stages of the chain: ``invert`` (FeatureStyleEncoder: W+ and F per face), ``edit``
(move W+ along directions, with keyframed strengths and track fades), ``synthesize`` (the
generator from the corrected feature, one noise set per track) and ``latents`` (replay a latent
cache instead of detecting and inverting)."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ChainError
from ..faces.smooth import TrackSignals
from ..faces.warp import crop_tensor
from ..models.encoder import FeatureStyleEncoder, inference_encoder
from ..models.ops import conv_mode
from ..models.traced import TracedEncoder, TracedGenerator
from ..models.tuning import COMPILE_MODES, CompiledGenerator, choose_conv_mode, compiled_encoder, pad_batch
from ..pipeline.batching import AdaptiveBatch, check_stop
from ..pipeline.stage import Param, Stage
from ..pipeline.transfer import GPU_CLOCK, transfer_for
from ..video.frame import FrameRecord
from .directions import resolve
from .spec import EditSpec, edit_strengths, move_latent


def model_spec(text: str) -> str:
    """A model option in its one spelling (``canonical_spec``), so that stages naming one model
    in two ways agree."""
    from ..models.checkpoints import CheckpointError
    from ..models.specs import canonical_spec

    if text == "random":
        raise ValueError("random specs contain ':' - quote them in a chain: model='random:256:32'")
    try:
        return canonical_spec(text)
    except CheckpointError as err:
        raise ValueError(str(err)) from None


MODEL_HELP = "fse, random:<size>[:<channels>] (quoted in a chain) or GENERATOR+ENCODER"
DEVICE_HELP = "auto, cpu, cuda or cuda:N (quoted in a chain: device='cuda:1')"


def device_spec(text: str) -> str:
    """A device option as the device it names (``auto`` -> ``cpu`` or ``cuda:N``), so that
    stages naming one device in two ways agree."""
    from ..models.specs import pick_device

    return str(pick_device(text))


def _device_param() -> Param:
    return Param("device", device_spec, "auto", DEVICE_HELP, kind="device", shared=True)
TRACE_HELP = ("on the CPU, run each model call as a recorded TorchScript trace, which holds Python's lock "
              "only once per call instead of once per operator (the same results; models.traced)")


def _models(spec: str, device: str):
    from ..models.specs import load_models

    return load_models(spec, device)


def crops_to_input(crops: list[np.ndarray], device) -> torch.Tensor:
    """Aligned crops [S,S,3] uint8 -> the encoder's [N,3,256,256] in [-1,1] (bilinear halvings,
    as FeatureStyleEncoder preprocesses; other sizes are area-resized)."""
    x = torch.from_numpy(np.stack(crops)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    return _encoder_size(x)


def _encoder_size(x: torch.Tensor) -> torch.Tensor:
    from ..models.encoder import encoder_input

    size = x.shape[-1]
    if size >= 256 and (size // 256) & (size // 256 - 1) == 0 and size % 256 == 0:
        return encoder_input(x)
    return F.interpolate(x, size=(256, 256), mode="area")


def device_frame(record: FrameRecord, device: torch.device) -> torch.Tensor:
    """The record's frame on ``device`` ([3,H,W] uint8), uploaded once (see pipeline.transfer)."""
    if record.device_image is None:
        record.device_image = transfer_for(device).upload(record.image)
    return record.device_image


def faces_to_input(pairs: list, device: torch.device) -> torch.Tensor:
    """The encoder's input for (record, face) pairs: from the aligned crops made on the CPU, or,
    where alignment made none, cropped here from the frame on the model's device."""
    if all(face.crop is not None for _, face in pairs):
        return crops_to_input([face.crop for _, face in pairs], device)
    crops = [crop_tensor(device_frame(record, device), face.quad, face.extra["crop_size"]) for record, face in pairs]
    for (_, face), crop in zip(pairs, crops):
        face.extra["on_device"] = True
    return _encoder_size(torch.stack(crops) / 127.5 - 1)


class FrameBlocks:
    """Groups records into blocks of ``size`` consecutive frame numbers (index // size), so a
    model sees the same batches however the frames arrive: outputs do not depend on the
    pipeline's batching or look-ahead (float results differ slightly with batch composition)."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self.pending: list[FrameRecord] = []

    def add(self, batch: list[FrameRecord]) -> list[list[FrameRecord]]:
        """The blocks that ``batch`` completed: a block is complete with its last frame number,
        or once a later block has begun (a frame of it was missing). Frames come in order."""
        self.pending.extend(batch)
        return self._take(everything=False)

    def rest(self) -> list[list[FrameRecord]]:
        """Every block still held, complete or not (at the end of the stream)."""
        return self._take(everything=True)

    def _take(self, everything: bool) -> list[list[FrameRecord]]:
        done = []
        while self.pending:
            block = self.pending[0].index // self.size
            n = next((i for i, r in enumerate(self.pending) if r.index // self.size != block), None)
            if n is None and self.pending[-1].index % self.size == self.size - 1:
                n = len(self.pending)  # the block's last frame is here: nothing more can join it
            if n is None and not everything:
                break
            done.append(self.pending[:n])
            self.pending = self.pending[n:] if n is not None else []
        return done


class BlockWorkers:
    """Runs a model stage's blocks on ``n`` threads at once (data parallel; results in order).
    On a CPU with torch at one thread per block this keeps every core on useful work without
    the synchronisation cost of intra-op threads; n = 1 runs them in the calling thread."""

    def __init__(self, n: int, name: str):
        self.n = max(1, n)
        self.stopping: threading.Event | None = None  # see batching.Stopped
        self.pool = None
        if self.n > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.n, thread_name_prefix=f"videoinv-{name}")

    def map(self, fn, blocks: list) -> list:
        def run(block):
            check_stop(self.stopping)
            return fn(block)

        if self.pool is None or len(blocks) < 2:
            return [run(block) for block in blocks]
        return list(self.pool.map(run, blocks))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


# the autocast type of each --dtype (None: float32 tensors; tf32 is float32 with TensorFloat-32
# math in the convolutions and matrix products, set for the run: Stage.tf32, tuning.float32_math)
DTYPES = {"float32": None, "tf32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_HELP = "float32, tf32, bfloat16 or float16 (autocast; tf32 and float16 need CUDA)"


def _dtype(text: str) -> str:
    aliases = {"fp32": "float32", "tensorfloat32": "tf32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
    text = aliases.get(text, text)
    if text not in DTYPES:
        raise ValueError("use float32, tf32, bfloat16 or float16")
    return text


def check_dtype(dtype: str, device: torch.device) -> None:
    """Refuse a precision the device does not have (before any frame is read)."""
    if dtype in ("float16", "tf32") and device.type != "cuda":
        other = "bfloat16" if dtype == "float16" else "float32 or bfloat16"
        raise ChainError(f"dtype={dtype} needs a CUDA device; use {other} on the CPU")


def autocast(device: torch.device, dtype: str):
    """Mixed precision for a model call (float32 and tf32: off). float16 and tf32 need CUDA."""
    check_dtype(dtype, device)
    return torch.autocast(device.type, dtype=DTYPES[dtype], enabled=DTYPES[dtype] is not None)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N,3,H,W] in about [-1,1] -> [N,H,W,3] uint8."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class Invert(Stage):
    """Invert every aligned face with FeatureStyleEncoder: W+ (latent_avg added) and F."""

    name = "invert"
    needs, gives = ("quads",), ("latents",)
    params = (
        Param("model", model_spec, "fse", MODEL_HELP, kind="model", shared=True),
        _device_param(),
        Param("batch", int, 8, "frames whose faces go through the encoder together", low=1),
        Param("smooth", str, "off", "temporal smoothing of W+ and F per track",
              choices=("off", "causal", "lookahead")),
        Param("sigma", float, 1.5, "latent smoothing width, frames", low=0),
        Param("lookahead", int, 4, "frames ahead for smooth=lookahead (the latency)", low=1),
        Param("dtype", _dtype, "float32", DTYPE_HELP),
        Param("parallel", int, 1, "blocks encoded at once on separate threads", low=1),
        Param("compile", str, "off", "torch.compile the encoder (graphs: with CUDA graphs), batches padded "
              "to a fixed size", choices=tuple(COMPILE_MODES)),
        Param("trace", str, "on", TRACE_HELP, choices=("on", "off")),
    )

    def __init__(self, model, device, batch, smooth, sigma, lookahead, dtype, parallel, compile, trace):
        self.models = _models(model, device)
        check_dtype(dtype, self.models.device)
        self.tf32 = dtype == "tf32"
        self.reads_parts = self.models.device.type == "cpu"  # on a GPU it crops from uploaded whole frames
        encoder = inference_encoder(self.models.E)  # its BatchNorms folded into the convs
        if compile != "off":
            self.encoder = compiled_encoder(encoder, compile)
        else:
            self.encoder = TracedEncoder(encoder) if trace == "on" else encoder
        self.fixed = batch if compile != "off" else None
        self.blocks = FrameBlocks(batch)
        self.dtype = dtype
        self.chunks = AdaptiveBatch("invert")
        self.workers = BlockWorkers(parallel, "invert")
        self.smooth, self.sigma = smooth, sigma
        self.lookahead = lookahead if smooth == "lookahead" else 0
        self.signals: TrackSignals | None = None
        self.pending: deque[FrameRecord] = deque()
        self.latest = -1
        self._split: int | None = None

    @torch.no_grad()
    def _invert(self, block: list[FrameRecord]) -> None:
        pairs = [(r, f) for r in block for f in r.faces if f.crop is not None or f.quad is not None]
        if not pairs:
            return
        m = self.models

        def encode(chunk):
            with GPU_CLOCK.span(m.device):
                x = faces_to_input(chunk, m.device)
                n = x.shape[0]
                if self.fixed:
                    x = pad_batch(x, self.fixed)
                with autocast(m.device, self.dtype):
                    w_raw, feat = self.encoder(x)
            return list(zip(w_raw[:n].float() + m.latent_avg, feat[:n].float()))

        for (_, face), (w, feat) in zip(pairs, self.chunks.map(encode, pairs)):
            face.extra["w"], face.extra["F"] = w, feat

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        return self._after(self.blocks.add(batch))

    def stop_when(self, event) -> None:
        super().stop_when(event)
        self.chunks.stopping = self.workers.stopping = event

    def _after(self, blocks: list[list[FrameRecord]]) -> list[FrameRecord]:
        self.workers.map(self._invert, blocks)
        batch = [record for block in blocks for record in block]
        if self.smooth == "off":
            return batch
        for record in batch:
            self._add(record)
            self.pending.append(record)
        out = []
        while self.pending and self.pending[0].index <= self.latest - self.lookahead:
            out.append(self._smoothed(self.pending.popleft()))
        if out:
            self.signals.forget_before(out[-1].index + 1)
        return out

    def close(self) -> None:
        self.workers.close()

    def flush(self) -> list[FrameRecord]:
        out = self._after(self.blocks.rest())
        out += [self._smoothed(r) for r in self.pending]
        self.pending.clear()
        return out

    def _add(self, record: FrameRecord) -> None:
        self.latest = record.index
        for face in record.faces:
            if "w" not in face.extra:
                continue
            w, feat = face.extra["w"], face.extra["F"]
            if self.signals is None:
                self._split = w.numel()
                self.signals = TrackSignals([(slice(0, w.numel() + feat.numel()), self.sigma)], self.lookahead)
            self.signals.add(face.track_id, record.index,
                             torch.cat([w.flatten(), feat.flatten()]).double().cpu().numpy())

    def _smoothed(self, record: FrameRecord) -> FrameRecord:
        for face in record.faces:
            if "w" not in face.extra:
                continue
            v = torch.from_numpy(self.signals.smoothed(face.track_id, record.index)).float()
            w, feat = face.extra["w"], face.extra["F"]
            face.extra["w"] = v[:self._split].view_as(w).to(w.device)
            face.extra["F"] = v[self._split:].view_as(feat).to(feat.device)
        return record


class Edit(Stage):
    """Move every face's W+ along directions: edit=smile=1.5|age@0-7=-2 (keyframes: quote them)."""

    name = "edit"
    needs = changes = ("latents",)
    reads_parts = True
    extra_keys = True
    params = (
        Param("model", model_spec, "fse", "the model (its generator: layer count, computed directions)",
              kind="model", shared=True),
        _device_param(),
        Param("direction", str, None, "a direction file to apply (with strength= and layers=)"),
        Param("strength", str, "1", "strength or keyframes for direction="),
        Param("layers", str, None, "W+ rows A-B for direction="),
    )

    def __init__(self, model, device, direction, strength, layers, extras):
        G = _models(model, device).G
        texts = [f"{key}={arg.text}" for key, arg in extras.items()]
        if direction:
            texts.append(f"{direction}{'@' + layers if layers else ''}={strength}")
        if not texts:
            raise ChainError("edit needs at least one edit, e.g. edit=smile=1.5 (see 'videoinv directions list')")
        self.edits = []
        for text in texts:
            spec = EditSpec.parse(text)
            self.edits.append((spec, resolve(spec.name, G)))
            self.edits[-1][1].delta(G.n_latent, 0.0, spec.layers)  # checks the layers fit now

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        for record in batch:
            for face in record.faces:
                if "w" in face.extra:
                    # "moved": whether w~ differs from w, known here without asking the device
                    # (where w~ came from elsewhere, Synthesize compares them instead)
                    known = "w_edit" not in face.extra or "moved" in face.extra
                    base = face.extra.get("w_edit", face.extra["w"])
                    strengths = edit_strengths(self.edits, record.time, record.index, face.fade)
                    face.extra["w_edit"] = move_latent(base, self.edits, strengths)
                    if known:
                        face.extra["moved"] = face.extra.get("moved", False) or any(strengths)
        return batch


class Synthesize(Stage):
    """Render every face's (edited) W+ with its corrected feature tensor; one noise set per track.

    The layers before k and the Eq. 1 correction (one pass over w and w~ together) run for a
    ``group`` of frames at once; the layers from k on, where the time goes, for ``batch`` frames
    at a time, ``parallel`` of those blocks side by side."""

    name = "synthesize"
    needs, gives = ("latents",), ("renders",)
    reads_parts = True
    params = (
        Param("model", model_spec, "fse", MODEL_HELP, kind="model", shared=True),
        _device_param(),
        Param("seed", int, 0, "noise seed (track t uses seed + t)"),
        Param("k", int, 5, "the styled conv whose input F replaces (4 or 5: those that take a 16x16 input)"),
        Param("batch", int, 8, "frames whose faces go through the generator together", low=1),
        Param("group", int, 0, "frames whose faces go through the layers before k and the correction together "
              "(a multiple of batch; 0: batch)", low=0),
        Param("dtype", _dtype, "float32", DTYPE_HELP),
        Param("conv", str, "auto", "modulated conv form: grouped, shared, or auto (the faster for "
              "the batch size)", choices=("auto", "grouped", "shared")),
        Param("parallel", int, 1, "blocks rendered at once on separate threads", low=1),
        Param("compile", str, "off", "torch.compile the synthesis (graphs: with CUDA graphs), batches padded "
              "to a fixed size", choices=tuple(COMPILE_MODES)),
        Param("trace", str, "on", TRACE_HELP, choices=("on", "off")),
    )

    def __init__(self, model, device, seed, k, batch, group, dtype, conv, parallel, compile, trace):
        self.batch = max(1, batch)
        self.group = group or self.batch
        if self.group % self.batch:
            raise ChainError(f"synthesize: group={group} must be a multiple of batch={batch}")
        self.models = _models(model, device)
        check_dtype(dtype, self.models.device)
        side = FeatureStyleEncoder.feature_side
        fits = [j for j in range(1, self.models.G.num_layers) if self.models.G.side_entering(j) == side]
        if k not in fits:  # found here, not at the first face
            raise ChainError(f"synthesize: k={k} is not a styled conv that takes the encoder's {side}x{side} F; "
                             f"use k={' or '.join(map(str, fits))} (5, the method's, by default)")
        self.tf32 = dtype == "tf32"
        if compile != "off":
            self.G = CompiledGenerator(self.models.G, compile)
        else:
            self.G = TracedGenerator(self.models.G) if trace == "on" else self.models.G
        self.fixed = compile != "off"  # compiled code (and CUDA graphs) keep one batch shape per part
        self.seed, self.k = seed, k
        self.blocks = FrameBlocks(self.group)
        self.dtype, self.conv = dtype, conv
        self.heads = AdaptiveBatch("synthesize")
        self.chunks = AdaptiveBatch("synthesize")
        self.workers = BlockWorkers(parallel, "synthesize")
        self.noise_lock = threading.Lock()
        self.noise: dict[int, list[torch.Tensor]] = {}

    def noise_for(self, track: int) -> list[torch.Tensor]:
        with self.noise_lock:
            if track not in self.noise:  # drawn on the CPU; a plain copy to a GPU would wait for its queue
                send = transfer_for(self.models.device).send
                self.noise[track] = [send(n.numpy()) for n in self.models.G.make_noise(self.seed + track, "cpu")]
            return self.noise[track]

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        return [r for block in self.blocks.add(batch) for r in self._render(block)]

    def stop_when(self, event) -> None:
        super().stop_when(event)
        self.heads.stopping = self.chunks.stopping = self.workers.stopping = event

    def flush(self) -> list[FrameRecord]:
        return [r for block in self.blocks.rest() for r in self._render(block)]

    def close(self) -> None:
        self.workers.close()

    @torch.no_grad()
    def _render(self, group: list[FrameRecord]) -> list[FrameRecord]:
        faces = [f for r in group for f in r.faces if "w" in f.extra]
        heads = dict(zip(map(id, faces), self.heads.map(self._heads, faces)))
        split = FrameBlocks(self.batch)
        blocks = split.add(group) + split.rest()
        parts = [[(f, heads[id(f)]) for r in block for f in r.faces if "w" in f.extra] for block in blocks]
        for part, images in zip(parts, self.workers.map(self._tail, parts)):
            for (face, _), image in zip(part, images):
                face.edited = image
        return group

    def _mode(self, batch: int) -> str:
        if self.conv != "auto":
            return self.conv
        return choose_conv_mode(self.models.G, batch, self.models.device, DTYPES[self.dtype])

    def _noise(self, faces, size: int | None) -> list[torch.Tensor]:
        sets = [self.noise_for(f.track_id) for f in faces]
        noise = [torch.cat([s[j] for s in sets]) for j in range(self.models.G.num_layers)]
        return [pad_batch(t, size) for t in noise] if size else noise

    def _heads(self, chunk) -> list[tuple[torch.Tensor, torch.Tensor]]:  # within _render's no_grad
        """The corrected feature and the RGB skip of w~ per face (the layers before k)."""
        n, size = len(chunk), self.group if self.fixed else None
        w = torch.stack([f.extra["w"] for f in chunk])
        w_edit = torch.stack([f.extra.get("w_edit", f.extra["w"]) for f in chunk])
        feat = torch.stack([f.extra["F"] for f in chunk])
        if size:
            w, w_edit, feat = (pad_batch(t, size) for t in (w, w_edit, feat))
        device = self.models.device
        # the layers before k run [w; w~] together (twice the rows), or w~ alone where no edit
        # moved w: known from the edit stage's strengths where it can be (asking the device
        # would wait for every model call queued before this one)
        moved = _moved(chunk)
        if moved is None:
            moved = bool((w != w_edit).any())
        rows = w.shape[0] * (2 if moved else 1)
        with GPU_CLOCK.span(device), conv_mode(self._mode(rows)), autocast(device, self.dtype):
            feat, skip = self.G.edit_head(w, w_edit, feat, k=self.k, noise=self._noise(chunk, size), moved=moved)
        return list(zip(feat[:n], skip[:n]))

    @torch.no_grad()
    def _tail(self, part) -> list:
        return self.chunks.map(self._images, part)

    def _images(self, chunk) -> list:  # within _tail's no_grad
        """The layers from k on, for (face, (feature, skip)) pairs: uint8 crops, or float ones
        left on the device where blending happens there."""
        n, size = len(chunk), self.batch if self.fixed else None
        faces = [f for f, _ in chunk]
        w_edit = torch.stack([f.extra.get("w_edit", f.extra["w"]) for f in faces])
        feat = torch.stack([head[0] for _, head in chunk])
        skip = torch.stack([head[1] for _, head in chunk])
        if size:
            w_edit, feat, skip = (pad_batch(t, size) for t in (w_edit, feat, skip))
        device = self.models.device
        with GPU_CLOCK.span(device):
            with conv_mode(self._mode(w_edit.shape[0])), autocast(device, self.dtype):
                images = self.G.synthesize_from(w_edit, feat, skip, k=self.k, noise=self._noise(faces, size))[:n]
            if all(f.extra.get("on_device") for f in faces):  # blending happens on the device too
                return list(((images.float().clamp(-1, 1) + 1) * 127.5).round())
        return list(to_uint8(images))


def _moved(faces) -> bool | None:
    """Whether an edit moved any of these faces' latents (w~ != w), from what the edit stage
    knew; None where a face's w~ came from elsewhere."""
    flags = [f.extra.get("moved", False if "w_edit" not in f.extra else None) for f in faces]
    return None if None in flags else any(flags)


class Latents(Stage):
    """Replay a latent cache (videoinv invert): faces, smoothed quads, masks' landmarks, W+ and F."""

    name = "latents"
    gives = ("faces", "quads", "latents")
    reads_parts = True
    params = (Param("path", str, None, "the .vinv file"), _device_param(),
              Param("select", str, "all", "faces to keep: all or largest", choices=("all", "largest")),
              Param("ids", int, None, "keep only these track ids (e.g. ids=0+2)", multiple=True, low=0))

    @classmethod
    def chain_values(cls, options: dict) -> dict:
        from .cache import LatentCache

        # the stages after it render the cache's W+ and F: with its model, unless told otherwise
        spec = LatentCache(options["path"]).metadata.get("models", {}).get("spec") if options["path"] else None
        return {"model": model_spec(spec)} if spec else {}

    def __init__(self, path, device, select, ids):
        from ..models.specs import pick_device
        from .cache import LatentCache

        if not path:
            raise ChainError("latents needs path=FILE.vinv")
        self.cache = LatentCache(path)
        self.device = pick_device(device)
        self.select, self.ids = select, set(ids) if ids else None
        self._chosen: int | None = None  # the "largest" track being followed, as detect does

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        for record in batch:
            faces = self.cache.faces(record.index, self.device)
            if self.ids is not None:
                faces = [f for f in faces if f.track_id in self.ids]
            if self.select == "largest" and faces:
                if self._chosen not in {f.track_id for f in faces}:
                    self._chosen = max(faces, key=lambda f: f.quad.size).track_id
                faces = [f for f in faces if f.track_id == self._chosen]
            record.faces = faces
        return batch


def register(registry) -> None:
    for stage in (Invert, Edit, Synthesize, Latents):
        registry.add_stage(stage)
