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
    smooth: str = "stream"
    latent_smooth: str = "off"
    seed: int | None = None  # noise seed (None: the latent cache's, else 0)
    latents: str | None = None  # a .vinv cache: skip detection and inversion

    def chain(self, size: int) -> Chain:
        """The full chain for a generator of ``size`` pixels."""
        stages = self.analysis(size).stages if self.latents is None else (
            _call("latents", path=self.latents, device=self.device),)
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
        tail.append(_call("synthesize", model=self.model, device=self.device, seed=self.seed))
        tail.append(_call("blend", segments=list(self.segments), exclude=list(self.exclude) or None,
                          feather=self.feather, mode=self.blend, colour="yes" if self.colour else None))
        return Chain(tuple(stages) + tuple(tail))

    def analysis(self, size: int) -> Chain:
        """Detection, tracking, alignment and inversion: what a latent cache replaces."""
        select = {"select": "largest"} if self.faces == "largest" else (
            {"ids": [int(i) for i in self.faces.split(",")]} if self.faces not in ("all", "") else {})
        return Chain((_call("detect", every=self.every, **select),
                      _call("align", size=size, smooth=self.smooth),
                      _call("invert", model=self.model, device=self.device, smooth=self.latent_smooth)))
