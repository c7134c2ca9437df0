"""FFHQ alignment, temporal smoothing, segment masks and paste-back."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from videoinv import samples
from videoinv.faces.face import Face
from videoinv.faces.masks import MaskSpec, build_mask, dilation_radius, segment_masks
from videoinv.faces.paste import paste
from videoinv.faces.quad import Quad, crop, quad_from_landmarks, transform_points, uncrop, frame_roi
from videoinv.pipeline.runner import Pipeline
from videoinv.video.frame import FrameRecord

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def scene():
    return samples.moving_face()


@pytest.fixture(scope="module")
def frame(scene):
    return scene.frame(30)


def recipe_quad(lm: np.ndarray) -> np.ndarray:
    """The FFHQ recipe written out independently (as in the dataset's own script)."""
    lm_eye_left, lm_eye_right, lm_mouth_outer = lm[36:42], lm[42:48], lm[48:60]
    eye_left, eye_right = np.mean(lm_eye_left, axis=0), np.mean(lm_eye_right, axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm_mouth_outer[0] + lm_mouth_outer[6]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def test_quad_corners_follow_the_documented_recipe(scene):
    rng = np.random.default_rng(0)
    for i in range(0, 120, 7):
        lm = scene.true_landmarks(0, i) + rng.normal(0, 2, (68, 2))
        assert np.allclose(quad_from_landmarks(lm).corners(), recipe_quad(lm), atol=1e-9)


def test_crop_matches_pils_quad_transform(scene, frame):
    quad = quad_from_landmarks(scene.true_landmarks(0, 30))
    ours = crop(frame, quad, 256, cv2.INTER_LINEAR).astype(int)
    theirs = np.asarray(Image.fromarray(frame).transform((256, 256), Image.QUAD, (quad.corners() + 0.5).flatten(),
                                                         Image.BILINEAR)).astype(int)
    inner = (slice(4, -4), slice(4, -4))  # PIL leaves its border pixels out
    assert np.abs(ours[inner] - theirs[inner]).mean() < 0.6


def test_crop_mirrors_the_frame_where_the_quad_leaves_it(frame):
    quad = Quad(np.array([40.0, 360.0]), np.array([150.0, 0.0]), np.array([0.0, 150.0]))
    out = crop(frame, quad, 300)
    edge = int(round((0 - (40 - 150)) * 300 / 300 - 0.5))  # crop column of frame column 0
    left = out[:, edge - 20:edge].astype(int)
    right = out[:, edge + 1:edge + 21][:, ::-1].astype(int)
    assert np.abs(left - right).mean() < 2  # mirror image about the frame edge


def test_round_trip_crop_frame_crop(scene, frame, record_property):
    quad = quad_from_landmarks(scene.true_landmarks(0, 30))
    first = crop(frame, quad, 1024)
    roi = frame_roi(quad, frame.shape)
    back = frame.copy()
    x0, y0, x1, y1 = roi
    inside = uncrop(np.ones((1024, 1024), np.float32), quad, roi) > 0.999
    back[y0:y1, x0:x1][inside] = uncrop(first, quad, roi)[inside]
    again = crop(back, quad, 1024)
    err = np.abs(again.astype(int) - first.astype(int))[16:-16, 16:-16]
    record_property("round_trip_mean_abs", float(err.mean()))
    assert err.mean() < 1.0 and np.percentile(err, 99) <= 6
    assert np.allclose(transform_points(transform_points(np.array([[10.0, 20.0]]), quad.crop_to_frame(64)),
                                        quad.frame_to_crop(64)), [[10.0, 20.0]])


def _align_records(landmark_seq, chain) -> list[FrameRecord]:
    records = [FrameRecord(i, i, Fraction(1, 30), image=np.zeros((4, 4, 3), np.uint8),
                           faces=[Face(0, np.zeros(4), lm.astype(np.float32))]) for i, lm in enumerate(landmark_seq)]
    return list(Pipeline(chain, batch_size=3).run(records))


def _jitter(corners: np.ndarray) -> float:
    return float(np.diff(corners, 2, axis=0).std())


@pytest.mark.parametrize("mode", ["stream", "offline"])
def test_smoothing_removes_jitter_without_lag(scene, mode):
    rng = np.random.default_rng(1)
    n = 150
    truth = [scene.true_landmarks(0, i) for i in range(n)]
    noisy = [lm + rng.normal(0, 1.5, lm.shape) for lm in truth]
    raw = np.stack([quad_from_landmarks(lm).corners() for lm in noisy])
    true = np.stack([quad_from_landmarks(lm).corners() for lm in truth])
    if mode == "stream":
        out = _align_records(noisy, "align=crops=no:size=256")
    else:  # offline needs the whole track first: run the pre-pass by hand
        pipeline = Pipeline("align=crops=no:size=256:smooth=offline", batch_size=3)
        make = lambda: [FrameRecord(i, i, Fraction(1, 30), image=np.zeros((4, 4, 3), np.uint8),  # noqa: E731
                                    faces=[Face(0, np.zeros(4), lm.astype(np.float32))]) for i, lm in enumerate(noisy)]
        pipeline.prepass(make())
        out = list(pipeline.run(make()))
    assert len(out) == n and all(r.faces[0].quad is not None for r in out)
    smooth = np.stack([r.faces[0].quad.corners() for r in out])
    ratio = _jitter(raw - 0) / _jitter(smooth)
    assert ratio >= 3, f"jitter only reduced {ratio:.1f}x"
    velocity = np.gradient(true.mean(1), axis=0)  # px / frame of the quad centre
    moving = np.linalg.norm(velocity, axis=1) > 1.0
    lag = -((smooth.mean(1) - true.mean(1)) * velocity).sum(1)[moving] / (velocity ** 2).sum(1)[moving]
    assert abs(lag.mean()) < 1.0, f"lags {lag.mean():.2f} frames behind"


def test_short_tracks_and_track_ends_keep_every_frame():
    rng = np.random.default_rng(2)
    base = quad_from_landmarks(samples.moving_face().true_landmarks(0, 0))
    lm0 = samples.moving_face().true_landmarks(0, 0)
    records = []
    for i in range(20):  # track 0 for 3 frames, track 1 from frame 8 to 12, nothing else
        faces = []
        if i < 3:
            faces.append(Face(0, np.zeros(4), (lm0 + rng.normal(0, 1, lm0.shape)).astype(np.float32)))
        if 8 <= i <= 12:
            faces.append(Face(1, np.zeros(4), (lm0 + [5.0 * i, 0]).astype(np.float32)))
        records.append(FrameRecord(i, i, Fraction(1, 30), image=np.zeros((4, 4, 3), np.uint8), faces=faces))
    out = list(Pipeline("align=crops=no:size=256:fade=3", batch_size=4).run(records))
    assert [r.index for r in out] == list(range(20))
    fades = {(r.index, f.track_id): f.fade for r in out for f in r.faces}
    assert fades[(0, 0)] == 1.0  # present from the video's start: no fade in
    assert fades[(2, 0)] < 1.0  # ...but it ends: fades out
    assert fades[(8, 1)] < fades[(9, 1)] <= fades[(10, 1)] == 1.0 > fades[(12, 1)]
    assert abs(out[1].faces[0].quad.size - base.size) < 5


def test_masks_cover_their_landmark_polygons(scene, frame):
    lm = transform_points(scene.true_landmarks(0, 30), quad_from_landmarks(scene.true_landmarks(0, 30)).frame_to_crop(512))
    exact = MaskSpec(dilate=0, feather=0)
    for name, points in [("eyes", [lm[36:42], lm[42:48]]), ("mouth", [lm[48:60]]), ("nose", [lm[27:36]]),
                         ("face", [np.concatenate([lm[0:17], lm[17:27]])])]:
        mask = build_mask(lm, 512, MaskSpec((name,), dilate=0, feather=0))
        polygon = np.zeros((512, 512), np.uint8)
        for pts in points:
            pts = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2) if name in ("nose", "face") else pts
            cv2.fillPoly(polygon, [np.round(pts).astype(np.int32)], 1)
        core = cv2.erode(polygon, np.ones((3, 3), np.uint8)) > 0  # leave the anti-aliased rim out
        assert (mask[core] >= 0.5).all(), name
    assert build_mask(lm, 512, exact).max() == 1.0


def test_eyes_dilate_more_than_the_mouth_by_the_factor():
    lm = transform_points(samples.moving_face().true_landmarks(0, 0),
                          quad_from_landmarks(samples.moving_face().true_landmarks(0, 0)).frame_to_crop(512))
    spec = MaskSpec(dilate=12, eye_factor=3, feather=0)

    def reach(name):
        grown = build_mask(lm, 512, MaskSpec((name,), dilate=spec.dilate, eye_factor=spec.eye_factor, feather=0)) > 0.5
        base = segment_masks(lm, 512)[name] > 127
        distance = cv2.distanceTransform((~base).astype(np.uint8), cv2.DIST_L2, 5)
        return float(distance[grown].max())

    eyes, mouth = reach("eyes"), reach("mouth")
    assert abs(eyes - dilation_radius("eyes", spec, 512)) <= 1.5
    assert abs(mouth - dilation_radius("mouth", spec, 512)) <= 1.5
    assert abs(eyes / mouth - 3) < 0.5


def test_mask_pictures_for_people(scene, frame):
    """Renders every segment over the aligned astronaut (tests/artifacts/masks_*.png)."""
    ARTIFACTS.mkdir(exist_ok=True)
    quad = quad_from_landmarks(scene.true_landmarks(0, 30))
    face_crop = crop(frame, quad, 512)
    lm = transform_points(scene.true_landmarks(0, 30), quad.frame_to_crop(512))
    tiles = []
    for name in ("skin", "brows", "eyes", "nose", "mouth", "lips", "forehead", "face"):
        mask = build_mask(lm, 512, MaskSpec((name,)))
        tint = face_crop.astype(np.float32)
        tint[..., 0] = tint[..., 0] * (1 - mask) + 255 * mask
        tile = tint.astype(np.uint8)
        cv2.putText(tile, name, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        tiles.append(tile)
        assert 0 < mask.mean() < 0.5, name
    sheet = np.concatenate([np.concatenate(tiles[:4], 1), np.concatenate(tiles[4:], 1)], 0)
    cv2.imwrite(str(ARTIFACTS / "masks_astronaut.png"), sheet[:, :, ::-1])
    assert (ARTIFACTS / "masks_astronaut.png").stat().st_size > 10_000


@pytest.mark.parametrize("segments", [("face",), ("mouth", "eyes"), ("skin",)])
def test_pasting_the_unmodified_crop_gives_back_the_frame(scene, frame, segments):
    quad = quad_from_landmarks(scene.true_landmarks(0, 30))
    face_crop = crop(frame, quad, 1024)
    lm = transform_points(scene.true_landmarks(0, 30), quad.frame_to_crop(1024))
    mask = build_mask(lm, 1024, MaskSpec(segments))
    out = paste(frame, face_crop, mask, quad)
    roi = frame_roi(quad, frame.shape)
    alpha = np.zeros(frame.shape[:2], np.float32)
    x0, y0, x1, y1 = roi
    alpha[y0:y1, x0:x1] = uncrop(mask, quad, roi, cv2.INTER_LINEAR)
    diff = np.abs(out.astype(int) - frame.astype(int)).max(-1)
    assert (diff[alpha == 0] == 0).all()  # exactly outside the support
    # the error is the double (bicubic) resampling (frame -> 1024 crop -> frame) times alpha:
    # within 1 level in the outer part of the feather band, within 3 inside the mask
    outer = (alpha > 0) & (alpha < 1 / 3)
    assert diff[outer].max() <= 1
    inside = alpha >= 1 / 3
    assert diff[inside].max() <= 3 and diff[inside].mean() < 0.5


def test_alpha_paste_is_the_rounded_mix_of_face_and_frame(scene, frame):
    quad = quad_from_landmarks(scene.true_landmarks(0, 30))
    negative = 255 - crop(frame, quad, 512)  # far from the frame everywhere: every weight shows
    lm = transform_points(scene.true_landmarks(0, 30), quad.frame_to_crop(512))
    mask = build_mask(lm, 512, MaskSpec(("face",)))
    out = paste(frame, negative, mask, quad, strength=0.7)
    x0, y0, x1, y1 = roi = frame_roi(quad, frame.shape)
    # the mix as documented: in float32, rounded half to even (float64 differs at exact halves,
    # which strength 0.7 makes common: a weight of 0.7 on an odd difference); the face is warped
    # here over the whole quad's box, by paste over the mask's support: a warp's fixed-point
    # coordinates depend on its origin, so an odd value may differ by a level
    alpha = uncrop(mask, quad, roi, cv2.INTER_LINEAR)[..., None] * np.float32(0.7)
    face = uncrop(negative, quad, roi).astype(np.float32)
    region = frame[y0:y1, x0:x1].astype(np.float32)
    expected = np.clip(np.rint(region + (face - region) * alpha), 0, 255)
    diff = np.abs(out[y0:y1, x0:x1] - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4
    assert (alpha > 0.5).mean() > 0.1 and np.abs(out[y0:y1, x0:x1] - region).mean() > 10
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (out[outside] == frame[outside]).all()


def test_laplacian_and_colour_paste_stay_close(scene, frame):
    quad = quad_from_landmarks(scene.true_landmarks(0, 30))
    face_crop = crop(frame, quad, 512)
    lm = transform_points(scene.true_landmarks(0, 30), quad.frame_to_crop(512))
    mask = build_mask(lm, 512, MaskSpec(("face",)))
    for kwargs in ({"mode": "laplacian"}, {"colour": True}):
        out = paste(frame, face_crop, mask, quad, **kwargs)
        assert np.abs(out.astype(int) - frame.astype(int)).mean() < 0.5
    darker = (face_crop * 0.7).astype(np.uint8)  # a face pasted too dark is pulled back
    plain = paste(frame, darker, mask, quad)
    matched = paste(frame, darker, mask, quad, colour=True)
    inside = uncrop(mask, quad, frame_roi(quad, frame.shape)) > 0.9
    x0, y0, x1, y1 = frame_roi(quad, frame.shape)
    err = lambda img: np.abs(img[y0:y1, x0:x1][inside].astype(int) - frame[y0:y1, x0:x1][inside].astype(int)).mean()  # noqa: E731
    assert err(matched) < err(plain) / 2


def test_inspect_end_to_end(tmp_path):
    clip = tmp_path / "moving.mp4"
    samples.write_clip(clip, samples.moving_face(), 45)
    out, tracks = tmp_path / "inspect.mp4", tmp_path / "tracks.json"
    result = subprocess.run([sys.executable, "-m", "videoinv", "inspect", str(clip), "-o", str(out),
                             "--json", str(tracks), "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = json.loads(tracks.read_text())
    assert len(data["frames"]) == 45 and list(data["tracks"]) == ["0"]
    assert all(len(f["faces"]) == 1 and len(f["faces"][0]["box"]) == 4 for f in data["frames"])
    assert data["tracks"]["0"] == {"first": 0, "last": 44, "frames": 45, "detected": data["tracks"]["0"]["detected"]}
    from conftest import read_all

    drawn, source = read_all(out), read_all(clip)
    assert len(drawn) == 45
    assert np.abs(drawn[10].image.astype(int) - source[10].image.astype(int)).mean() > 0.5  # overlays drawn


def test_inspect_by_default_sees_the_faces_with_the_detector_edit_picks(tmp_path, monkeypatch):
    """``inspect`` shows what an edit will see: its default detector is the one ``edit`` resolves
    ``auto`` to (hog on a machine without a GPU; here made to answer cnn, so the two differ)."""
    from videoinv.cli import main
    from videoinv.edit.recipe import EditOptions

    clip = tmp_path / "small.mp4"
    samples.write_clip(clip, samples.moving_face(width=640, height=360), 2)

    def boxes(name: str, *extra: str) -> list:
        tracks = tmp_path / f"{name}.json"
        assert main(["inspect", str(clip), "-o", str(tmp_path / f"{name}.mp4"), "--json", str(tracks), "-q",
                     *extra]) == 0
        return [face["box"] for frame in json.loads(tracks.read_text())["frames"] for face in frame["faces"]]

    monkeypatch.setattr(EditOptions, "detector_name", lambda self: "cnn" if self.detector == "auto" else self.detector)
    by_default, cnn, hog = boxes("default"), boxes("cnn", "--detector", "cnn"), boxes("hog", "--detector", "hog")
    assert by_default == cnn and cnn and hog and cnn != hog


def test_inspect_takes_segments_as_edit_does(tmp_path):
    # "mouth,eyes" broke the chain at its comma ("unknown stage 'eyes'") and a bad name was
    # told as "option segments of stage annotate"
    from conftest import read_all

    clip = tmp_path / "small.mp4"
    samples.write_clip(clip, samples.moving_face(width=640, height=360), 3)

    def inspect(name, segments):
        return subprocess.run([sys.executable, "-m", "videoinv", "inspect", str(clip), "-o", str(tmp_path / name),
                               "--segments", segments, "--every", "1", "-q"], capture_output=True, text=True)

    assert inspect("plus.mp4", "mouth+eyes").returncode == 0 and inspect("comma.mp4", "mouth,eyes").returncode == 0
    plus, comma = read_all(tmp_path / "plus.mp4"), read_all(tmp_path / "comma.mp4")
    assert len(plus) == len(comma) == 3 and all(np.array_equal(a.image, b.image) for a, b in zip(plus, comma))
    assert inspect("face.mp4", "face").returncode == 0
    face = read_all(tmp_path / "face.mp4")
    assert not np.array_equal(face[1].image, plus[1].image)  # other outlines drawn
    bad = inspect("bad.mp4", "mouth+nostril")
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "videoinv: error: bad --segments 'mouth+nostril': 'nostril' is not a segment; use skin, brows, eyes, nose, "
        "mouth, lips, forehead, face, joined with + (mouth+eyes)"]
    assert not (tmp_path / "bad.mp4").exists()
