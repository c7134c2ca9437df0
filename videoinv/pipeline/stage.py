"""What a pipeline stage is: one job over a batch of frame records, with declared options."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ..errors import ChainError
from ..video.frame import FrameRecord

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")


@dataclass(frozen=True)
class Param:
    """A stage option: its name, how to convert the text, its default and a one-line help.

    ``convert``: ``int``, ``float``, ``str``, :func:`parse_bool` or any ``str -> value``;
    ``multiple``: the option is a list (``a|b`` / ``a+b``) and each item is converted;
    ``choices``: allowed values (after conversion); ``low``/``high``: the least and the most a
    number may be, ``above``: a number it must exceed; ``shared``: one value for the whole chain
    (given on one stage, the other stages with the option take it; see chain.build_stages)."""

    name: str
    convert_text: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    multiple: bool = False
    choices: tuple | None = None
    kind: str | None = None  # how ``videoinv stages`` names the value (derived when None)
    low: float | None = None
    high: float | None = None
    above: float | None = None
    shared: bool = False

    @property
    def bounds(self) -> str:
        """The range a number must lie in, in words ("1 or more", "0 to 1"); empty: any."""
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{self.low:g} or more"
        if self.above is not None:
            return f"more than {self.above:g}"
        return f"{self.high:g} or less" if self.high is not None else ""

    def _in_bounds(self, value) -> bool:
        return ((self.low is None or value >= self.low) and (self.high is None or value <= self.high)
                and (self.above is None or value > self.above))

    @property
    def kind_name(self) -> str:
        if self.kind:
            name = self.kind
        elif self.choices:
            name = "|".join(map(str, self.choices))
        else:
            name = {int: "int", float: "number", str: "text",
                    parse_bool: "yes|no"}.get(self.convert_text, "value")
        name = f"{name}[+{name}...]" if self.multiple else name
        return f"{name} ({self.bounds})" if self.bounds else name

    def convert(self, arg, stage: str) -> Any:
        texts = list(arg.items) if self.multiple else [arg.text]
        values = []
        for text in texts:
            try:
                value = self.convert_text(text)
            except (TypeError, ValueError) as err:
                kind = self.kind_name.split("[")[0].split(" (")[0]
                raise ChainError(f"option {self.name} of stage {stage}: {text!r} is not a valid {kind} "
                                 f"({err})") from None
            if self.choices is not None and value not in self.choices:
                raise ChainError(f"option {self.name} of stage {stage}: {text!r} is not one of "
                                 f"{', '.join(map(str, self.choices))}")
            if value is not None and not self._in_bounds(value):  # NaN too
                raise ChainError(f"option {self.name} of stage {stage}: {text!r} is out of range; it must be "
                                 f"{self.bounds}")
            values.append(value)
        return values if self.multiple else values[0]


class Stage:
    """Base class of the pipeline's stages.

    A stage gets batches of records in order and returns the records it has finished, in order;
    a stage with look-ahead may hold some back and return them from later calls or from
    :meth:`flush` (at the end of the video). Every record given must come out exactly once.
    Subclasses set ``name``, ``params`` (their chain options, in positional order) and a
    docstring whose first line is the stage's help.
    """

    name: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    extra_keys: ClassVar[bool] = False  # accept option names not in params (as ``extras``)
    identity: ClassVar[bool] = False  # the stage leaves every frame unchanged
    needs_prepass: bool = False  # must see the whole video (through the stages before it) first
    # reads no more of a picture than parts (record.region) and thumbnails: where every stage
    # does, the decoder leaves frames in YUV instead of converting them whole ahead
    reads_parts: bool = False
    # float32 model work on CUDA: True in TensorFloat-32, False in full float32, None: no
    # preference (set by the model stages from their dtype; a run applies it to the process)
    tf32: bool | None = None
    stopping: threading.Event | None = None  # a threaded run's stop signal (see stop_when)
    # what a stage reads from records that a stage before it made, and what it makes, for
    # chains run over bare frames (see chain.check_order): "faces", "quads" (aligned faces),
    # "latents" (W+ and F), "renders" (synthesized crops); ``changes``: what it alters for a
    # later stage to use (a stage after it must need it)
    needs: ClassVar[tuple[str, ...]] = ()
    gives: ClassVar[tuple[str, ...]] = ()
    changes: ClassVar[tuple[str, ...]] = ()

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        return batch

    def ahead(self, batch: list[FrameRecord]) -> None:
        """Told about a batch as soon as it is on its way to this stage (from another thread
        in a threaded run), before ``process`` gets it: a stage may start work for it elsewhere
        (e.g. detection in worker processes). Must not change the records."""

    def flush(self) -> list[FrameRecord]:
        return []

    def stop_when(self, event: threading.Event | None) -> None:
        """A threaded run's stop signal (None after the run): a stage whose ``process`` takes long
        may give up the rest of its batch once it is set, raising ``batching.Stopped``."""
        self.stopping = event

    # A pre-pass (see Pipeline.prepass): the stages before the first one that needs it process
    # the whole video once with ``prepass=True`` (and may record what they computed, to replay
    # it in the main pass); that stage gets their output through ``observe``.
    def begin_prepass(self) -> None:
        """Called on the stages before a prepass stage, before the pre-pass."""

    def end_prepass(self) -> None:
        """Called on those stages after the pre-pass, before the main pass."""

    def observe(self, batch: list[FrameRecord]) -> None:
        """Pre-pass input of a stage that ``needs_prepass``."""

    def observed(self) -> None:
        """End of the pre-pass input."""

    def close(self) -> None:
        """Release resources (models, worker processes)."""

    @classmethod
    def chain_values(cls, options: dict) -> dict:
        """Values this stage, with these options, fixes for the chain's shared options besides
        those given to it (e.g. the model a latent cache was made with)."""
        return {}

    @classmethod
    def follow(cls, options: dict, given: set, shared: dict) -> None:
        """Adjust the options not ``given`` to the chain's ``shared`` values (those of shared
        options are already taken)."""

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class Copy(Stage):
    """Pass every frame through unchanged (the whole chain when it is just ``copy``)."""

    name = "copy"
    identity = True
    reads_parts = True
