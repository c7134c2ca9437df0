"""Detection and tracking on real clips of a real face (scikit-image's astronaut), made with PyAV."""

from __future__ import annotations

import numpy as np
import pytest

from videoinv import samples
from videoinv.cli import main
from videoinv.faces.detect import HogDetector, landmarks68
from videoinv.faces.dlib_models import models_dir
from videoinv.pipeline.runner import Pipeline
from videoinv.video.reader import Reader

from conftest import read_all


@pytest.fixture(scope="session")
def face_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    made = {}
    for name, scene, frames, lossless in [("moving", samples.moving_face(), 120, False),
                                          ("crossing", samples.crossing_faces(), 90, False),
                                          ("leaving", samples.leaving_face(), 120, False),
                                          ("cut", samples.cut_scene(), 60, False),
                                          ("noface", samples.no_face(), 30, True)]:
        path = root / (name + (".mkv" if lossless else ".mp4"))
        samples.write_clip(path, scene, frames, lossless=lossless, audio=not lossless)
        made[name] = (path, scene)
    return made


def tracked(path, chain="detect", **reader):
    pipeline = Pipeline(chain, batch_size=4)
    with Reader(path, **reader) as r:
        return list(pipeline.run(r))


def identities(records, scene) -> dict[int, set[int]]:
    """track id -> the true faces (scene indices) it was on, by the nearest true eye centre."""
    seen: dict[int, set[int]] = {}
    for record in records:
        for face in record.faces:
            centre = face.landmarks[36:48].mean(0)
            dist = [np.linalg.norm(centre - scene.true_landmarks(k, record.index)[36:48].mean(0))
                    for k in range(len(scene.motions))]
            assert min(dist) < 25, f"frame {record.index}: a face where there is none"
            seen.setdefault(face.track_id, set()).add(int(np.argmin(dist)))
    return seen


def test_dlib_models_are_found_without_importing_the_package():
    import sys

    assert (models_dir() / "shape_predictor_68_face_landmarks.dat").is_file()
    assert "face_recognition_models" not in sys.modules


def test_detector_score_threshold_drops_the_suit_patch():
    from skimage import data

    astronaut = data.astronaut()
    weak = HogDetector(detect_size=512, upsample=1, threshold=-1.0).detect(astronaut)
    strong = HogDetector(detect_size=512, upsample=1).detect(astronaut)
    assert len(weak) >= 2 and len(strong) == 1  # the mission patch scores far below the face
    box = strong[0].box
    assert box[0] < 220 < box[2] and box[1] < 121 < box[3]
    lm = landmarks68(astronaut, box)
    assert 190 < lm[36:48, 0].mean() < 250


def test_one_track_follows_the_moving_face_accurately(face_clips):
    path, scene = face_clips["moving"]
    records = tracked(path)
    assert len(records) == 120 and all(len(r.faces) == 1 for r in records)
    assert identities(records, scene) == {0: {0}}
    errors = [np.abs(r.faces[0].landmarks - scene.true_landmarks(0, r.index)).mean() for r in records]
    assert np.mean(errors) < 1.5  # px, with +-20 degree roll, scale and brightness changes
    detected = sum(r.faces[0].detected for r in records)
    assert detected < 60  # the detector ran on a minority of frames; landmarks followed the rest


def test_crossing_faces_never_swap_ids(face_clips):
    path, scene = face_clips["crossing"]
    records = tracked(path)
    ids = identities(records, scene)
    assert all(len(faces) == 1 for faces in ids.values()), f"a track jumped between faces: {ids}"
    assert sorted(ids) == [0, 1]  # the hidden face keeps its id when it comes out again
    both = [r.index for r in records if len(r.faces) == 2]
    assert both[0] == 0 and both[-1] == 89


def test_face_leaving_and_coming_back(face_clips):
    path, scene = face_clips["leaving"]
    records = tracked(path, "detect,align=size=256")
    assert [r.index for r in records] == list(range(120))  # no frame dropped
    ids = identities(records, scene)
    assert len(ids) == 2 and all(v == {0} for v in ids.values())  # a new track after re-entry
    eye_x = {r.index: scene.true_landmarks(0, r.index)[36:48, 0].mean() for r in records}
    assert all(r.faces for r in records if eye_x[r.index] < 1280 - 150)  # well inside: found
    assert not any(r.faces for r in records if eye_x[r.index] > 1280 + 50)  # outside: none
    assert any(eye_x[i] > 1280 + 50 for i in eye_x)  # it did leave
    first = [r for r in records if r.faces and r.faces[0].track_id == min(ids)]
    assert first[-1].faces[0].fade < 1.0  # faded out as it left


