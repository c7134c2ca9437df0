"""The chains ``videoinv edit`` and ``videoinv invert`` run, built from their options."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..chain import Arg, Chain, StageCall


def _call(name: str, **options) -> StageCall:
    args = []
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            items = tuple(str(v) for v in value)
            args.append(Arg(key, items, ("+",) * (len(items) - 1)))
        else:
            args.append(Arg(key, (str(value),)))
    return StageCall(name, tuple(args))


def _names(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.replace(",", "+").split("+") if p.strip())


@dataclass
class EditOptions:
    """What ``videoinv edit`` does to faces (the Python API takes the same fields)."""

    edits: list[str] = field(default_factory=list)  # "smile=1.5", "age@0-7=-2", "sefa0=0:0s,3:2s", a file...
    model: str = "fse"
    device: str = "auto"
    faces: str = "all"  # all | largest | "0,2" (track ids)
    segments: tuple[str, ...] = ("face",)
    exclude: tuple[str, ...] = ()
    feather: float = 15.0
    blend: str = "alpha"
    colour: bool = False
    every: int = 5
    detector: str = "auto"  # hog | cnn | a plugin's (retinaface) | auto (see detector_name)
    smooth: str = "stream"
    latent_smooth: str = "off"
    seed: int | None = None  # noise seed (None: the latent cache's, else 0)
    latents: str | None = None  # a .vinv cache: skip detection and inversion
    batch: int | None = None  # frames whose faces go through a model together (None: see model_batch)
    dtype: str = "float32"  # float32 | tf32 | bfloat16 | float16 (the models' precision, see stages.DTYPES)
    conv: str = "auto"  # the modulated conv's form: auto | grouped | shared
    workers: int | None = None  # detection worker processes (None: 1 with 4+ cores, else 0)
    warp: str = "auto"  # crops and paste-back: cv2 (CPU), torch (on the model's device), auto (torch on CUDA)
    threaded: bool | None = None  # a pipelined run (set by edit_video/invert_video; None: prefers_threads)
    parallel: int | None = None  # model blocks at once (None: see parallel_blocks)
    compile: str = "off"  # torch.compile the models: off | on | graphs (with CUDA graphs)

    def __post_init__(self) -> None:
        # one edit, or segments as the CLI writes them (mouth+eyes, or mouth,eyes), as plain
        # text: not a sequence of letters
        if isinstance(self.edits, str):
            self.edits = [self.edits]
        if isinstance(self.segments, str):
            self.segments = _names(self.segments)
        if isinstance(self.exclude, str):
            self.exclude = _names(self.exclude)

    def _cpu_plan(self) -> tuple[int, int] | None:
        """(blocks at once, torch threads) on the CPU (models.tuning.cpu_plan); None on a GPU."""
        from ..models.specs import load_models, pick_device
        from ..models.tuning import cpu_plan

        if pick_device(self.device).type != "cpu":
            return None
        return cpu_plan(load_models(self.model, self.device).G, self.threaded)

    def parallel_blocks(self) -> int:
        """``parallel``, or by default: on the CPU, one block per core for a light model in a
        threaded run, else 1; on a GPU 1 (it works through one stream)."""
        if self.parallel is not None:
            return self.parallel
        plan = self._cpu_plan()
        return 1 if plan is None else plan[0]

    def prefers_threads(self) -> bool:
        """Whether a run should be pipelined by default: wherever there is more than one core
        (or a GPU). Heavy models on a 2-core CPU once ran slower pipelined (x0.5-0.9); since a
        single malloc arena, traced model calls and one swscale converter per stream they run
        x1.02-1.18 the sequential loop, turn by turn, in every measured run (random:256 and
        random:1024, ``videoinv bench speed``)."""
        from ..models.specs import pick_device
        from ..models.tuning import cpu_count

        return pick_device(self.device).type != "cpu" or cpu_count() > 1

    def torch_threads(self) -> int | None:
        """Torch's CPU threads for this run: one per block when blocks run side by side, else
        every core (None: torch's own default, on a GPU)."""
        if self.parallel is not None:
            from ..models.tuning import cpu_count

            return 1 if self.parallel > 1 else cpu_count()
        plan = self._cpu_plan()
        return None if plan is None else plan[1]

    def ffmpeg_helpers(self) -> bool:
        """Whether FFmpeg decodes and converts frames on helper threads of its own: not in a
        pipelined run with the models on the CPU, where every core runs a stage (see
        video.helpers); else FFmpeg's default."""
        from ..models.specs import pick_device

        return not (self.threaded and pick_device(self.device).type == "cpu")

    def check_precision(self) -> None:
        """Refuse ``dtype`` where the device lacks it (float16, tf32 off CUDA), before any model
        is loaded or frame decoded."""
        from ..models.specs import pick_device
        from .stages import check_dtype

        check_dtype(self.dtype, pick_device(self.device))

    def check_segments(self) -> None:
        """Refuse an unknown ``segments``/``exclude`` name before any model is loaded (the blend
        stage would, after)."""
        from ..errors import VideoinvError
        from ..faces.masks import SEGMENTS, MaskSpec

        for option, names in (("--segments", self.segments), ("--exclude", self.exclude)):
            unknown = [n for n in names if n not in SEGMENTS]
            if unknown:
                raise VideoinvError(f"bad {option} {'+'.join(names)!r}: {', '.join(map(repr, unknown))} is not a "
                                    f"segment; use {', '.join(SEGMENTS)}, joined with + (mouth+eyes)")
        try:
            MaskSpec(tuple(self.segments), tuple(self.exclude))
        except ValueError as err:
            raise VideoinvError(f"--segments/--exclude: {err}") from None

    def face_selection(self) -> dict:
        """The detect stage's selection for ``faces``: all, the largest, or track ids."""
        text = self.faces.strip()
        if text in ("all", ""):
            return {}
        if text == "largest":
            return {"select": "largest"}
        ids = [part.strip() for part in text.split(",")]
        if not all(part.isdigit() for part in ids):
            from ..errors import VideoinvError

            raise VideoinvError(f"bad faces {self.faces!r}: use all, largest, or track ids such as 0,2 "
                                "('videoinv inspect' shows the ids)")
        return {"ids": [int(part) for part in ids]}

    def device_warps(self) -> bool:
        """Crop and paste on the model's device (frames uploaded once, no crops in host memory)."""
        if self.warp == "auto":
            from ..models.specs import pick_device

            return pick_device(self.device).type == "cuda"
        return self.warp == "torch"

    def model_batch(self) -> int:
        """The synthesis batch: ``batch``, or by default 8 on CUDA and 1 on the CPU, where larger
        batches are slower per face (activations fall out of the caches; benchmarks/throughput.py)."""
        if self.batch is not None:
            return self.batch
        from ..models.specs import pick_device

        return 8 if pick_device(self.device).type == "cuda" else 1

    def encoder_batch(self) -> int:
        """``batch``, or by default 8: the encoder is never slower per face batched (measured on
        the CPU: the same per face for a full-size encoder, 1.3x (one thread) to 2x (two threads)
        faster for a light one; see benchmarks/throughput.py), unlike the synthesis."""
        return self.batch if self.batch is not None else 8

    def synthesis_group(self) -> int:
        """Frames whose faces run the generator's layers before k and the Eq. 1 correction
        together: the encoder's batch when it is a multiple of the synthesis batch (at a batch
        of one those small layers cost their call overhead: batched over 8 frames the synthesis
        of random:256:32 is 16% faster per face), else the synthesis batch."""
        group, batch = self.encoder_batch(), self.model_batch()
        return group if group % batch == 0 else batch

    def detector_name(self) -> str:
        """``detector``, or for auto: the RetinaFace plugin on a CUDA device when its weights are
        present (it then detects on the GPU beside the models), else dlib's HOG (in worker
        processes where there are cores to spare, see detect_workers)."""
        if self.detector != "auto":
            return self.detector
        from ..models import weights
        from ..models.specs import pick_device
        from ..registry import default_registry

        if pick_device(self.device).type != "cuda":
            return "hog"
        known = default_registry().names("detector")
        for name, file in (("retinaface", "retinaface-resnet50"), ("retinaface-mobile", "retinaface-mobilenet")):
            if name in known and weights.status(file) == "present":
                return name
        return "hog"

    def detect_workers(self) -> int:
        if self.workers is not None:
            return self.workers
        from ..models.tuning import cpu_count

        # a worker process pays off beside a GPU or with cores to spare; on 2 cores it takes a
        # core from the models (benchmarks/throughput.py: 8.7 fps with one, 12.5 without)
        return 1 if cpu_count() >= 4 else 0

    def chain(self, size: int) -> Chain:
        """The full chain for a generator of ``size`` pixels."""
        stages = self.analysis(size).stages if self.latents is None else (
            _call("latents", path=self.latents, device=self.device, **self.face_selection()),)
        named, files = [], []
        for text in self.edits:
            name = text.split("=", 1)[0].split("@", 1)[0]
            (files if "/" in name or name.endswith((".npy", ".pt", ".pth", ".safetensors")) else named).append(text)
        tail = []
        if named:
            call = _call("edit", model=self.model, device=self.device)
            extra = tuple(Arg(t.split("=", 1)[0].strip(), (t.split("=", 1)[1].strip(),)) for t in named)
            tail.append(StageCall("edit", call.args + extra))
        for text in files:  # a path cannot be an option name: one stage per file
            head, strength = text.split("=", 1)
            path, _, layers = head.partition("@")
            tail.append(_call("edit", model=self.model, device=self.device, direction=path, strength=strength,
                              layers=layers or None))
        tail.append(_call("synthesize", model=self.model, device=self.device, seed=self.seed, batch=self.model_batch(),
                          group=self.synthesis_group(), dtype=self.dtype, conv=self.conv, parallel=self.parallel_blocks(),
                          compile=self.compile))
        tail.append(_call("blend", segments=list(self.segments), exclude=list(self.exclude) or None,
                          feather=self.feather, mode=self.blend, colour="yes" if self.colour else None))
        return Chain(tuple(stages) + tuple(tail))

    def analysis(self, size: int) -> Chain:
        """Detection, tracking, alignment and inversion: what a latent cache replaces."""
        select = self.face_selection()
        detector = self.detector_name()
        workers = self.detect_workers() if detector in ("hog", "cnn") else 0
        return Chain((_call("detect", every=self.every, model=detector, workers=workers, **select),
                      _call("align", size=size, smooth=self.smooth, crops="no" if self.device_warps() else None),
                      _call("invert", model=self.model, device=self.device, smooth=self.latent_smooth,
                            batch=self.encoder_batch(), dtype=self.dtype, parallel=self.parallel_blocks(),
                            compile=self.compile)))
