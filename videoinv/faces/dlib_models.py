"""dlib's model files, found in the ``face-recognition-models`` distribution without importing it
(its ``__init__`` needs ``pkg_resources``, which current setuptools no longer ships), loaded once
per process."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from ..errors import VideoinvError

FILES = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "cnn": "mmod_human_face_detector.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
}


@functools.lru_cache(maxsize=None)
def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise VideoinvError("dlib's model files are missing: pip install face-recognition-models")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(kind: str) -> Path:
    path = models_dir() / FILES[kind]
    if not path.is_file():
        raise VideoinvError(f"{path.name} is missing from {path.parent}; reinstall face-recognition-models")
    return path


@functools.lru_cache(maxsize=None)
def hog_detector():
    import dlib

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def cnn_detector():
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_path("cnn")))


@functools.lru_cache(maxsize=None)
def shape_predictor():
    import dlib

    return dlib.shape_predictor(str(model_path("landmarks68")))


@functools.lru_cache(maxsize=None)
def face_descriptor_model():
    import dlib

    return dlib.face_recognition_model_v1(str(model_path("descriptor")))
