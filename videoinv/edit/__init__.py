"""Latent edits: directions, schedules and the feature-tensor correction."""

from .feature import corrected_feature, feature_edit

__all__ = ["corrected_feature", "feature_edit"]
