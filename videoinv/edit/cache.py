"""The latent cache (``.vinv``): what inversion found, so edits can be tried without redoing it.

One safetensors file. Per track ``T`` it holds, row by row over the frames the face is in:
``T.index`` (frame numbers, int64), ``T.quad`` [n,6] (smoothed alignment square: centre and
half-axes, float64), ``T.landmarks`` [n,68,2] (smoothed, in crop pixels, for masks), ``T.fade`` [n]
(float64), ``T.w`` [n,n_latent,512] (W+ with latent_avg added) and ``T.F`` [n,C,16,16] (the
feature tensor), float32: exactly what the direct path computes. The metadata (JSON strings) records the video's fingerprint (size, duration, frame
count, hashes of its first and last MiB), the models (specs and weight hashes), the alignment
size and the noise seed; a cache that does not match the video or the models it is used with is
refused.

Rows are appended to per-tensor temporary files as the video streams (memory stays flat) and
assembled into the final file at the end, written under a temporary name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from bisect import bisect_left
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..faces.face import Face
from ..faces.quad import Quad
from ..files import atomic_output, discard_atomic, writing
from ..video.frame import FrameRecord

FORMAT = "videoinv-latents/1"
FIELDS = ("index", "quad", "landmarks", "fade", "w", "F")


def fingerprint(path: str | os.PathLike, info) -> dict:
    """What identifies a video file cheaply: size, stream facts, hashes of its ends."""
    p = Path(path)
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
        f.seek(max(0, size - (1 << 20)))
        tail = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {"size": size, "head_sha256": head, "tail_sha256": tail, "width": info.width, "height": info.height,
            "frames": info.frame_count, "duration": info.duration}


class LatentCacheWriter:
    """Collects faces' latents frame by frame; ``close()`` writes the file (``abort()`` drops it)."""

    def __init__(self, path: str | os.PathLike, metadata: dict, inputs=(), overwrite: bool = False):
        self.path = Path(path)
        self.metadata = metadata
        self._atomic = atomic_output(path, inputs=inputs, overwrite=overwrite)
        self._tmp = self._atomic.__enter__()
        self._dir = Path(tempfile.mkdtemp(prefix=".vinv-", dir=self.path.parent))
        self._files: dict[tuple[int, str], object] = {}
        self.shapes: dict[tuple[int, str], tuple] = {}
        self.rows: dict[int, int] = {}
        self.first: int | None = None  # the frames the cache covers, faces or not
        self.last: int | None = None

    def add(self, record: FrameRecord) -> None:
        """Every frame of the range, in order (a frame without faces still counts as covered)."""
        self.first = record.index if self.first is None else self.first
        self.last = record.index
        with writing(self.path):
            self._add(record)

    def _add(self, record: FrameRecord) -> None:
        for face in record.faces:
            if "w" not in face.extra:
                continue
            row = {"index": np.array(record.index, np.int64), "quad": face.quad.to_vector().astype(np.float64),
                   "landmarks": np.asarray(face.crop_landmarks, np.float32), "fade": np.array(face.fade, np.float64),
                   "w": face.extra["w"].detach().float().cpu().numpy(), "F": face.extra["F"].detach().float().cpu().numpy()}
            for field, value in row.items():
                key = (face.track_id, field)
                if key not in self._files:
                    self._files[key] = open(self._dir / f"{face.track_id}.{field}", "wb")
                    self.shapes[key] = value.shape
                self._files[key].write(np.ascontiguousarray(value).tobytes())
            self.rows[face.track_id] = self.rows.get(face.track_id, 0) + 1

    def close(self) -> None:
        try:
            with writing(self.path):
                self._write()
        except BaseException as err:  # a full disk, an interrupt: nothing is left behind
            self.abort(err)
            raise
        shutil.rmtree(self._dir, ignore_errors=True)
        self._atomic.__exit__(None, None, None)

    def _write(self) -> None:
        for f in self._files.values():
            f.close()
        header, order, offset = {}, [], 0
        for track in sorted(self.rows):
            for field in FIELDS:
                size = (self._dir / f"{track}.{field}").stat().st_size
                dtype = {"index": "I64", "quad": "F64", "fade": "F64"}.get(field, "F32")
                header[f"{track}.{field}"] = {"dtype": dtype, "shape": [self.rows[track], *self.shapes[(track, field)]],
                                              "data_offsets": [offset, offset + size]}
                order.append(self._dir / f"{track}.{field}")
                offset += size
        covered = {"frames": [self.first, self.last]} if self.first is not None else {}
        header["__metadata__"] = {k: json.dumps(v) for k, v in {**self.metadata, **covered}.items()}
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)
        with open(self._tmp, "wb") as out:
            out.write(struct.pack("<Q", len(blob)))
            out.write(blob)
            for part in order:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)

    def abort(self, err: BaseException | None = None) -> None:
        for f in self._files.values():
            try:
                f.close()
            except OSError:  # its buffer could not be written (a full disk): it is deleted anyway
                pass
        shutil.rmtree(self._dir, ignore_errors=True)
        discard_atomic(self._atomic, err)

    def __enter__(self) -> LatentCacheWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort(exc)


