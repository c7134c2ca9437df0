"""Multi-face tracking: stable ids, gaps bridged, scene cuts, faces that cross.

Detection runs every ``every`` frames, and at once whenever a track is unsure. In between, each
track is followed by re-estimating its 68 landmarks in the box predicted from its last position
and velocity; an estimate is accepted only if it lands where the track was expected (box overlap
and size) and still looks like the track's face (normalised correlation of a small aligned patch
against the one taken at its last detection). When two tracks claim the same face (one face
passing in front of another), the face goes to the track whose prediction fits it best and the
other coasts on its velocity until it reappears, so ids do not swap. A track unseen for more than
``max_gap`` frames ends. A scene cut (consecutive frames whose normalised thumbnails correlate
below ``cut``) ends every track.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..video.frame import as_picture, placed
from .detect import Detection, landmark_box, landmarks68
from .face import Face

EYE_L, EYE_R = slice(36, 42), slice(42, 48)
PATCH = 32


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def face_patch(picture, landmarks: np.ndarray) -> np.ndarray:
    """A 32x32 grey patch of the face, aligned by eyes and mouth, zero mean and unit norm.
    ``picture``: a FrameRecord (only the part the patch covers is read) or an RGB array."""
    picture = as_picture(picture)
    eye_l, eye_r = landmarks[EYE_L].mean(0), landmarks[EYE_R].mean(0)
    mouth = (landmarks[48] + landmarks[54]) / 2
    src = np.float32([eye_l, eye_r, mouth])
    dst = np.float32([[9, 11], [23, 11], [16, 25]])
    to_frame = cv2.getAffineTransform(dst, src)  # the patch's corners in the frame, and 2 pixels more
    corners = np.array([[0, 0, 1], [PATCH, 0, 1], [0, PATCH, 1], [PATCH, PATCH, 1]], np.float64) @ to_frame.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 3
    w, h = picture.size
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((PATCH, PATCH), np.float32)
    box = (x0, y0, x1, y1)
    with placed(cv2.cvtColor(np.ascontiguousarray(picture.region(box)), cv2.COLOR_RGB2GRAY), box, (w, h)) as gray:
        patch = cv2.warpAffine(gray, cv2.getAffineTransform(src, dst), (PATCH, PATCH), flags=cv2.INTER_AREA,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    patch -= patch.mean()
    norm = float(np.linalg.norm(patch))
    return patch / norm if norm > 1e-6 else patch


@dataclass
class Track:
    id: int
    landmarks: np.ndarray
    box: np.ndarray  # detector-convention box at the last observation
    template: np.ndarray
    box_from_landmarks: np.ndarray  # detection box relative to the landmark box (offsets / size)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    missed: int = 0
    age: int = 0
    area: float = 0.0  # running mean of the box area (for "largest")
    descriptor: np.ndarray | None = None

    def predicted_box(self) -> np.ndarray:
        return self.box + np.tile(self.velocity * (1 + self.missed), 2)

    def observe(self, landmarks: np.ndarray, box: np.ndarray, crowded: bool = False) -> None:
        """A new position. ``crowded``: another face overlaps this one, so its landmarks may be
        pulled off; keep the velocity it had (faces crossing keep their course)."""
        if not crowded:
            shift = landmarks.mean(0) - self.landmarks.mean(0)
            self.velocity = 0.5 * self.velocity + 0.5 * shift / (1 + self.missed)
        self.landmarks, self.box, self.missed = landmarks, box, 0
        self.age += 1
        area = (box[2] - box[0]) * (box[3] - box[1])
        self.area = area if self.age == 1 else 0.9 * self.area + 0.1 * area

    def box_for(self, landmarks: np.ndarray) -> np.ndarray:
        """A detector-style box for a landmark set, by this track's detection-to-landmark relation."""
        lb = landmark_box(landmarks)
        size = lb[2:] - lb[:2]
        return np.concatenate([lb[:2] + self.box_from_landmarks[:2] * size, lb[2:] + self.box_from_landmarks[2:] * size])


