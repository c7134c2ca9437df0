"""Per-frame face tracks as JSON, written as the video streams (memory stays bounded).

Layout::

    {"video": "...", "frames": [{"index": 0, "time": 0.0, "faces": [{"id": 0, "box": [...],
      "score": 1.3, "detected": true, "landmarks": [[x, y] x 68], "quad": [[x, y] x 4],
      "fade": 1.0}, ...]}, ...],
     "tracks": {"0": {"first": 0, "last": 119, "frames": 120, "detected": 24}}}
"""

from __future__ import annotations

import json
import os

from ..files import atomic_output
from ..video.frame import FrameRecord


class TrackLog:
    """Use as a context manager; call :meth:`add` for every frame, in order."""

    def __init__(self, path: str | os.PathLike, video: str, inputs=(), overwrite: bool = False):
        self.path, self.video = path, video
        self._atomic = atomic_output(path, inputs=inputs, overwrite=overwrite, example="tracks.json")
        self.tracks: dict[int, dict] = {}
        self._file = None
        self._first = True

    def __enter__(self) -> TrackLog:
        tmp = self._atomic.__enter__()
        self._file = open(tmp, "w")
        self._file.write('{"video": ' + json.dumps(self.video) + ', "frames": [\n')
        return self

    def add(self, record: FrameRecord) -> None:
        entry = {"index": record.index, "time": round(record.time, 6), "faces": [f.to_json() for f in record.faces]}
        self._file.write(("" if self._first else ",\n") + json.dumps(entry, separators=(",", ":")))
        self._first = False
        for face in record.faces:
            t = self.tracks.setdefault(face.track_id, {"first": record.index, "frames": 0, "detected": 0})
            t["last"] = record.index
            t["frames"] += 1
            t["detected"] += int(face.detected)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._file.write('\n], "tracks": ' + json.dumps({str(k): v for k, v in self.tracks.items()}) + "}\n")
        self._file.close()
        self._atomic.__exit__(exc_type, exc, tb)
