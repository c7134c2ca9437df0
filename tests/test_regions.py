"""Parts of frames converted on their own are the whole frame's pixels: the reader's region
converter, records' regions and patches, and the stages that read frames through them (tracking,
cropping, pasting, the edit end to end)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from videoinv import samples
from videoinv.faces.detect import HogDetector
from videoinv.faces.paste import paste, paste_region
from videoinv.faces.quad import Quad, crop
from videoinv.faces.track import FaceTracker
from videoinv.pipeline.jobs import edit_video
from videoinv.video.frame import FrameRecord
from videoinv.video.orientation import _OPS, apply_orientation, map_box
from videoinv.video.reader import Reader

from conftest import X264, ffmpeg

# a picture with detail in every colour at every scale, so that any chroma or edge error shows
PATTERN = "testsrc2=size={w}x{h}:rate=30,format=yuv444p[a];cellauto=s={w}x{h}:rate=30,format=yuv444p[b];" \
          "[a][b]blend=all_mode=average"


def _clip(root, name, *args, size=(1280, 720)):
    path = root / name
    w, h = size
    ffmpeg("-f", "lavfi", "-i", PATTERN.format(w=w, h=h), "-frames:v", "3", *X264, *args, path)
    return path


def _rotated(src, dst, degrees, hflip=False):
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        stream.set_display_rotation(degrees, hflip=hflip)
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def pattern_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("regions")
    made = {
        "yuv420p": _clip(root, "420.mp4", "-pix_fmt", "yuv420p"),
        "yuv422p": _clip(root, "422.mp4", "-pix_fmt", "yuv422p"),
        "yuv444p": _clip(root, "444.mp4", "-pix_fmt", "yuv444p"),
        "yuvj420p": _clip(root, "j420.mp4", "-pix_fmt", "yuvj420p"),
        "bt601 sd": _clip(root, "601.mp4", "-pix_fmt", "yuv420p", "-colorspace", "smpte170m", size=(640, 480)),
        "odd size": _clip(root, "odd.mp4", "-pix_fmt", "yuv420p", size=(642, 362)),
        "chroma centre": _clip(root, "centre.mp4", "-pix_fmt", "yuv420p", "-chroma_sample_location", "center"),
        "10-bit": _clip(root, "10bit.mp4", "-pix_fmt", "yuv420p10le"),
    }
    made["rotated 90"] = _rotated(made["odd size"], root / "rot90.mp4", 90)
    made["rotated 270 flipped"] = _rotated(made["odd size"], root / "rot270f.mp4", 270, hflip=True)
    return made


def _boxes(rng, w, h, n=30):
    boxes = [(0, 0, w, h), (0, 0, min(w, 7), min(h, 5)), (max(0, w - 9), max(0, h - 3), w, h), (1, 1, w - 1, h - 1)]
    while len(boxes) < n:
        x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
        x1, y1 = int(rng.integers(x0 + 1, min(w, x0 + 400) + 1)), int(rng.integers(y0 + 1, min(h, y0 + 300) + 1))
        boxes.append((x0, y0, x1, y1))
    return boxes


@pytest.mark.parametrize("name", ["yuv420p", "yuv422p", "yuv444p", "yuvj420p", "bt601 sd", "odd size", "chroma centre",
                                  "10-bit", "rotated 90", "rotated 270 flipped"])
def test_regions_are_the_whole_frames_pixels(pattern_clips, name):
    with Reader(pattern_clips[name]) as reader:
        records = list(reader.frames(rgb=False))
        if name == "10-bit":
            assert reader.regions is None  # cut from whole conversions instead
        else:
            assert reader.regions is not None
        rng = np.random.default_rng(7)
        for record in records:
            whole = reader.to_rgb(record.source)
            w, h = record.size
            assert whole.shape == (h, w, 3)
            for x0, y0, x1, y1 in _boxes(rng, w, h):
                part = record.region((x0, y0, x1, y1))
                assert np.array_equal(part, whole[y0:y1, x0:x1]), (record.index, (x0, y0, x1, y1))
            # no whole conversion was needed, but for the siting on the first frame
            assert record._image is None or name == "10-bit" or (record.index == 0 and "444" not in name)
    if name not in ("10-bit", "yuv444p"):
        assert records[0].has_image and not any(r.has_image for r in records[1:])
    if name == "chroma centre":
        assert reader.regions.siting == "center"
    elif name not in ("10-bit", "yuv444p"):
        assert reader.regions.siting == "left"  # H.264's default


@pytest.mark.parametrize("name", ["yuv420p", "yuv422p", "odd size", "chroma centre", "rotated 90",
                                  "rotated 270 flipped"])
def test_a_region_mostly_converted_already_converts_only_the_rest(pattern_clips, name, monkeypatch):
    """A box that overlaps a region converted before by half or more is put together from it
    and from conversions of the rest only (above, below, left, right), with the same pixels."""
    with Reader(pattern_clips[name]) as reader:
        records = list(reader.frames(rgb=False))
        converted = []
        rgb = reader.regions.rgb
        monkeypatch.setattr(reader.regions, "rgb", lambda frame, box: converted.append(box) or rgb(frame, box))
        records[0].load()  # converted whole: the chroma siting is learnt from it
        rng = np.random.default_rng(11)
        for record in records[1:]:
            whole = reader.to_rgb(record.source)
            w, h = record.size
            for _ in range(12):
                record = record.unchanged()
                bw, bh = int(rng.integers(80, w // 2)), int(rng.integers(80, h // 2))
                x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                first = (x0, y0, x0 + bw, y0 + bh)
                dx, dy = int(rng.integers(-bw // 8, bw // 8 + 1)), int(rng.integers(-bh // 8, bh // 8 + 1))
                gx, gy = int(rng.integers(0, bw // 16 + 1)), int(rng.integers(0, bh // 16 + 1))
                second = (x0 + dx - gx, y0 + dy - gy, x0 + dx + bw + gx, y0 + dy + bh + gy)
                record.region(first)
                converted.clear()
                part = record.region(second)
                x0, y0, x1, y1 = max(0, second[0]), max(0, second[1]), min(w, second[2]), min(h, second[3])
                assert np.array_equal(part, whole[y0:y1, x0:x1]), (record.index, first, second)
                overlap = (min(x1, first[2]) - max(x0, first[0])) * (min(y1, first[3]) - max(y0, first[1]))
                assert len(converted) <= 4
                assert sum((b[2] - b[0]) * (b[3] - b[1]) for b in converted) == (x1 - x0) * (y1 - y0) - overlap


def _wholes(reader, monkeypatch):
    """A list that grows by one for each whole-frame conversion ``reader`` makes."""
    made, to_rgb = [], reader.to_rgb
    monkeypatch.setattr(reader, "to_rgb", lambda frame: made.append(frame) or to_rgb(frame))
    reader.regions.whole = reader.to_rgb
    return made


@pytest.mark.parametrize("flat, n, decided_by", [(6, 16, 8), (40, 70, 63)])
def test_siting_waits_for_colour_and_each_flat_frame_converts_once(tmp_path, monkeypatch, flat, n, decided_by):
    """A video whose first frames have no colour (a fade in from black) matches every siting
    there: those frames are converted whole once each, whatever number of regions is read from
    them, and regions are cut on their own soon after the colour comes (an earlier version gave
    up after 5 undecided frames; after the first 8, a frame is tried at intervals: 63 is the
    64th)."""
    path = tmp_path / "fade.mp4"
    ffmpeg("-f", "lavfi", "-i", PATTERN.format(w=640, h=360) + f",fade=in:s={flat}:n=3",
           "-frames:v", str(n), *X264, "-pix_fmt", "yuv420p", path)
    with Reader(path) as reader:
        made = _wholes(reader, monkeypatch)
        rng = np.random.default_rng(3)
        decided = None
        for record in reader.frames(rgb=False):
            whole = reader.to_rgb(record.source)
            made.pop()  # the test's own
            for box in _boxes(rng, 640, 360, n=6):
                assert np.array_equal(record.region(box), whole[box[1]:box[3], box[0]:box[2]])
            if decided is None and reader.regions.siting is not None:
                decided = record.index
            assert record.has_image == (decided is None or record.index == decided)
        assert reader.regions.siting == "left"
        assert flat <= decided <= decided_by
        assert len(made) == len({id(f) for f in made}) == decided + 1  # each at most once


def test_grey_video_converts_each_frame_whole_once(tmp_path, monkeypatch):
    path = tmp_path / "grey.mp4"
    ffmpeg("-f", "lavfi", "-i", PATTERN.format(w=640, h=360) + ",hue=s=0", "-frames:v", "40", *X264,
           "-pix_fmt", "yuv420p", path)
    with Reader(path) as reader:
        made = _wholes(reader, monkeypatch)
        records = list(reader.frames(rgb=False))
        rng = np.random.default_rng(4)
        for record in records:
            for box in _boxes(rng, 640, 360, n=5):
                record.region(box)
        assert reader.regions.siting is None and not reader.regions.unmatched
        assert len(made) == len(records) == 40 and len({id(f) for f in made}) == 40


@pytest.mark.parametrize("size", [(3840, 2160), (1280, 720), (642, 362)])
def test_thumbnails_are_block_means(size):
    """A scene-cut thumbnail is the mean of each block of the picture, to a level (large
    pictures are shrunk in two steps)."""
    from videoinv.video.regions import shrink

    w, h = size
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:h, :w]
    thumb = shrink(grey, (64, 36))
    assert thumb.shape == (36, 64)
    ys, xs = np.linspace(0, h, 37), np.linspace(0, w, 65)
    for i in range(36):
        for j in range(64):
            y0, y1, x0, x1 = ys[i], ys[i + 1], xs[j], xs[j + 1]
            rows, cols = np.arange(int(y0), int(np.ceil(y1))), np.arange(int(x0), int(np.ceil(x1)))
            wy = np.minimum(rows + 1, y1) - np.maximum(rows, y0)  # the share of each pixel inside
            wx = np.minimum(cols + 1, x1) - np.maximum(cols, x0)
            mean = (grey[np.ix_(rows, cols)] * np.outer(wy, wx)).sum() / ((y1 - y0) * (x1 - x0))
            assert abs(int(thumb[i, j]) - mean) <= 1.0, (size, i, j)


def test_map_box_follows_every_orientation():
    rng = np.random.default_rng(3)
    coded = rng.integers(0, 255, (7, 11, 1))
    for op in _OPS:
        upright = apply_orientation(coded, op)
        h, w = upright.shape[:2]
        for x0, y0, x1, y1 in _boxes(rng, w, h, 20):
            cx0, cy0, cx1, cy1 = map_box((x0, y0, x1, y1), op, (w, h), inverse=True)
            assert np.array_equal(apply_orientation(coded[cy0:cy1, cx0:cx1], op), upright[y0:y1, x0:x1])
            assert map_box((cx0, cy0, cx1, cy1), op, (11, 7)) == (x0, y0, x1, y1)


def test_patches_overlay_regions_and_the_whole_picture(pattern_clips):
    with Reader(pattern_clips["yuv420p"]) as reader:
        record = next(iter(reader.frames(rgb=False)))
        whole = reader.to_rgb(record.source)
        first = np.full((100, 200, 3), 10, np.uint8)
        second = np.full((100, 100, 3), 200, np.uint8)
        record.patch_region((100, 50, 300, 150), first)
        record.patch_region((250, 100, 350, 200), second)  # over part of the first
        expected = whole.copy()
        expected[50:150, 100:300] = first
        expected[100:200, 250:350] = second
        for box in [(0, 0, 400, 300), (260, 120, 270, 130), (120, 60, 260, 110), (500, 500, 600, 600)]:
            x0, y0, x1, y1 = box
            assert np.array_equal(record.region(box), expected[y0:y1, x0:x1])
        assert record.changed == [(100, 50, 300, 150), (250, 100, 350, 200)]
        assert record.source is not None and record.modified
        assert np.array_equal(record.image, expected)
        assert np.array_equal(record.unchanged().image, whole)


def test_patching_an_array_record_leaves_the_callers_array_alone():
    image = np.zeros((20, 30, 3), np.uint8)
    record = FrameRecord(0, 0, Fraction(1, 30), image=image)
    record.patch_region((5, 5, 10, 10), np.full((5, 5, 3), 9, np.uint8))
    assert image.max() == 0
    assert record.image[5:10, 5:10].min() == 9 and record.image.sum() == 9 * 75


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("regions-face") / "moving.mp4"
    samples.write_clip(path, samples.moving_face(), 40, audio=False)
    return path


def test_tracking_on_regions_gives_the_whole_frames_landmarks(face_clip):
    def track(regions: bool):
        tracker = FaceTracker(HogDetector(), every=5)
        out = []
        with Reader(face_clip) as reader:
            for record in reader.frames(rgb=False):
                faces = tracker.update(record if regions else reader.to_rgb(record.source), record.index)
                out.append([(f.track_id, f.landmarks) for f in faces])
                if regions and record.index % 5:
                    assert record._image is None  # between detections no whole conversion
        return out

    # the landmarker given the box's surroundings places them as it does given the whole frame
    import dlib

    from videoinv.faces.detect import landmarks68
    from videoinv.faces.dlib_models import shape_predictor

    with Reader(face_clip) as reader:
        for record in reader.frames(rgb=False):
            whole = reader.to_rgb(record.source)
            for detection in HogDetector().detect(whole):
                rect = dlib.rectangle(*(int(round(v)) for v in detection.box))
                expected = np.array([(p.x, p.y) for p in shape_predictor()(whole, rect).parts()], np.float32)
                np.testing.assert_array_equal(landmarks68(record, detection.box), expected)
    on_regions, on_frames = track(True), track(False)
    assert sum(map(len, on_frames)) == 40
    assert [[i for i, _ in faces] for faces in on_regions] == [[i for i, _ in faces] for faces in on_frames]
    for a, b in zip(on_regions, on_frames):
        for (_, la), (_, lb) in zip(a, b):
            np.testing.assert_array_equal(la, lb)


def test_crops_and_pastes_from_regions_match_whole_frames(face_clip):
    rng = np.random.default_rng(5)
    with Reader(face_clip) as reader:
        records = list(reader.frames(rgb=False))[:6]
        for record in records:
            whole = reader.to_rgb(record.source)
            h, w = whole.shape[:2]
            for i in range(12):
                size = [64, 256][i % 2]
                side = float(rng.uniform(40, 650))  # small quads warp directly, large ones shrink first
                inside = (side * 0.75, w - side * 0.75), (min(side * 0.75, h / 2), max(h - side * 0.75, h / 2))
                c = np.array([rng.uniform(-100, w + 100) if i % 3 == 0 else rng.uniform(*inside[0]),
                              rng.uniform(*inside[1])])
                angle = rng.uniform(-0.4, 0.4)
                x = np.array([np.cos(angle), np.sin(angle)]) * side / 2
                quad = Quad(c, x, np.array([-x[1], x[0]]))
                ours = crop(record, quad, size)
                assert np.array_equal(ours, crop(whole, quad, size)), (record.index, i)
                face = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                mask = np.zeros((size, size), np.float32)
                mask[size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
                for mode in ("alpha", "laplacian"):
                    boxes = []
                    expected = paste(whole, face, mask, quad, mode, strength=0.8, boxes=boxes)
                    pasted = paste_region(record, face, mask, quad, mode, strength=0.8)
                    if pasted is None:
                        assert not boxes and np.array_equal(expected, whole)
                        continue
                    (x0, y0, x1, y1), pixels = pasted
                    assert [(x0, y0, x1, y1)] == boxes
                    assert np.array_equal(pixels, expected[y0:y1, x0:x1])


def test_edit_reading_regions_writes_the_same_video_as_reading_whole_frames(face_clip, tmp_path, monkeypatch):
    """The decoder leaves frames in YUV when every stage reads parts (of frames large enough;
    here at any size); converting them whole ahead must not change a single output pixel (same
    encoder input, so the same stream)."""
    from videoinv.edit.recipe import EditOptions
    from videoinv.video import regions

    def run(out):
        options = EditOptions(edits=["sefa0=3"], model="random:64:16", device="cpu")
        return edit_video(face_clip, out, options=options, overwrite=True)

    converted = []
    rgb = regions.RegionConverter.rgb  # regions converted on their own (the siting's bands aside)
    monkeypatch.setattr(regions.RegionConverter, "rgb", lambda self, *a: converted.append(a) or rgb(self, *a))
    monkeypatch.setattr(regions, "PAYS_FROM", 0)
    parts = run(tmp_path / "parts.mp4")
    n = len(converted)
    assert n > 30  # the faces' surroundings, between detections
    monkeypatch.setattr(regions, "PAYS_FROM", 10 ** 9)  # whole frames converted ahead, as at 720p
    whole = run(tmp_path / "whole.mp4")
    assert len(converted) == n  # the stages sliced the whole frames
    assert parts["patched"] == whole["patched"] == 40
    a = [r.image for r in Reader(tmp_path / "parts.mp4").frames()]
    b = [r.image for r in Reader(tmp_path / "whole.mp4").frames()]
    assert len(a) == len(b) == 40
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
