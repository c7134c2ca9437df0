"""videoinv: edit faces in videos through a StyleGAN2 latent space.

Python API (the CLI's commands as functions)::

    import videoinv
    info = videoinv.probe("in.mp4")
    videoinv.edit_video("in.mp4", "out.mp4", chain="copy")
    with videoinv.Reader("in.mp4") as frames: ...
"""

from __future__ import annotations

from .pipeline import allocator as _allocator

__version__ = "0.1.0"

# before any thread allocates: one malloc arena that keeps freed blocks (see pipeline.allocator)
_allocator.keep_freed_memory()

_API = {
    "edit_video": "videoinv.pipeline.jobs",
    "invert_video": "videoinv.pipeline.jobs",
    "EditOptions": "videoinv.edit.recipe",
    "filter_raw": "videoinv.pipeline.jobs",
    "filter_file": "videoinv.pipeline.jobs",
    "Pipeline": "videoinv.pipeline.runner",
    "Reader": "videoinv.video.reader",
    "Writer": "videoinv.video.writer",
    "EncodeOptions": "videoinv.video.writer",
    "FrameRecord": "videoinv.video.frame",
    "parse_chain": "videoinv.chain",
    "VideoinvError": "videoinv.errors",
}
__all__ = [*_API, "probe", "__version__"]


def probe(path, scan: bool = False):
    """Describe a video (see :class:`videoinv.video.probe.VideoInfo`)."""
    from .video.probe import describe

    return describe(path, scan=scan)


def __getattr__(name: str):
    # imported on first use so that `import videoinv` stays light (no PyAV/torch at import)
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'videoinv' has no attribute {name!r}")
