"""What a pipeline stage is: one job over a batch of frame records, with declared options."""

from __future__ import annotations

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
    ``choices``: allowed values (after conversion)."""

    name: str
    convert_text: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    multiple: bool = False
    choices: tuple | None = None

    def convert(self, arg, stage: str) -> Any:
        texts = list(arg.items) if self.multiple else [arg.text]
        values = []
        for text in texts:
            try:
                value = self.convert_text(text)
            except (TypeError, ValueError) as err:
                kind = getattr(self.convert_text, "__name__", "value")
                raise ChainError(f"option {self.name} of stage {stage}: {text!r} is not a valid {kind} "
                                 f"({err})") from None
            if self.choices is not None and value not in self.choices:
                raise ChainError(f"option {self.name} of stage {stage}: {text!r} is not one of "
                                 f"{', '.join(map(str, self.choices))}")
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

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        return batch

    def flush(self) -> list[FrameRecord]:
        return []

    def close(self) -> None:
        """Release resources (models, worker processes)."""

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class Copy(Stage):
    """Pass every frame through unchanged (the whole chain when it is just ``copy``)."""

    name = "copy"
    identity = True
