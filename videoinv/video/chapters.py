"""A source's file tags and chapters, carried into an output of part of it.

The ffmpeg program moves chapters with a trimmed start (``-ss``) but keeps those after an input's
``-to``, so ``edit`` and ``filter-file`` cut them here, alike: a chapter that ends before the range
goes, as does one that starts at or after its end, and one across either bound is cut to it.
"""

from __future__ import annotations

import os
import re
from fractions import Fraction

import av


def read_tags(path: str | os.PathLike) -> tuple[dict[str, str], list[dict], Fraction]:
    """The file-level tags, the chapters (PyAV's dicts: id, start, end, time_base, metadata) and
    the container's start time (seconds) of ``path``; none where it cannot be opened as a file
    (e.g. a raw pipe)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as source:
            start = Fraction(source.start_time or 0, 1_000_000)  # in AV_TIME_BASE units
            return dict(source.metadata), source.chapters(), start
    except (av.error.FFmpegError, OSError):
        return {}, [], Fraction(0)


def window_chapters(path: str | os.PathLike, window: dict[str, str], frame: Fraction = Fraction(0)) -> list[dict]:
    """The chapters of ``path`` cut to the ffmpeg program's input options ``ss``/``to`` (seconds
    from the start of the file, as it counts them; ``frame``: as :func:`cut` takes it)."""
    _, chapters, start = read_tags(path)
    end = start + Fraction(window["to"]) if "to" in window else None
    return cut(chapters, start + Fraction(window.get("ss", "0")), end, frame)


def cut(chapters: list[dict], start: Fraction, end: Fraction | None = None,
        frame: Fraction = Fraction(0)) -> list[dict]:
    """The ``chapters`` of the part of the source from ``start`` to ``end`` (seconds on the
    source's timeline; None: to its end), on the output's timeline, which begins at ``start``.
    ``frame``: a frame's duration. A chapter that no kept frame starts in (it begins less than a
    frame before the end) goes, and one that ends less than a frame before the end is held to
    it, so that a range ending at a chapter mark does not end in a sliver of the next chapter
    (or between two)."""
    kept = []
    for chapter in chapters:
        tb = Fraction(chapter["time_base"])
        shift = round(Fraction(start) / tb)
        first, last = chapter["start"] - shift, chapter["end"] - shift
        if last <= 0:
            continue
        if end is not None:
            limit = round((Fraction(end) - Fraction(start)) / tb)
            # where the last frame starts, give or take a millisecond (the ffmpeg program's
            # window is written to the microsecond)
            last_frame, ms = limit - round(Fraction(frame) / tb), max(1, round(Fraction(1, 1000) / tb))
            if first >= limit or first > last_frame + ms:
                continue
            last = limit if last >= last_frame - ms else last
        kept.append(dict(chapter, start=max(0, first), end=last))
    return kept


def _escaped(text: str) -> str:
    return re.sub(r"([=;#\\\n])", r"\\\1", str(text))


def ffmetadata(chapters: list[dict]) -> str:
    """``chapters`` as an FFMETADATA1 file, the form the ffmpeg program reads them from."""
    lines = [";FFMETADATA1"]
    for chapter in chapters:
        tb = Fraction(chapter["time_base"])
        lines += ["[CHAPTER]", f"TIMEBASE={tb.numerator}/{tb.denominator}",
                  f"START={chapter['start']}", f"END={chapter['end']}"]
        lines += [f"{_escaped(key)}={_escaped(value)}" for key, value in chapter.get("metadata", {}).items()]
    return "\n".join(lines) + "\n"