class LatentCache:
    """Read side: ``faces(frame_index)`` gives the cached faces of a frame (latents as tensors)."""

    def __init__(self, path: str | os.PathLike):
        from safetensors import SafetensorError, safe_open

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"latent cache not found: {self.path} (make one with 'videoinv invert')")
        try:
            self._file = safe_open(str(self.path), framework="pt")
            raw = self._file.metadata() or {}
        except (SafetensorError, OSError, ValueError) as err:
            raise InputError(f"{self.path} is not a latent cache: {err}") from None
        self.metadata = {k: json.loads(v) for k, v in raw.items()}
        if self.metadata.get("format") != FORMAT:
            raise InputError(f"{self.path} is not a videoinv latent cache (made with 'videoinv invert')")
        self.tracks = sorted({int(k.split(".")[0]) for k in self._file.keys()})
        self._index = {t: self._file.get_tensor(f"{t}.index").tolist() for t in self.tracks}

    def covers(self, index: int) -> bool:
        """Whether frame ``index`` was in the range inverted (caches made before the range was
        stored: assumed so)."""
        first, last = self.metadata.get("frames", [index, index])
        return first <= index <= last

    def check_video(self, video_print: dict) -> None:
        """Refuse a cache made from another video (checked before any model loads)."""
        if self.metadata.get("fingerprint") != video_print:
            raise InputError(f"{self.path} was made from another video (its fingerprint differs); "
                             f"run 'videoinv invert' on this one")

    def check_models(self, models: dict | None, options: dict) -> None:
        """Refuse a cache made with other models (None: not checked) or alignment."""
        made = self.metadata.get("models", {})
        if models is not None and any(made.get(part) != models.get(part) for part in ("generator", "encoder")):
            # the weights decide; their spec may be spelled otherwise (a file for a registry name)
            if made.get("spec") == models.get("spec"):
                raise InputError(f"{self.path} was made with other weights under the name {made.get('spec')!r} "
                                 f"(replaced since?); invert again with the weights now in place")
            raise InputError(f"{self.path} was made with model {made.get('spec')!r}, "
                             f"not {models.get('spec')!r}; invert again with this model")
        for key, value in options.items():
            if self.metadata.get(key) != value:
                raise InputError(f"{self.path} was made with {key}={self.metadata.get(key)!r}, not {value!r}; "
                                 "invert again with these options")

    def faces(self, index: int, device=None) -> list[Face]:
        out = []
        for track in self.tracks:
            rows = self._index[track]
            i = bisect_left(rows, index)
            if i == len(rows) or rows[i] != index:
                continue
            get = lambda field: self._file.get_slice(f"{track}.{field}")[i]  # noqa: E731
            quad = Quad.from_vector(get("quad").double().numpy())
            landmarks = get("landmarks").numpy()
            face = Face(track, np.zeros(4), landmarks, detected=False, quad=quad, crop_landmarks=landmarks,
                        fade=float(get("fade")))
            face.extra.update(w=get("w").to(device), F=get("F").to(device), crop_size=self.metadata["size"])
            out.append(face)
        return out


def model_info(models) -> dict:
    """How a cache names the models it was made with."""
    from ..models.checkpoints import weights_id

    return {"spec": models.spec, "generator": weights_id(models.G), "encoder": weights_id(models.E)}
