"""Reader: frame numbering, seeking by time and by frame (CFR and VFR), batches, laziness,
bounded memory."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest

from videoinv.video.reader import Reader
from videoinv.video.helpers import ffmpeg_helpers

from conftest import ffmpeg, read_all


@pytest.fixture(scope="module")
def everything(clips):
    return {name: read_all(getattr(clips, name)) for name in ("bt709", "vfr")}


def test_full_read_numbers_frames_in_order(clips, everything):
    frames = everything["bt709"]
    assert [f.index for f in frames] == list(range(60))
    assert [f.pts for f in frames] == sorted(f.pts for f in frames)
    assert frames[30].time == pytest.approx(1.0)
    with Reader(clips.bt709) as r:
        info = r.info
    assert (info.width, info.height, float(info.fps), info.frame_count, info.has_audio) == (1280, 720, 30.0, 60, True)


@pytest.mark.parametrize("case, start, end, first, count", [
    ("bt709", "1.0", "1.5", 30, 15),
    ("bt709", "15f", "20f", 15, 5),
    ("bt709", "0:01.9", None, 57, 3),
    ("bt709", None, "3f", 0, 3),
    ("vfr", "45f", "50f", 45, 5),       # in the 15 fps half: frame 45 is at 2.0 s
    ("vfr", "2.0", "2.4", 45, 6),
    ("vfr", "0.5", "40f", 15, 25),
])
def test_seeking_gives_the_same_frames_as_a_full_read(clips, everything, case, start, end, first, count):
    full = everything[case]
    part = read_all(getattr(clips, case), start=start, end=end)
    assert [f.index for f in part] == list(range(first, first + count))
    for f in part:
        ref = full[f.index]
        assert f.pts == ref.pts
        assert np.array_equal(f.image, ref.image)


def test_start_past_the_end_gives_nothing(clips):
    assert read_all(clips.bt709, start="10.0") == []


def test_batches_cover_every_frame_once(clips):
    with Reader(clips.bt709) as r:
        sizes = [len(b) for b in r.batches(16)]
    assert sizes == [16, 16, 16, 12]


def test_images_are_lazy_and_read_only_until_replaced(clips):
    with Reader(clips.bt709) as r:
        record = next(r.frames(rgb=False))
        assert record._image is None  # nothing converted yet
        image = record.image
        assert image.shape == (720, 1280, 3) and image.dtype == np.uint8
        with pytest.raises(ValueError):
            image[0, 0] = 0  # stages must not scribble on the decoded picture
        assert record.source is not None and not record.modified
        record.image = image.copy()
        assert record.modified and record.source is None


def test_a_patch_keeps_the_decoded_frame_and_says_where_the_picture_differs(clips):
    with Reader(clips.bt709) as r:
        first, second = next(r.frames(rgb=True)), next(r.frames(rgb=True))
    edited = first.image.copy()
    edited[10:20, 30:50] = 0
    first.patch(edited, [(30, 10, 50, 20)])
    assert first.image is edited and first.source is not None and first.modified
    assert first.changed == [(30, 10, 50, 20)]
    first.patch(edited.copy(), [(0, 0, 4, 4)])  # boxes add up
    assert first.changed == [(30, 10, 50, 20), (0, 0, 4, 4)]
    first.image = edited  # replaced as a whole: nothing left to pass through
    assert first.source is None and first.changed == []
    first.patch(edited.copy(), [(0, 0, 4, 4)])
    assert first.source is None and first.changed == []
    second.patch(second.image.copy(), [])  # no box: the picture still is the decoded one
    assert second.source is not None and second.changed == [] and not second.modified


def _peak_rss_mb(code: str) -> float:
    script = f"import resource\n{code}\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_does_not_grow_with_video_length(tmp_path):
    for seconds in (4, 80):
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=30:duration={seconds}", "-f", "lavfi",
               "-i", f"sine=duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
               "yuv420p", "-c:a", "aac", "-shortest", tmp_path / f"{seconds}.mp4")
    read = "from videoinv.video.reader import Reader\nn = sum(1 for _ in Reader({!r}))"
    edit = "from videoinv.cli import main\nmain(['edit', {!r}, '-o', {!r}, '-q', '--preset', 'ultrafast'])"
    short_read = _peak_rss_mb(read.format(str(tmp_path / "4.mp4")))
    long_read = _peak_rss_mb(read.format(str(tmp_path / "80.mp4")))
    short_edit = _peak_rss_mb(edit.format(str(tmp_path / "4.mp4"), str(tmp_path / "o4.mp4")))
    long_edit = _peak_rss_mb(edit.format(str(tmp_path / "80.mp4"), str(tmp_path / "o80.mp4")))
    # 20x the frames (2400 frames of 640x360 RGB would be 1.6 GB if kept)
    assert long_read - short_read < 40, (short_read, long_read)
    assert long_edit - short_edit < 60, (short_edit, long_edit)


def test_a_finished_reader_is_freed_without_the_cycle_collector(clips):
    """Its container and decoder go as soon as nothing holds the reader: while the region
    converter held the reader's bound method, the two made a cycle, and every video a process
    edited left about 100 MB behind until Python's cycle collector ran."""
    gc.collect()
    gc.disable()
    try:
        with Reader(clips.bt709, end="3f") as reader:
            assert reader.regions is not None  # the converter that held it
            record = next(iter(reader))
            box = (100, 60, 300, 200)
            part = record.region(box).copy()
            assert np.array_equal(part, record.image[60:200, 100:300])  # still converts, cut or whole
        gone = weakref.ref(reader)
        del reader, record
        assert gone() is None
    finally:
        gc.enable()


