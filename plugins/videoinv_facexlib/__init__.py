"""RetinaFace detection and BiSeNet face parsing with facexlib's weight files (our own code).

* ``detect=model=retinaface`` (ResNet-50) or ``detect=model=retinaface-mobile`` (MobileNet-0.25):
  boxes and five points, turned into the box convention dlib's 68-point landmarker expects.
* ``blend=source=bisenet``: segment masks from a 19-class parse of the aligned crop instead of
  from the landmarks.

The weights are the registry's ``retinaface-resnet50``, ``retinaface-mobilenet`` and
``bisenet-parsing`` files (``videoinv weights fetch/import NAME``); nothing is downloaded here. A
missing file is a one-line error saying how to get it. Models run on CUDA when available.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

BISENET_CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
                   "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
# our segments from the 19 classes (zllrunning / facexlib BiSeNet order)
SEGMENT_CLASSES = {"skin": (1,), "brows": (2, 3), "eyes": (4, 5, 6), "nose": (10,), "mouth": (11, 12, 13),
                   "lips": (12, 13), "face": (1, 2, 3, 4, 5, 6, 10, 11, 12, 13)}


def register(registry) -> None:
    registry.add("detector", "retinaface", RetinaFaceDetector)
    registry.add("detector", "retinaface-mobile", MobileRetinaFaceDetector)
    registry.add("parser", "bisenet", BiSeNetParser)


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class OwnStream:
    """On CUDA, a stream of a model's own per thread: ``with stream():`` runs its work there, so a
    detector or parser working in a pipeline stage overlaps the edit's models instead of
    queueing behind them, and reading its results back waits for its own work only (a copy on
    the shared default stream waits for everything queued there). Elsewhere it does nothing."""

    def __init__(self):
        self._local = threading.local()

    def __call__(self):
        import torch

        if _device().type != "cuda":
            return contextlib.nullcontext()
        stream = getattr(self._local, "stream", None)
        if stream is None:
            stream = self._local.stream = torch.cuda.Stream()
        return torch.cuda.stream(stream)


def load_weights(module, name: str):
    """Strictly load the registry file ``name`` into ``module`` (a DataParallel ``module.``
    prefix is dropped); eval mode, on the best device."""
    from videoinv.models.checkpoints import CheckpointError, read_file
    from videoinv.models.weights import require

    path = require(name)
    state = read_file(path)
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        problems = "; ".join(line.strip() for line in str(err).splitlines()[1:3])
        raise CheckpointError(f"{path} does not fit {type(module).__name__}: {problems}") from None
    return module.eval().requires_grad_(False).to(_device())


@functools.lru_cache(maxsize=None)
def _retinaface(backbone: str, weights: str):
    from .nets import RetinaFace

    return load_weights(RetinaFace(backbone), weights)


@functools.lru_cache(maxsize=None)
def _bisenet():
    from .nets import BiSeNet

    return load_weights(BiSeNet(19), "bisenet-parsing")


class RetinaFaceDetector:
    """RetinaFace on a copy of the frame scaled to ``detect_size``; ``threshold`` on its face
    probability (facexlib's default is 0.8). ``upsample`` > 0 doubles the scale that many times."""

    name = "retinaface"
    backbone, weights = "resnet50", "retinaface-resnet50"

    def __init__(self, detect_size: int = 640, upsample: int = 0, threshold: float = 0.8, nms: float = 0.4):
        self.detect_size, self.upsample, self.threshold, self.nms = detect_size, upsample, threshold, nms
        self.net = _retinaface(self.backbone, self.weights)
        self._stream = OwnStream()

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes [N,4], scores [N], five points [N,5,2], in frame pixels."""
        import cv2
        import torch

        from .nets import MEAN_BGR, decode, nms, priors

        h, w = image.shape[:2]
        scale = min(1.0, self.detect_size / max(h, w)) * 2 ** self.upsample
        small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) \
            if scale != 1 else image
        x = torch.from_numpy(np.ascontiguousarray(small[:, :, ::-1], np.float32) - np.float32(MEAN_BGR))
        with torch.no_grad(), self._stream():  # .cpu() waits for this stream only
            loc, conf, landm = self.net(x.permute(2, 0, 1)[None].to(_device()))
            loc, landm, scores = loc[0].float().cpu(), landm[0].float().cpu(), conf[0, :, 1].float().cpu()
        sh, sw = small.shape[:2]
        boxes, points = decode(loc, landm, priors(sh, sw))
        keep = scores > self.threshold
        boxes, points, scores = boxes[keep], points[keep], scores[keep]
        order = nms(boxes, scores, self.nms)
        size = torch.tensor([sw, sh], dtype=torch.float32)
        boxes = (boxes[order].view(-1, 2, 2) * size / scale).view(-1, 4)
        points = points[order].view(-1, 5, 2) * size / scale
        return boxes.numpy(), scores[order].numpy(), points.numpy()

    def detect(self, image: np.ndarray) -> list:
        from videoinv.faces.detect import Detection

        boxes, scores, points = self.run(image)
        return [Detection(landmarker_box(p), float(s)) for p, s in zip(points, scores)]


class MobileRetinaFaceDetector(RetinaFaceDetector):
    name = "retinaface-mobile"
    backbone, weights = "mobilenet0.25", "retinaface-mobilenet"


def landmarker_box(points: np.ndarray) -> np.ndarray:
    """A dlib-HOG-style box from RetinaFace's five points (eyes, nose, mouth corners): centred
    between the eye and mouth centres, 2.4 eye distances wide, as HOG boxes are on frontal faces."""
    eyes = (points[0] + points[1]) / 2
    mouth = (points[3] + points[4]) / 2
    centre = (eyes + mouth) / 2
    half = 1.2 * max(np.hypot(*(points[1] - points[0])), 0.8 * np.hypot(*(mouth - eyes)))
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half], np.float64)


class BiSeNetParser:
    """Segments of an aligned crop from BiSeNet's 19-class parse (at 512x512, ImageNet
    normalisation, as its training)."""

    name = "bisenet"

    def __init__(self):
        self.net = _bisenet()
        self._stream = OwnStream()

    def labels(self, crop: np.ndarray) -> np.ndarray:
        """Class index per pixel [512,512] (uint8) of an RGB crop."""
        import cv2
        import torch

        x = cv2.resize(crop, (512, 512), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
        x = (x - np.float32([0.485, 0.456, 0.406])) / np.float32([0.229, 0.224, 0.225])
        with torch.no_grad(), self._stream():  # the copies wait for this stream only
            logits = self.net(torch.from_numpy(x).permute(2, 0, 1)[None].to(_device()))
            return logits[0].argmax(0).to(torch.uint8).cpu().numpy()

    def segments(self, crop: np.ndarray, size: int) -> dict[str, np.ndarray]:
        """uint8 masks (0/255) at min(size, 512), keyed like videoinv.faces.masks.SEGMENTS; the
        forehead is the skin above the top of the brows."""
        import cv2

        from videoinv.faces.masks import DRAW_MAX

        d = min(size, DRAW_MAX)
        labels = cv2.resize(self.labels(crop), (d, d), interpolation=cv2.INTER_NEAREST)
        out = {name: np.isin(labels, classes).astype(np.uint8) * 255 for name, classes in SEGMENT_CLASSES.items()}
        rows = np.nonzero(out["brows"].any(axis=1))[0]
        forehead = np.zeros_like(out["skin"])
        if len(rows):
            forehead[:rows[0]] = out["skin"][:rows[0]]
        out["forehead"] = forehead
        return out
