"""Stages that ship with the core (more are added by the face, model and edit packages)."""

from __future__ import annotations

from .stage import Copy


def register(registry) -> None:
    registry.add_stage(Copy)
