"""Raw frames over pipes (ffmpeg's ``-f rawvideo``): packed rgb24 or bgr24, no headers.

Frame ``i`` gets ``pts = i`` in a time base of ``1/rate``: a raw stream carries no timestamps
(unless the reader is told the source's, as ``filter-file`` does).
"""

from __future__ import annotations

from fractions import Fraction
from typing import BinaryIO, Iterator

import numpy as np

from ..errors import InputError, OutputError
from .frame import FrameRecord

PIX_FMTS = ("rgb24", "bgr24")


def _check_pix_fmt(pix_fmt: str) -> None:
    if pix_fmt not in PIX_FMTS:
        raise InputError(f"unsupported raw pixel format {pix_fmt!r}; use {' or '.join(PIX_FMTS)}")


class RawFrameReader:
    """Read ``width x height`` frames from a binary stream until it ends."""

    def __init__(self, stream: BinaryIO, width: int, height: int, rate: Fraction,
                 pix_fmt: str = "rgb24", name: str = "stdin", *, first: int = 0,
                 stamps: Iterator[int] | None = None, time_base: Fraction | None = None):
        """``first``: the number of the first frame; ``stamps``: the frames' presentation
        timestamps in ``time_base``, from the first (frames past their end go on at ``rate``)."""
        _check_pix_fmt(pix_fmt)
        self.stream = stream
        self.width, self.height = width, height
        self.first, self.stamps = first, stamps
        self.time_base = Fraction(time_base) if stamps is not None and time_base else 1 / Fraction(rate)
        self._step = max(1, round(1 / (Fraction(rate) * self.time_base)))
        self.pix_fmt = pix_fmt
        self.name = name
        self.frame_bytes = width * height * 3

    def __iter__(self) -> Iterator[FrameRecord]:
        index, pts = self.first, None
        while True:
            buf = bytearray(self.frame_bytes)
            got = self._fill(memoryview(buf))
            if got == 0:
                return
            if got < self.frame_bytes:
                raise InputError(
                    f"{self.name} ended {got} bytes into frame {index} (a {self.width}x{self.height} "
                    f"{self.pix_fmt} frame is {self.frame_bytes} bytes); check --size and --pix-fmt")
            image = np.frombuffer(buf, dtype=np.uint8).reshape(self.height, self.width, 3)
            if self.pix_fmt == "bgr24":
                image = np.ascontiguousarray(image[:, :, ::-1])
            pts = self._stamp(index, pts)
            yield FrameRecord(index=index, pts=pts, time_base=self.time_base, image=image)
            index += 1

    def _stamp(self, index: int, previous: int | None) -> int:
        if self.stamps is None:
            return index
        pts = next(self.stamps, None)
        if pts is None:  # more frames than timestamps: on at the nominal rate
            return previous + self._step if previous is not None else index * self._step
        return pts

    def _fill(self, view: memoryview) -> int:
        got = 0
        while got < len(view):
            n = self.stream.readinto(view[got:])
            if not n:
                break
            got += n
        return got


class RawFrameWriter:
    """Write records' images as packed raw frames."""

    def __init__(self, stream: BinaryIO, pix_fmt: str = "rgb24", name: str = "stdout"):
        _check_pix_fmt(pix_fmt)
        self.stream = stream
        self.pix_fmt = pix_fmt
        self.name = name
        self.frames_written = 0

    def write(self, record: FrameRecord) -> None:
        image = record.image if self.pix_fmt == "rgb24" else record.image[:, :, ::-1]
        try:
            self.stream.write(np.ascontiguousarray(image).data)
        except BrokenPipeError:
            raise OutputError(f"{self.name} was closed by the program reading it "
                              f"after {self.frames_written} frames") from None
        self.frames_written += 1

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise OutputError(f"{self.name} was closed by the program reading it "
                              f"after {self.frames_written} frames") from None
