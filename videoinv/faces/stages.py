"""The face stages of the chain: ``detect`` (detection + tracking + selection), ``align``
(smoothed FFHQ quads, crops, crop-space landmarks, fades), ``blend`` (paste edited crops back
through segment masks) and ``annotate`` (draw what was found, for ``videoinv inspect``)."""

from __future__ import annotations

import bisect
import logging
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import ChainError, VideoinvError
from ..pipeline.stage import Param, Stage, parse_bool
from ..video.frame import FrameRecord
from .detect import face_descriptor, landmarks68
from .face import Face
from .masks import SEGMENTS, MaskSpec, build_mask
from .paste import paste_region
from .quad import Quad, crop, frame_roi, quad_from_landmarks, transform_points
from .smooth import TrackSignals
from .track import FaceTracker

log = logging.getLogger(__name__)


def _smooth_mode(text: str):
    if text in ("stream", "offline", "none"):
        return text
    value = float(text)
    if value < 0:
        raise ValueError("a smoothing strength must be >= 0")
    return value


def _segments(text: str) -> str:
    if text not in SEGMENTS:
        raise ValueError(f"valid segments: {', '.join(SEGMENTS)}")
    return text


class Detect(Stage):
    """Find and track every face: dlib HOG (or another detector) every N frames, landmarks always."""

    name = "detect"
    gives = ("faces",)
    reads_parts = True
    params = (
        Param("every", int, 5, "run the detector every N frames (and whenever tracking is unsure)", low=1),
        Param("model", str, "hog", "detector: hog, cnn, or a plugin's (retinaface)"),
        Param("size", int, 640, "detect on a copy scaled to this longer side", low=32),
        Param("upsample", int, 0, "dlib upsampling (1 finds faces down to ~30 px, 4x slower)", low=0),
        Param("threshold", float, None, "minimum detector score (default: the detector's own, "
              "0.3 for dlib's, 0.8 for RetinaFace)"),
        Param("max_gap", int, 30, "frames a hidden or lost face is waited for before its track ends", low=0),
        Param("cut", float, 0.4, "scene-cut threshold (thumbnail correlation; -1: no cuts)", low=-1, high=1),
        Param("select", str, "all", "faces to keep: all or largest", choices=("all", "largest")),
        Param("ids", int, None, "keep only these track ids (e.g. ids=0+2)", multiple=True, low=0),
        Param("ref", str, None, "keep the face most like the one in this image (dlib descriptor)"),
        Param("workers", int, 0, "worker processes detecting ahead of the tracker (dlib detectors; "
              "0: detect in the stage's own thread)", low=0),
    )

    def __init__(self, every, model, size, upsample, threshold, max_gap, cut, select, ids, ref, workers):
        from ..registry import default_registry
        from .pool import DetectionAhead

        detector_cls = default_registry().get("detector", model)
        score = {} if threshold is None else {"threshold": threshold}
        self.detector = detector_cls(detect_size=size, upsample=upsample, **score)
        self.every = max(1, every)
        self.pool = None
        if workers > 0 and DetectionAhead.supports(self.detector):
            self.pool = DetectionAhead(self.detector, workers)
        elif workers > 0:
            log.info("detect: %s runs in the stage's thread (workers= is for dlib detectors)", model)
        self.tracker = FaceTracker(self.pool or self.detector, every=every, max_gap=max_gap, cut=cut)
        self.select, self.ids = select, set(ids) if ids else None
        self.reference = _reference_descriptor(ref) if ref else None
        self._chosen: int | None = None  # the "largest" track being followed
        self._descriptors: dict[int, list[np.ndarray]] = {}
        self._recording: dict[int, list[Face]] | None = None
        self._replay: dict[int, list[Face]] | None = None

    def ahead(self, batch: list[FrameRecord]) -> None:
        """Send the frames the tracker will detect on, if its schedule holds, to the pool."""
        if self.pool is None or self._replay is not None:
            return
        last = self.tracker.last_detection
        for record in batch:
            if last is None:
                last = record.index
            if (record.index - last) % self.every == 0:
                self.pool.schedule(record.index, record.image)

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        for record in batch:
            if self._replay is not None:
                record.faces = [_fresh(f) for f in self._replay.get(record.index, [])]
                continue
            if self.pool is not None:
                self.pool.at(record.index)
            faces = self._choose(record, self.tracker.update(record, record.index))
            if self._recording is not None:
                self._recording[record.index] = [_fresh(f) for f in faces]
            record.faces = faces
        return batch

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def begin_prepass(self) -> None:
        self._recording = {}

    def end_prepass(self) -> None:
        self._replay, self._recording = self._recording, None

    def _choose(self, record: FrameRecord, faces: list[Face]) -> list[Face]:
        if self.ids is not None:
            faces = [f for f in faces if f.track_id in self.ids]
        if self.reference is not None:
            faces = self._like_reference(record, faces)
        if self.select == "largest" and faces:
            alive = {f.track_id for f in faces}
            if self._chosen not in alive:
                areas = {t.id: t.area for t in self.tracker.tracks}
                self._chosen = max(alive, key=lambda i: areas.get(i, 0.0))
            faces = [f for f in faces if f.track_id == self._chosen]
        return faces

    def _like_reference(self, record: FrameRecord, faces: list[Face]) -> list[Face]:
        for face in faces:  # a few descriptors per track, taken on detection frames
            samples = self._descriptors.setdefault(face.track_id, [])
            if face.detected and len(samples) < 3:
                samples.append(face_descriptor(np.ascontiguousarray(record.image), face.landmarks))
        distance = {f.track_id: float(np.linalg.norm(np.mean(self._descriptors[f.track_id], 0) - self.reference))
                    for f in faces if self._descriptors.get(f.track_id)}
        matching = {i: d for i, d in distance.items() if d < 0.6}
        if not matching:
            return []
        best = min(matching, key=matching.get)
        return [f for f in faces if f.track_id == best]


