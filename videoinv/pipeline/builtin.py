"""Components that ship with the core (the face, model and edit packages add more)."""

from __future__ import annotations

from .stage import Copy


def register(registry) -> None:
    from ..video.reader import Reader

    registry.add_stage(Copy)
    registry.add("reader", "pyav", Reader)
