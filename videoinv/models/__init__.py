"""Models: the StyleGAN2 generator, FeatureStyleEncoder, their checkpoints and the weight cache.

The networks (and torch with them) are imported when first named: the weight cache
(``videoinv.models.weights``) serves commands that run no network, such as ``weights list``."""

from __future__ import annotations

import importlib

_WHERE = {"StyleGAN2Generator": "stylegan2", "FeatureStyleEncoder": "encoder", "encoder_input": "encoder"}

__all__ = ["StyleGAN2Generator", "FeatureStyleEncoder", "encoder_input"]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
