"""Models: the StyleGAN2 generator, FeatureStyleEncoder, their checkpoints and the weight cache."""

from .encoder import FeatureStyleEncoder, encoder_input
from .stylegan2 import StyleGAN2Generator

__all__ = ["StyleGAN2Generator", "FeatureStyleEncoder", "encoder_input"]
