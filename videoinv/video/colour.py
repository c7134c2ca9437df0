"""Colour matrix, range, primaries and transfer tags: reading them, assuming them, writing them.

The rule for reading (``source_colour``):

* A YUV stream's tagged matrix and range are honoured (BT.709, BT.601 = bt470bg/smpte170m,
  SMPTE 240M, FCC, BT.2020).
* An **untagged** matrix is BT.709 for HD (width >= 1280 or height > 576) and BT.601 for SD, the
  convention players and browsers follow. (FFmpeg itself, and so PyAV and OpenCV, would decode
  untagged HD as BT.601, which shifts skin tones by up to ~20 levels.)
* An untagged range is full ("pc") for the JPEG pixel formats (``yuvj*``) and limited ("tv")
  otherwise.
* Untagged primaries/transfer follow the assumed matrix (BT.709 for HD; SMPTE 170M for NTSC-size
  and BT.470BG for 576-line SD).
* RGB-coded streams (``gbrp``, ``bgr0`` ...) have no matrix.

Writing (``output_colour``) converts RGB to YUV with the matrix and range it tags, BT.709 TV
range by default; primaries and transfer are copied from the source, because the RGB values are
still in the source's primaries (no gamut or tone mapping is done).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import VideoinvError

log = logging.getLogger(__name__)

# FFmpeg enum values (AVColorSpace, AVColorRange, AVColorPrimaries, AVColorTransferCharacteristic).
SPACE_NAMES = {0: "rgb", 1: "bt709", 2: "unspecified", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
               7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}
RANGE_NAMES = {0: "unspecified", 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {1: "bt709", 2: "unspecified", 4: "bt470m", 5: "bt470bg", 6: "smpte170m",
                   7: "smpte240m", 8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431",
                   12: "smpte432", 22: "ebu3213"}
TRC_NAMES = {1: "bt709", 2: "unspecified", 4: "gamma22", 5: "gamma28", 6: "smpte170m",
             7: "smpte240m", 8: "linear", 11: "iec61966-2-4", 13: "iec61966-2-1",
             14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67"}
HDR_TRC = {16, 18}

# Our matrix names -> (swscale colourspace id used by PyAV's reformatter, AVColorSpace tag).
MATRICES = {"bt709": (1, 1), "bt601": (5, 6), "smpte240m": (7, 7), "fcc": (4, 4), "bt2020": (9, 9)}
_SPACE_TO_MATRIX = {1: "bt709", 5: "bt601", 6: "bt601", 7: "smpte240m", 4: "fcc", 9: "bt2020",
                    10: "bt2020"}
RANGES = {"tv": 1, "pc": 2}
RGB_PIX_PREFIXES = ("gbr", "rgb", "bgr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr",
                    "pal8")  # pal8: a palette of RGB colours (GIF output)


def is_rgb_format(pix_fmt: str) -> bool:
    return pix_fmt.startswith(RGB_PIX_PREFIXES)


@dataclass(frozen=True)
class Colour:
    """How a stream's pixels relate to RGB.

    ``matrix``: "bt709" | "bt601" | "smpte240m" | "fcc" | "bt2020" | "rgb" (no matrix);
    ``range``: "tv" (limited) | "pc" (full); ``primaries``/``trc``: FFmpeg enum codes;
    ``assumed``: the names of the fields that were not tagged and were filled in by the rule.
    """

    matrix: str
    range: str
    primaries: int
    trc: int
    assumed: tuple[str, ...] = ()

    @property
    def sws_matrix(self) -> int:
        return MATRICES[self.matrix][0] if self.matrix != "rgb" else MATRICES["bt709"][0]

    @property
    def space_tag(self) -> int:
        return 0 if self.matrix == "rgb" else MATRICES[self.matrix][1]

    @property
    def range_tag(self) -> int:
        return RANGES[self.range]

    @property
    def is_hdr(self) -> bool:
        return self.trc in HDR_TRC

    def describe(self) -> str:
        """``"bt709/tv (matrix assumed)"``, for logs and ``probe``."""
        text = f"{self.matrix}/{self.range}, primaries {PRIMARIES_NAMES.get(self.primaries, self.primaries)}," \
               f" transfer {TRC_NAMES.get(self.trc, self.trc)}"
        return text + (f" ({', '.join(self.assumed)} assumed: untagged)" if self.assumed else "")


def _sd_defaults(height: int) -> tuple[int, int]:
    return (5, 6) if height == 576 else (6, 6)


def source_colour(space: int, rng: int, primaries: int, trc: int, pix_fmt: str,
                  width: int, height: int) -> Colour:
    """Apply the module's rule to a stream's tags (FFmpeg enum codes) and pixel format."""
    assumed: list[str] = []
    if is_rgb_format(pix_fmt) or space == 0:
        matrix = "rgb"
    elif space in _SPACE_TO_MATRIX:
        matrix = _SPACE_TO_MATRIX[space]
    else:
        if space not in (2, 3) and space is not None:
            log.warning("colour matrix %s is not supported; decoding as BT.709",
                        SPACE_NAMES.get(space, space))
        matrix = "bt709" if (width >= 1280 or height > 576) else "bt601"
        assumed.append("matrix")
    if rng in (1, 2):
        range_ = RANGE_NAMES[rng]
    else:
        range_ = "pc" if (pix_fmt.startswith("yuvj") or matrix == "rgb") else "tv"
        if matrix != "rgb":
            assumed.append("range")
    hd = matrix != "bt601"
    default_p, default_t = (1, 1) if hd else _sd_defaults(height)
    if primaries in PRIMARIES_NAMES and primaries != 2:
        prim = primaries
    else:
        prim = default_p
        assumed.append("primaries")
    if trc in TRC_NAMES and trc != 2:
        tr = trc
    else:
        tr = default_t
        assumed.append("transfer")
    return Colour(matrix, range_, prim, tr, tuple(assumed))


def output_colour(source: Colour | None, matrix: str = "bt709", range_: str = "tv",
                  pix_fmt: str = "yuv420p") -> Colour:
    """The colour an output stream is converted to and tagged with.

    ``matrix``/``range_`` may be ``"source"`` to keep the source's (BT.709/TV when the source
    is RGB-coded or absent). An RGB pixel format gets no matrix and full range.
    """
    if matrix == "source":
        matrix = source.matrix if source and source.matrix != "rgb" else "bt709"
    if range_ == "source":
        range_ = source.range if source and source.matrix != "rgb" else "tv"
    if matrix not in MATRICES:
        raise VideoinvError(f"unknown colour matrix {matrix!r}; use one of: {', '.join(MATRICES)}, source")
    if range_ not in RANGES:
        raise VideoinvError(f"unknown colour range {range_!r}; use tv, pc or source")
    if is_rgb_format(pix_fmt):
        matrix, range_ = "rgb", "pc"
    if source is not None:
        primaries, trc = source.primaries, source.trc
    else:
        primaries, trc = (1, 1) if matrix != "bt601" else (6, 6)
    return Colour(matrix, range_, primaries, trc)