def test_scene_cut_ends_tracks(face_clips):
    path, scene = face_clips["cut"]
    records = tracked(path)
    with_face = [r.index for r in records if r.faces]
    assert with_face == list(range(30))  # the cut is at 1 s; the coffee has no face
    assert len(identities(records, scene)) == 1


def test_no_face_clip_passes_through_bit_exactly(face_clips, tmp_path):
    path, _ = face_clips["noface"]
    out = tmp_path / "out.mkv"
    assert main(["edit", str(path), "-o", str(out), "--chain", "detect,align,invert=model='random:64:8',synthesize,blend",
                 "--codec", "ffv1", "-q"]) == 0
    a, b = read_all(path), read_all(out)
    assert len(a) == len(b) == 30
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))


def test_selection_largest_ids_and_reference(face_clips, tmp_path):
    path, scene = face_clips["crossing"]
    only_one = tracked(path, "detect=ids=1")
    assert {f.track_id for r in only_one for f in r.faces} == {1}
    largest = tracked(path, "detect=select=largest")
    assert all(len(r.faces) <= 1 for r in largest)
    import cv2
    from skimage import data

    ref = tmp_path / "me.png"
    cv2.imwrite(str(ref), data.astronaut()[:, :, ::-1])
    mine = tracked(path, f"detect=ref='{ref}'")
    assert {f.track_id for r in mine for f in r.faces} <= {0, 1} and any(r.faces for r in mine)
    assert all(len(r.faces) <= 1 for r in mine)  # the nearest track only
    # a camera-sized photo (its face found on a copy scaled down, its descriptor taken at full size)
    big = tmp_path / "me-big.jpg"
    cv2.imwrite(str(big), cv2.resize(data.astronaut()[:, :, ::-1], (3000, 3000), interpolation=cv2.INTER_CUBIC))
    from videoinv.faces.stages import _reference_descriptor

    assert np.linalg.norm(_reference_descriptor(str(big)) - _reference_descriptor(str(ref))) < 0.1  # 0.6: same person
    coffee = tmp_path / "coffee.png"
    cv2.imwrite(str(coffee), data.coffee())
    with pytest.raises(Exception, match="no face found"):
        tracked(path, f"detect=ref='{coffee}'")


def test_a_missing_or_unreadable_reference_photo_is_one_clear_line(face_clips, tmp_path):
    # OpenCV printed its own "[ WARN:0@2.005] global loadsave.cpp ... can't open/read file"
    # before our error
    import subprocess
    import sys

    path, _ = face_clips["crossing"]
    (tmp_path / "notes.jpg").write_text("not a picture")
    for ref, words in [(tmp_path / "nope.jpg", "reference image not found"),
                       (tmp_path / "notes.jpg", "not a picture OpenCV can open")]:
        result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(path), "-o", str(tmp_path / "o.mp4"),
                                 "--chain", f"detect=ref='{ref}',align,annotate"], capture_output=True, text=True)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and words in lines[0], result.stderr


def test_cnn_detector_finds_the_face_too():
    from skimage import data

    from videoinv.faces.detect import CnnDetector

    found = CnnDetector(detect_size=512).detect(data.astronaut())
    assert len(found) == 1 and found[0].box[0] < 220 < found[0].box[2] and found[0].box[1] < 121 < found[0].box[3]


def test_inspect_previews_the_faces_edit_would_take(face_clips, tmp_path):
    # inspect took --select all|largest where edit takes --faces all|largest|ids: the ids that
    # inspect shows could not be previewed
    import json
    import subprocess
    import sys

    path, _ = face_clips["crossing"]

    def inspect(name, *args):
        tracks = tmp_path / f"{name}.json"
        result = subprocess.run([sys.executable, "-m", "videoinv", "inspect", str(path), "-o", str(tmp_path / f"{name}.mp4"),
                                 "--json", str(tracks), "-q", *args], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return [sorted(f["id"] for f in frame["faces"]) for frame in json.loads(tracks.read_text())["frames"]]

    every = inspect("all")
    assert {i for frame in every for i in frame} == {0, 1}
    assert inspect("one", "--faces", "1") == [[i for i in frame if i == 1] for frame in every]
    largest = inspect("largest", "--faces", "largest")
    assert all(len(frame) <= 1 for frame in largest) and sum(map(len, largest)) > 0
    assert inspect("old", "--select", "largest") == largest  # the old spelling still works
    bad = subprocess.run([sys.executable, "-m", "videoinv", "inspect", str(path), "-o", str(tmp_path / "bad.mp4"),
                          "--faces", "biggest"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith("videoinv: error: bad faces 'biggest'") and \
        len(bad.stderr.strip().splitlines()) == 1
