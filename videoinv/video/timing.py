"""Parsing of time points, frame rates and frame sizes given on the command line.

Time points (``--start``/``--end``) are either a time or a frame number:

* ``12``, ``12.5``, ``12.5s`` - seconds;
* ``1:02.5``, ``01:02:03.250`` - ``[HH:]MM:SS[.frac]``;
* ``150f`` - frame number 150 (0-based, in presentation order).

Rates are ``30``, ``30000/1001`` or a decimal; the NTSC decimals 23.976, 29.97, 59.94 (and the
like) mean the exact ``N*1000/1001`` rates, as they do everywhere in video.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from ..errors import VideoinvError

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")
_SECONDS = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)s?$")
_FRAME = re.compile(r"^(\d+)f$")


@dataclass(frozen=True)
class TimePoint:
    """A position in a video: exactly one of ``seconds`` or ``frame`` is set."""

    seconds: Fraction | None = None
    frame: int | None = None

    @classmethod
    def parse(cls, text: str | float | int | TimePoint | None) -> TimePoint | None:
        if text is None or isinstance(text, TimePoint):
            return text
        if isinstance(text, (int, float, Fraction)):
            if text < 0:
                raise VideoinvError(f"time {text} is negative; give a time >= 0")
            return cls(seconds=Fraction(text))
        s = str(text).strip().lower()
        if m := _FRAME.match(s):
            return cls(frame=int(m.group(1)))
        if m := _SECONDS.match(s):
            return cls(seconds=Fraction(m.group(1)))
        if m := _CLOCK.match(s):
            hours, minutes, secs = m.groups()
            if Fraction(secs) >= 60 or (hours is not None and int(minutes) >= 60):
                raise VideoinvError(f"bad time {text!r}: minutes and seconds must be below 60")
            total = Fraction(secs) + 60 * int(minutes) + 3600 * int(hours or 0)
            return cls(seconds=total)
        raise VideoinvError(
            f"bad time {text!r}: use seconds (12.5), [HH:]MM:SS[.ms] (1:02.5) or a frame number (150f)"
        )

    def __str__(self) -> str:
        return f"{self.frame}f" if self.frame is not None else f"{float(self.seconds):g}s"


def parse_range(start, end) -> tuple[TimePoint | None, TimePoint | None]:
    """``--start``/``--end`` parsed, refusing an end that is not after the start (where both are
    times, or both frame numbers; the end is exclusive)."""
    first, last = TimePoint.parse(start), TimePoint.parse(end)
    if last is not None and (last.frame == 0 or last.seconds == 0):  # after decoding: "none in the range"
        raise VideoinvError(f"--end {last} keeps no frame (the end is exclusive); --end 1f keeps the first frame")
    if first is not None and last is not None and (
            (first.seconds is not None and last.seconds is not None and last.seconds <= first.seconds)
            or (first.frame is not None and last.frame is not None and last.frame <= first.frame)):
        raise VideoinvError(f"--end {last} is not after --start {first}; give an end later than the start "
                            "(the end is exclusive)")
    return first, last


def check_start(start: TimePoint | None, info) -> None:
    """Refuse a ``--start`` at or past the end of the video (``info``: its VideoInfo), where the
    probe knows the length, so that a run stops before any model loads."""
    if start is None:
        return
    past = (start.frame is not None and info.frame_count_exact and start.frame >= info.frame_count) or (
        start.seconds is not None and info.duration is not None and start.seconds >= Fraction(info.duration))
    if past:
        raise VideoinvError(f"--start {start} is past the end of {info.path} ({info.duration:.3f} s, "
                            f"{info.frame_count} frames); give a start inside the video")


_NTSC = {round(n * 1000 / 1001, 3): Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120, 240)}


def parse_rate(text: str | float | int | Fraction) -> Fraction:
    """``"30000/1001"``, ``"29.97"``, ``30`` -> an exact positive Fraction."""
    try:
        if isinstance(text, Fraction):
            rate = text
        elif isinstance(text, str) and "/" in text:
            num, den = text.split("/", 1)
            rate = Fraction(int(num), int(den))
        else:
            value = float(text)
            ntsc = [v for k, v in _NTSC.items() if abs(k - value) < 0.0015]
            rate = ntsc[0] if ntsc else Fraction(str(text)).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise VideoinvError(f"bad frame rate {text!r}: use a number like 30, 29.97 or 30000/1001") from None
    if rate <= 0:
        raise VideoinvError(f"bad frame rate {text!r}: it must be positive")
    return rate


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``."""
    m = re.match(r"^\s*(\d+)\s*[x:]\s*(\d+)\s*$", str(text))
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise VideoinvError(f"bad frame size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720")
    return int(m.group(1)), int(m.group(2))