def test_a_reader_can_be_iterated_twice(clips):
    with Reader(clips.bt709, end="5f") as r:
        first = [f.pts for f in r]
        second = [f.pts for f in r]
    assert first == second and len(first) == 5


def _threads_started() -> int:
    """Threads and processes started on this machine since boot (the kernel's count)."""
    with open("/proc/stat") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("processes "))


def test_converting_frames_starts_no_threads_per_frame(clips, tmp_path):
    """swscale set up afresh for every frame (a frame's own ``reformat``) started and joined two
    threads per frame with FFmpeg 8, both for decoded YUV -> RGB and for RGB -> YUV to encode."""
    from videoinv.video.writer import Writer

    with Reader(clips.bt709) as reader:
        info = reader.info
        before = _threads_started()
        frames = [record.load() for record in reader.frames(rgb=True)]
        reading = _threads_started() - before
    for record in frames:
        record.image = record.image.copy()  # changed: every frame goes RGB -> YUV -> encoder
    before = _threads_started()
    with Writer(tmp_path / "out.mp4", info.width, info.height, info.time_base, info.fps, None, info, None,
                inputs=[clips.bt709]) as writer:
        for record in frames:
            writer.write(record)
    writing = _threads_started() - before
    assert len(frames) == 60
    # the codecs' own threads, started once (and a little slack for the rest of the machine)
    assert reading < 20 and writing < 20, (reading, writing)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="FFmpeg starts helper threads only with two cores or more")
def test_without_ffmpeg_helpers_decoding_and_conversion_run_on_the_reading_thread(clips):
    """A pipelined run on the CPU decodes and converts without FFmpeg's helper threads
    (video.helpers): every core already runs a stage there. The pictures are the same."""
    reference = [r.image for r in read_all(clips.bt709)]  # FFmpeg's frame threads, swscale slices
    with ffmpeg_helpers(False), Reader(clips.bt709) as reader:
        frames = reader.frames(rgb=True)
        first = next(frames).load()
        process, thread = time.process_time(), time.thread_time()
        rest = [record.load() for record in frames]
        process, thread = time.process_time() - process, time.thread_time() - thread
    assert all(np.array_equal(r.image, image) for r, image in zip([first, *rest], reference))
    assert len(rest) == 59
    # all of the decoding's and conversion's CPU time is this thread's
    assert process - thread < 0.1 * thread + 0.005, (process, thread)