def _fresh(face: Face) -> Face:
    return Face(face.track_id, face.box, face.landmarks, face.score, face.detected)


def _reference_descriptor(path: str) -> np.ndarray:
    import cv2

    if not Path(path).is_file():  # checked here: OpenCV printed its own warning before our error
        raise VideoinvError(f"reference image not found: {path} (detect=ref= takes a photo of the face to keep)")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise VideoinvError(f"cannot read the reference image {path}: not a picture OpenCV can open (JPEG, PNG, WebP ...)")
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    from .detect import HogDetector

    # found on a copy at most 1024 pixels across (a 12-megapixel phone photo took 6-8 s at its own
    # size, for a face that is large in it); the landmarks and descriptor use the photo itself
    found = HogDetector(detect_size=1024, upsample=1, threshold=0.0).detect(rgb)
    if not found:
        raise VideoinvError(f"no face found in the reference image {path}; use a clear, frontal photo")
    best = max(found, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    return face_descriptor(rgb, landmarks68(rgb, best.box))


class Align(Stage):
    """FFHQ-align every face: smoothed quads (streaming look-ahead or offline), crops, fades."""

    name = "align"
    needs, gives = ("faces",), ("quads",)
    reads_parts = True
    params = (
        Param("size", int, 1024, "crop size (the generator's resolution: the chain's model's where it "
              "names one)", low=16),
        Param("smooth", _smooth_mode, "stream", "stream (look-ahead), offline (two passes), none, or a "
              "strength N: stream with sigmas N/3 (centre) and N (size, rotation); 3 is the default",
              kind="stream|offline|none|N"),
        Param("lookahead", int, 8, "frames of look-ahead in stream mode (the latency)", low=0),
        Param("sigma", float, 1.0, "smoothing of the quad centre, frames (Gaussian sigma)", low=0),
        Param("sigma_axes", float, 3.0, "smoothing of the quad size and rotation, frames", low=0),
        Param("sigma_landmarks", float, 1.5, "smoothing of the landmarks (for masks), frames", low=0),
        Param("fade", int, 5, "frames over which a face fades in/out where its track starts/ends", low=0),
        Param("crops", parse_bool, True, "make the aligned crops (off: quads and landmarks only)"),
        Param("scale", float, 1.0, "quad size factor (1.0 = FFHQ)", above=0),
    )

    GAP = 3  # missing frames that do not count as a track ending

    @classmethod
    def follow(cls, options: dict, given: set, shared: dict) -> None:
        if "size" not in given and "model" in shared:  # crops at the size the model works at
            from ..models.specs import model_size

            options["size"] = model_size(shared["model"], shared.get("device", "auto"))

    def __init__(self, size, smooth, lookahead, sigma, sigma_axes, sigma_landmarks, fade, crops, scale):
        if size < 16:
            raise ChainError("align size must be at least 16")
        if isinstance(smooth, float):  # a strength
            sigma, sigma_axes, sigma_landmarks, smooth = smooth / 3, smooth, smooth / 2, "stream"
        self.size, self.mode, self.fade, self.crops, self.scale = size, smooth, max(1, fade), crops, scale
        self.lookahead = max(lookahead, fade + self.GAP) if smooth == "stream" else 0
        if smooth == "none":
            sigma = sigma_axes = sigma_landmarks = 0.0
        groups = [(slice(0, 2), sigma), (slice(2, 6), sigma_axes), (slice(6, 142), sigma_landmarks)]
        self.signals = TrackSignals(groups, None if smooth == "offline" else self.lookahead,
                                    keep=self.fade + self.GAP + 1)
        self.needs_prepass = smooth == "offline"
        self.pending: deque[FrameRecord] = deque()
        self.first_frame: int | None = None  # of the video (for fades: present from the start)
        self.latest: int | None = None
        self.video_last: int | None = None  # known at the end (or after the pre-pass)
        self._observed = False

    def _add(self, record: FrameRecord) -> None:
        t = record.index
        self.first_frame = t if self.first_frame is None else self.first_frame
        self.latest = t
        for face in record.faces:
            quad = quad_from_landmarks(face.landmarks, self.scale)
            self.signals.add(face.track_id, t, np.concatenate([quad.to_vector(), face.landmarks.ravel()]))

    def observe(self, batch: list[FrameRecord]) -> None:
        for record in batch:
            self._add(record)

    def observed(self) -> None:
        self._observed = True
        self.video_last = self.latest

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        if self._observed:  # offline: every sample is known already
            return [self._finish(record, horizon=None) for record in batch]
        for record in batch:
            self._add(record)
            self.pending.append(record)
        out = []
        while self.pending and self.pending[0].index <= self.latest - self.lookahead:
            out.append(self._finish(self.pending.popleft(), horizon=self.latest))
        if out:
            self.signals.forget_before(out[-1].index + 1)
        return out

    def flush(self) -> list[FrameRecord]:
        self.video_last = self.latest
        out = [self._finish(r, horizon=None) for r in self.pending]
        self.pending.clear()
        return out

    def _finish(self, record: FrameRecord, horizon: int | None) -> FrameRecord:
        """Smoothed quad, crop-space landmarks, crop and fade for each face of ``record``."""
        t = record.index
        for face in record.faces:
            v = self.signals.smoothed(face.track_id, t)
            quad = Quad.from_vector(v[:6])
            landmarks = v[6:].reshape(68, 2)
            face.quad = quad
            face.crop_landmarks = transform_points(landmarks, quad.frame_to_crop(self.size)).astype(np.float32)
            face.fade = self._fade(face.track_id, t, horizon)
            face.extra["crop_size"] = self.size
            if self.crops:
                face.crop = crop(record, quad, self.size)
        return record

    def _fade(self, track: int, t: int, horizon: int | None) -> float:
        """Ramps over ``fade`` frames where a face appears or disappears within the video (not
        where the video itself starts or ends); gaps of up to GAP frames do not count."""
        times = self.signals.times[track]
        start, end = _stretch(times, t, self.GAP)
        fade_in = 1.0 if start == self.first_frame else min(1.0, (t - start + 1) / self.fade)
        if horizon is not None and end + self.GAP + 1 > horizon:
            fade_out = 1.0  # it may go on beyond what has been seen
        elif end == self.video_last:
            fade_out = 1.0
        else:
            fade_out = min(1.0, (end - t + 1) / self.fade)
        return float(min(fade_in, fade_out))


def _stretch(times: list[int], t: int, gap: int) -> tuple[int, int]:
    """First and last sample of the run (gaps of up to ``gap`` frames allowed) containing t."""
    i = j = bisect.bisect_left(times, t)
    while i > 0 and times[i] - times[i - 1] <= gap + 1:
        i -= 1
    while j + 1 < len(times) and times[j + 1] - times[j] <= gap + 1:
        j += 1
    return times[i], times[j]


class Blend(Stage):
    """Paste edited faces back through segment masks (alpha or Laplacian, optional colour match)."""

    name = "blend"
    needs = ("renders",)
    reads_parts = True
    params = (
        Param("segments", _segments, ["face"], "segments to paste: " + ", ".join(SEGMENTS), multiple=True,
              kind="segment"),
        Param("exclude", _segments, [], "segments to keep from the source", multiple=True, kind="segment"),
        Param("dilate", float, 8.0, "dilation, pixels at a 1024 crop", low=0),
        Param("eye_factor", float, 4.0, "how much more the eyes dilate", low=0),
        Param("feather", float, 15.0, "soft edge, pixels at a 1024 crop", low=0),
        Param("forehead", float, 1.0, "how far the forehead segment reaches above the brows", low=0),
        Param("mode", str, "alpha", "alpha or laplacian", choices=("alpha", "laplacian")),
        Param("colour", parse_bool, False, "match the pasted face's colour to the frame"),
        Param("source", str, "landmarks", "where masks come from: landmarks, or a parser plugin (bisenet)"),
    )

    def __init__(self, segments, exclude, dilate, eye_factor, feather, forehead, mode, colour, source):
        try:
            self.spec = MaskSpec(tuple(segments), tuple(exclude), dilate, eye_factor, feather, forehead)
        except ValueError as err:
            raise ChainError(f"blend: {err}") from None
        self.mode, self.colour = mode, colour
        self.parser = None
        if source != "landmarks":
            from ..registry import default_registry

            self.parser = default_registry().get("parser", source)()

    def mask_for(self, face: Face, record: FrameRecord | None = None) -> np.ndarray:
        """The mask at the size of the crop that is pasted (the edited one)."""
        size = face.edited.shape[-1] if _on_device(face.edited) else face.edited.shape[0]
        landmarks = face.crop_landmarks * (size / face.extra.get("crop_size", size))
        segments = None
        if self.parser is not None:
            if face.crop is None and record is not None:  # aligned on the GPU: the parser wants a crop here
                face.crop = crop(record, face.quad, face.extra.get("crop_size", size))
            segments = self.parser.segments(face.crop, size)
        return build_mask(landmarks, size, self.spec, segments)

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        downloads = []
        for record in batch:
            faces = [f for f in record.faces if f.edited is not None and f.quad is not None]
            if faces and self.mode == "alpha" and not self.colour and all(_on_device(f.edited) for f in faces):
                downloads.append((record, self._paste_on_device(record, faces)))
                continue
            for face in faces:
                if _on_device(face.edited):
                    face.edited = face.edited.permute(1, 2, 0).cpu().byte().numpy()
                face.mask = self.mask_for(face, record)
                pasted = paste_region(record, face.edited, face.mask, face.quad, self.mode, self.colour,
                                      strength=face.fade)
                if pasted is not None:
                    record.patch_region(*pasted)  # the writer converts only these rectangles from RGB
            record.device_image = None
        for record, download in downloads:  # the copies ran while later frames were pasted
            image = download.result()
            record.patch(image, [frame_roi(f.quad, image.shape) for f in record.faces
                                 if f.edited is not None and f.quad is not None])
        return batch

    def _paste_on_device(self, record: FrameRecord, faces: list[Face]):
        from ..pipeline.transfer import GPU_CLOCK, transfer_for
        from .warp import paste_tensor

        frame = record.device_image
        transfer = transfer_for(frame.device)
        with GPU_CLOCK.span(frame.device):
            for face in faces:
                face.mask = self.mask_for(face, record)
                mask = transfer.send(np.asarray(face.mask, np.float32)).to(face.edited.dtype)
                frame = paste_tensor(frame, face.edited, mask, face.quad, strength=face.fade)
        record.device_image = None
        return transfer.download(frame)


def _on_device(image) -> bool:
    """A torch tensor (an edited crop kept on the model's device), not a numpy array."""
    return type(image).__module__.startswith("torch")


class Annotate(Stage):
    """Draw track ids, boxes, landmarks, smoothed quads and mask outlines (videoinv inspect)."""

    name = "annotate"
    needs = ("faces",)
    params = (
        Param("segments", _segments, ["face"], "mask outlines to draw", multiple=True, kind="segment"),
        Param("masks", parse_bool, True, "draw mask outlines"),
    )

    def __init__(self, segments, masks):
        self.spec = MaskSpec(tuple(segments))
        self.masks = masks

    def process(self, batch: list[FrameRecord]) -> list[FrameRecord]:
        from .draw import draw_faces

        for record in batch:
            if record.faces:
                record.image = draw_faces(record.image, record.faces, self.spec if self.masks else None)
        return batch


def register(registry) -> None:
    from . import detect

    detect.register(registry)
    for stage in (Detect, Align, Blend, Annotate):
        registry.add_stage(stage)
