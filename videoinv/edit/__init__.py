"""Latent edits: directions, schedules and the feature-tensor correction.

The package imports nothing itself: ``videoinv.edit.recipe`` (the edit options) is used by jobs
that need no torch, and ``videoinv.edit.feature`` brings torch in."""