def _relation(det_box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    lb = landmark_box(landmarks)
    size = np.maximum(lb[2:] - lb[:2], 1.0)
    return np.concatenate([(det_box[:2] - lb[:2]) / size, (det_box[2:] - lb[2:]) / size])


def _plausible(box: np.ndarray, width: int, height: int, min_size: float = 12.0) -> bool:
    """A finite box of a sensible size that overlaps the frame."""
    if not np.isfinite(box).all():
        return False
    bw, bh = box[2] - box[0], box[3] - box[1]
    return (min_size <= bw <= 4 * width and min_size <= bh <= 4 * height
            and box[2] > 0 and box[3] > 0 and box[0] < width and box[1] < height)


class SceneCuts:
    """Says whether a frame starts a new shot (its thumbnail no longer correlates with the last)."""

    def __init__(self, threshold: float = 0.4):
        self.threshold = threshold
        self.last: np.ndarray | None = None

    SIZE = (64, 36)

    def __call__(self, thumbnail: np.ndarray) -> bool:
        """``thumbnail``: the frame's grey ``SIZE`` thumbnail (``FrameRecord.thumbnail``)."""
        thumb = thumbnail.astype(np.float32).ravel()
        thumb -= thumb.mean()
        thumb /= max(float(np.linalg.norm(thumb)), 1e-6)
        cut = self.last is not None and float(thumb @ self.last) < self.threshold
        self.last = thumb
        return cut


class FaceTracker:
    """Feed frames in order with :meth:`update`; get the faces seen in each, with track ids."""

    def __init__(self, detector, every: int = 5, max_gap: int = 30, min_iou: float = 0.1,
                 min_similarity: float = 0.5, cut: float = 0.4):
        self.detector = detector
        self.every, self.max_gap, self.min_iou, self.min_similarity = max(1, every), max_gap, min_iou, min_similarity
        self.cuts = SceneCuts(cut)
        self.tracks: list[Track] = []
        self.ended: list[Track] = []
        self.next_id = 0
        self.last_detection: int | None = None
        self.detections_run = 0

    # -- one frame ---------------------------------------------------------------------------
    def update(self, picture, index: int) -> list[Face]:
        """``picture``: the frame, a FrameRecord (between detections the tracker reads only the
        faces' surroundings and a thumbnail of it) or an RGB array."""
        picture = as_picture(picture)
        if self.cuts(picture.thumbnail(SceneCuts.SIZE)):
            self._end_all()
        due = self.last_detection is None or index - self.last_detection >= self.every
        followed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if not due:
            for track in self.tracks:
                if track.missed:  # hidden or lost: wait for the next regular detection
                    continue
                seen = self._follow(picture, track)
                if seen is None:
                    due = True  # unsure: look properly
                    break
                followed[track.id] = seen
        faces: list[Face] = []
        if due:
            followed = {}
            self.last_detection = index
            self.detections_run += 1
            faces = self._with_detections(picture, self.detector.detect(picture.image))
        else:
            self._resolve_collisions(followed)
            for track in self.tracks:
                if track.id in followed:
                    landmarks, box = followed[track.id]
                    track.observe(landmarks, box, crowded=self._crowded(track, box))
                    faces.append(Face(track.id, box, landmarks, float("nan"), detected=False))
                else:
                    track.missed += 1
        self._retire()
        return faces

    def _follow(self, picture, track: Track) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmarks re-estimated in the predicted box, if they still fit the track."""
        predicted = track.predicted_box()
        w, h = picture.size
        if predicted[2] <= 0 or predicted[3] <= 0 or predicted[0] >= w or predicted[1] >= h:
            return None
        landmarks = landmarks68(picture, predicted)
        box = track.box_for(landmarks)
        size_ratio = (box[2] - box[0]) / max(predicted[2] - predicted[0], 1.0)
        if iou(box, predicted) < 0.5 or not 0.8 < size_ratio < 1.25:
            return None
        if float((face_patch(picture, landmarks) * track.template).sum()) < self.min_similarity:
            return None
        return landmarks, box

    def _with_detections(self, picture, detections: list[Detection]) -> list[Face]:
        w, h = picture.size
        detections = [d for d in detections if _plausible(d.box, w, h)]
        tracks = self.tracks
        matched: dict[int, Detection] = {}
        if tracks and detections:
            cost = np.array([[1.0 - iou(t.predicted_box(), d.box) for d in detections] for t in tracks])
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if 1.0 - cost[r, c] >= self.min_iou:
                    matched[tracks[r].id] = detections[c]
        used = {id(d) for d in matched.values()}
        faces = []
        for track in tracks:
            det = matched.get(track.id)
            if det is not None:
                landmarks = landmarks68(picture, det.box)
                track.template = face_patch(picture, landmarks)
                track.box_from_landmarks = _relation(det.box, landmarks)
                track.observe(landmarks, det.box, crowded=self._crowded(track, det.box))
                faces.append(Face(track.id, det.box, landmarks, det.score, detected=True))
                continue
            seen = self._follow(picture, track)  # the detector missed it (turned, blurred...)
            if seen is not None and not any(iou(seen[1], d.box) > 0.3 for d in matched.values()):
                track.observe(*seen, crowded=self._crowded(track, seen[1]))
                faces.append(Face(track.id, seen[1], seen[0], float("nan"), detected=False))
            else:
                track.missed += 1
        for det in detections:
            if id(det) in used or any(iou(det.box, f.box) > 0.3 for f in faces):
                continue
            landmarks = landmarks68(picture, det.box)
            if not _plausible(landmark_box(landmarks), w, h):
                continue
            track = Track(self.next_id, landmarks, det.box, face_patch(picture, landmarks), _relation(det.box, landmarks))
            track.observe(landmarks, det.box)
            self.next_id += 1
            self.tracks.append(track)
            faces.append(Face(track.id, det.box, landmarks, det.score, detected=True))
        return sorted(faces, key=lambda f: f.track_id)

    def _crowded(self, track: Track, box: np.ndarray) -> bool:
        return any(other is not track and iou(box, other.predicted_box()) > 0.05 for other in self.tracks)

    def _resolve_collisions(self, followed: dict) -> None:
        """Two tracks on one face: the face goes to the track that predicted it best."""
        by_id = {t.id: t for t in self.tracks}
        ids = sorted(followed)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                if a not in followed or b not in followed:
                    continue
                if iou(followed[a][1], followed[b][1]) > 0.5:
                    fit_a = iou(by_id[a].predicted_box(), followed[a][1])
                    fit_b = iou(by_id[b].predicted_box(), followed[b][1])
                    del followed[b if fit_a >= fit_b else a]

    def _retire(self) -> None:
        alive = []
        for track in self.tracks:
            (alive if track.missed <= self.max_gap else self.ended).append(track)
        self.tracks = alive

    def _end_all(self) -> None:
        self.ended.extend(self.tracks)
        self.tracks = []
        self.last_detection = None
