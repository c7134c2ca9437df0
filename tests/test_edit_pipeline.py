"""`videoinv edit` end to end with random models on the real-face clips: reconstruction, edit
algebra, segment-restricted edits, several faces, the latent cache, timing and audio."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import av
import numpy as np
import pytest
import torch

from videoinv import samples
from videoinv.cli import main
from videoinv.edit.directions import Direction, computed, resolve
from videoinv.edit.spec import EditSpec, Keyframes, apply_edits
from videoinv.edit.stages import to_uint8
from videoinv.faces.quad import frame_roi, uncrop
from videoinv.models.specs import load_models
from videoinv.pipeline.jobs import edit_video
from videoinv.pipeline.runner import Pipeline
from videoinv.video.reader import Reader
from videoinv.video.writer import EncodeOptions

from conftest import audio_packets_hash, read_all, video_times

MODEL = "random:64:16"
M = f"model='{MODEL}'"


@pytest.fixture(scope="session")
def small_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit")
    moving, crossing = root / "moving.mp4", root / "crossing.mp4"
    samples.write_clip(moving, samples.moving_face(640, 360), 45, audio=True)
    samples.write_clip(crossing, samples.crossing_faces(640, 360), 60, audio=True)
    return {"moving": moving, "crossing": crossing}


def run_chain(path, chain, **reader):
    with Reader(path, **reader) as r:
        records = list(r.frames())
        originals = [np.array(rec.image) for rec in records]
        return list(Pipeline(chain, batch_size=4).run(records)), originals


def frame_mask(face, shape) -> np.ndarray:
    roi = frame_roi(face.quad, shape)
    alpha = np.zeros(shape[:2], np.float32)
    x0, y0, x1, y1 = roi
    import cv2

    alpha[y0:y1, x0:x1] = uncrop(face.mask, face.quad, roi, cv2.INTER_LINEAR) * face.fade
    return alpha


def test_strength_zero_reconstructs_exactly(small_clips):
    chain = f"detect,align=size=64,invert={M},edit={M}:sefa0=0,synthesize={M}:batch=1,blend"  # one face per pass
    out, originals = run_chain(small_clips["moving"], chain)
    G = load_models(MODEL).G
    synth = next(s for s in Pipeline(chain).stages if s.name == "synthesize")
    checked = 0
    for record, original in zip(out, originals):
        for face in record.faces:
            w, feat = face.extra["w"], face.extra["F"]
            assert torch.equal(face.extra["w_edit"], w)
            expected = to_uint8(G.synthesize(w[None], feature=feat[None], k=5, noise=synth.noise_for(face.track_id)))[0]
            assert np.array_equal(face.edited, expected)
            changed = np.abs(record.image.astype(int) - original.astype(int)).max(-1) > 0
            assert not (changed & (frame_mask(face, original.shape) == 0)).any()  # only inside the mask
            assert changed.any()
            checked += 1
    assert checked == len(out) == 45


def test_a_later_edit_at_strength_zero_keeps_the_earlier_ones_correction(small_clips, tmp_path):
    """Synthesize learns from the edit stages, without asking the device, whether an edit moved
    a face's latent (and so whether the feature needs the Eq. 1 correction): a later stage at
    strength 0 must not hide an earlier stage's move."""
    path = tmp_path / "still.npy"
    np.save(path, np.random.default_rng(0).standard_normal(512).astype(np.float32))
    head, tail = f"detect,align=size=64,invert={M},edit={M}:sefa0=3", f"synthesize={M}:batch=1,blend"
    one, _ = run_chain(small_clips["moving"], f"{head},{tail}")
    two, _ = run_chain(small_clips["moving"], f"{head},edit={M}:direction='{path}':strength=0,{tail}")
    assert len(one) == len(two) == 45
    assert all(np.array_equal(a.image, b.image) for a, b in zip(one, two))
    assert all(f.extra["moved"] for r in two for f in r.faces)


def test_edit_algebra():
    torch.manual_seed(0)
    w = torch.randn(12, 512)
    a, b = Direction("a", torch.randn(512)), Direction("b", torch.randn(12, 512), scale=15.0)
    spec = lambda text: EditSpec.parse(text)  # noqa: E731
    there = apply_edits(w, [(spec("a=2"), a)], 0.0, 0)
    back = apply_edits(there, [(spec("a=-2"), a)], 0.0, 0)
    assert torch.allclose(back, w, atol=1e-5)
    both = apply_edits(w, [(spec("a=1"), a), (spec("b=1"), b)], 0.0, 0)
    summed = Direction("s", a.vector.expand(12, -1) + 15.0 * b.vector)
    assert torch.allclose(both, apply_edits(w, [(spec("s=1"), summed)], 0.0, 0), atol=1e-4)
    ranged = apply_edits(w, [(spec("a@3-5=1"), a)], 0.0, 0)
    assert torch.equal(ranged[:3], w[:3]) and torch.equal(ranged[6:], w[6:]) and not torch.equal(ranged[3:6], w[3:6])
    faded = apply_edits(w, [(spec("a=2"), a)], 0.0, 0, fade=0.5)
    assert torch.allclose(faded, apply_edits(w, [(spec("a=1"), a)], 0.0, 0))


def test_keyframes_hit_their_values():
    k = Keyframes.parse("0:0s,1.5:2s,1.5:4s,0:5s")
    assert [k.at(t, 0) for t in (0, 1, 2, 3, 4, 4.5, 5, 9)] == [0, 0.75, 1.5, 1.5, 1.5, 0.75, 0, 0]
    frames = Keyframes.parse("2:10f,4:20f")
    assert (frames.at(99.0, 5), frames.at(99.0, 15), frames.at(0.0, 30)) == (2, 3, 4)
    # two keyframes at one time are a jump, in the order given (sorting by value turned a jump
    # down from 2 to 0 at 1 s into a jump up: 0 before it, 2 after)
    jump = Keyframes.parse("2:0s,2:1s,0:1s,0:2s")
    assert [jump.at(t, 0) for t in (0.5, 0.99, 1.5)] == [2, 2, 0]
    assert [Keyframes.parse("0:1s,1:0s").at(t, 0) for t in (0, 0.5, 1)] == [1, 0.5, 0]  # any order in time
    assert EditSpec.parse("age@0-7=-2").layers == (0, 7) and str(EditSpec.parse("age@0-7=-2")) == "age@0-7=-2"
    for bad in ("smile", "smile=fast", "smile=1:2s,1:3f"):
        with pytest.raises(Exception):
            EditSpec.parse(bad)


@pytest.mark.parametrize("text", ["smile@5s-6s=1", "smile@1:00-2:00=1", "smile@x=1", "smile @ 2-=1"])
def test_a_time_where_the_layers_go_is_explained(text):
    # "@" takes W+ layers; a time range there was "bad edit ...: use NAME@4-8=STRENGTH", no word of why
    from videoinv.errors import VideoinvError

    with pytest.raises(VideoinvError, match="bad layer range .*W\\+ layers.*keyframes, e.g. smile=0:4.9s") as err:
        EditSpec.parse(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["smile=nan", "smile=-inf", "smile=0:0s,inf:2s", "smile=1e400"])
def test_a_strength_that_is_not_a_finite_number_is_refused(text):
    # it was taken: a NaN latent turns the face to garbage without a word
    from videoinv.errors import VideoinvError

    with pytest.raises(VideoinvError, match="use a finite number"):
        EditSpec.parse(text)


def test_keyframed_edit_strength_follows_time(small_clips):
    chain = f"detect,align=size=64,invert={M},edit={M}:sefa0='0:0s,3:1s',synthesize={M}"
    out, _ = run_chain(small_clips["moving"], chain)
    direction = resolve("sefa0", load_models(MODEL).G)
    for record in out[::7]:
        face = record.faces[0]
        expected = min(3.0, 3.0 * record.time) * face.fade
        delta = face.extra["w_edit"] - face.extra["w"]
        assert torch.allclose(delta, direction.delta(delta.shape[0], expected), atol=1e-4), record.index


def test_segment_restricted_edit_touches_only_the_mouth(small_clips, tmp_path):
    out_path = tmp_path / "mouth.mkv"
    assert main(["edit", str(small_clips["moving"]), "-o", str(out_path), "--model", MODEL, "--edit", "sefa0=4",
                 "--segments", "mouth", "--codec", "ffv1", "--pix-fmt", "bgr0", "-q"]) == 0
    edited, source = read_all(out_path), read_all(small_clips["moving"])
    records, _ = run_chain(small_clips["moving"], f"detect,align=size=64,invert={M},edit={M}:sefa0=4,"
                                                  f"synthesize={M},blend=segments=mouth")
    inside_changed = 0
    for rec, a, b in zip(records, source, edited):
        mask = frame_mask(rec.faces[0], a.image.shape)
        diff = np.abs(a.image.astype(int) - b.image.astype(int)).max(-1)
        assert (diff[mask == 0] == 0).all(), rec.index  # outside the dilated mouth: the source, exactly
        inside_changed += int((diff[mask > 0.5] > 0).mean() > 0.5)
    assert inside_changed >= len(records) - 2  # inside it changes (the first frames fade in)


def _yuv_planes(path) -> list[list[np.ndarray]]:
    with av.open(str(path)) as container:
        return [[np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width].copy() for p in frame.planes]
                for frame in container.decode(video=0)]


def test_pixels_away_from_the_pasted_faces_keep_the_sources_own_yuv(small_clips, tmp_path):
    out_path = tmp_path / "lossless.mp4"  # x264 at CRF 0 is lossless: what we hand it comes back
    summary = edit_video(small_clips["moving"], out_path, edits=["sefa0=4"], model=MODEL,
                         encode=EncodeOptions(codec="libx264", crf=0))
    records, _ = run_chain(small_clips["moving"], f"detect,align=size=64,invert={M},edit={M}:sefa0=4,"
                                                  f"synthesize={M},blend")
    source, edited = _yuv_planes(small_clips["moving"]), _yuv_planes(out_path)
    assert len(source) == len(edited) == len(records)
    with_face = [r for r in records if any(f.edited is not None for f in r.faces)]
    assert summary["patched"] == len(with_face) > 30 and summary["passed_through"] == len(records) - len(with_face)
    changed = 0
    for rec, a, b in zip(records, source, edited):
        away = np.ones(a[0].shape, bool)  # luma pixels more than 8 away from every face's mask
        for face in rec.faces:
            if face.edited is None:
                continue
            ys, xs = np.nonzero(frame_mask(face, a[0].shape + (3,)) > 0)
            away[max(0, ys.min() - 8):ys.max() + 9, max(0, xs.min() - 8):xs.max() + 9] = False
        assert (a[0][away] == b[0][away]).all(), rec.index
        for u, v in zip(a[1:], b[1:]):  # chroma at half size: away where all four luma pixels are
            assert (u[away[::2, ::2] & away[1::2, 1::2]] == v[away[::2, ::2] & away[1::2, 1::2]]).all(), rec.index
        changed += int(np.abs(a[0][~away].astype(int) - b[0][~away]).mean() > 2)
    assert changed >= len(with_face) - 2  # the faces themselves were edited (the first frames fade in)


def test_two_faces_get_their_own_latents_and_largest_picks_one(small_clips):
    chain = f"detect,align=size=64,invert={M},edit={M}:sefa1=2,synthesize={M}"
    out, _ = run_chain(small_clips["crossing"], chain)
    pairs = [r for r in out if len(r.faces) == 2]
    assert len(pairs) > 20
    for record in pairs:
        a, b = record.faces
        assert a.edited is not None and b.edited is not None
        assert not torch.allclose(a.extra["w"], b.extra["w"])
    largest, _ = run_chain(small_clips["crossing"], chain.replace("detect,", "detect=select=largest,"))
    assert all(len(r.faces) <= 1 for r in largest) and sum(len(r.faces) for r in largest) > 50


def test_latent_cache_gives_the_same_output_and_refuses_other_videos(small_clips, tmp_path):
    clip = small_clips["moving"]
    direct, cached, cache = tmp_path / "direct.mkv", tmp_path / "cached.mkv", tmp_path / "moving.vinv"
    common = ["--model", MODEL, "--edit", "sefa0=0:0s,3:1s", "--codec", "ffv1", "--pix-fmt", "bgr0", "-q"]
    assert main(["edit", str(clip), "-o", str(direct), *common]) == 0
    assert main(["invert", str(clip), "-o", str(cache), "--model", MODEL, "-q"]) == 0
    assert main(["edit", str(clip), "-o", str(cached), "--latents", str(cache), *common]) == 0
    a, b = read_all(direct), read_all(cached)
    assert len(a) == len(b) == 45
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    # timing and audio are the input's
    (t_in, tb_in), (t_out, tb_out) = video_times(clip), video_times(direct)
    assert len(t_in) == len(t_out)
    assert all(abs((a - t_in[0]) - (b - t_out[0])) <= max(tb_in, tb_out) for a, b in zip(t_in, t_out))
    assert audio_packets_hash(direct) == audio_packets_hash(clip)
    # a cache for another clip, or another model, is refused before any work
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(small_clips["crossing"]), "-o",
                             str(tmp_path / "x.mkv"), "--latents", str(cache), "--model", MODEL, "--edit", "sefa0=1"],
                            capture_output=True, text=True)
    # (another video: said before the model loads, so without its random-weights warning)
    assert result.returncode != 0 and "another video" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clip), "-o", str(tmp_path / "y.mkv"),
                             "--latents", str(cache), "--model", "random:64:8", "--edit", "sefa0=1"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "was made with model" in result.stderr
    # the same weights spelled otherwise (both parts named) are the same model: the cache is taken
    spelled = tmp_path / "spelled.mkv"
    assert main(["edit", str(clip), "-o", str(spelled), "--latents", str(cache), *common[2:],
                 "--model", f"{MODEL}+{MODEL}"]) == 0
    assert all(np.array_equal(x.image, y.image) for x, y in zip(read_all(spelled), b))
    # other weights under the same name (a registry file replaced since) are not
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(cache), "pt") as f:
        metadata = f.metadata()
    models = json.loads(metadata["models"])
    replaced = tmp_path / "replaced.vinv"
    save_file(load_file(str(cache)), str(replaced),
              metadata={**metadata, "models": json.dumps({**models, "generator": "0" * len(models["generator"])})})
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clip), "-o", str(tmp_path / "r.mkv"),
                             "--latents", str(replaced), "--model", MODEL, "--edit", "sefa0=1"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and result.stderr.strip().splitlines()[-1] == (
        f"videoinv: error: {replaced} was made with other weights under the name {MODEL!r} (replaced since?); "
        "invert again with the weights now in place")
    # what the cache already fixed (detection, alignment, inversion) is refused, not ignored
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clip), "-o", str(tmp_path / "z.mkv"),
                             "--latents", str(cache), "--model", MODEL, "--edit", "sefa0=1", "--every", "1",
                             "--smooth", "offline"], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"videoinv: error: --every, --smooth shape the detection and inversion that {cache} already holds: "
        "give them to 'videoinv invert' when making the cache, or drop --latents"]
    assert not any((tmp_path / name).exists() for name in ("x.mkv", "y.mkv", "z.mkv", "r.mkv"))


def test_a_latent_cache_honours_faces_and_says_which_frames_it_does_not_cover(small_clips, tmp_path):
    # --faces was ignored with --latents, and frames outside the inverted range were left
    # unedited without a word
    clip, cache = small_clips["crossing"], tmp_path / "crossing.vinv"
    assert main(["invert", str(clip), "-o", str(cache), "--model", MODEL, "--start", "10f", "--end", "40f", "-q"]) == 0

    def edit(*args):
        result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clip), "-o", str(tmp_path / "out.mp4"),
                                 "-y", "--latents", str(cache), "--model", MODEL, "--edit", "sefa0=2", "--json", *args],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout), result.stderr

    inside = ["--start", "10f", "--end", "40f"]
    every, err = edit(*inside)
    assert every["uncovered"] == 0 and "outside" not in err
    records, _ = run_chain(clip, f"latents=path='{cache}'", start="10f", end="40f")
    tracks = {f.track_id for r in records for f in r.faces}
    assert len(tracks) >= 2 and max(len(r.faces) for r in records) == 2  # the two crossing faces
    one, _ = run_chain(clip, f"latents=path='{cache}':ids={min(tracks)}", start="10f", end="40f")
    assert {f.track_id for r in one for f in r.faces} == {min(tracks)}
    largest, _ = run_chain(clip, f"latents=path='{cache}':select=largest", start="10f", end="40f")
    assert all(len(r.faces) == 1 for r in largest if any(len(x.faces) for x in records if x.index == r.index))
    summary, err = edit(*inside, "--faces", "7")
    assert summary["changed"] == 0 and "no face was edited: no track matched --faces 7" in err
    summary, err = edit()  # the whole clip: 60 frames, 30 of them inverted
    assert summary["uncovered"] == 30 and summary["changed"] <= 30
    assert f"30 of 60 frames lie outside the frames {cache} was inverted from" in err
    summary, err = edit("--start", "45f")
    assert summary["uncovered"] == summary["frames"] == 15 and summary["changed"] == 0
    assert f"no face was edited: {cache} holds no face in these frames" in err


def test_invert_warns_when_it_found_no_face_and_refuses_an_empty_range(small_clips, clips, tmp_path):
    # it wrote an empty cache without a word, even for a range past the end of the video
    def invert(clip, out, *args):
        return subprocess.run([sys.executable, "-m", "videoinv", "invert", str(clip), "-o", str(out), "--model", MODEL,
                               "--json", *args], capture_output=True, text=True)

    result = invert(clips.bt709, tmp_path / "none.vinv", "--end", "10f", "--every", "1")  # a test pattern
    assert result.returncode == 0 and json.loads(result.stdout)["faces"] == 0
    assert "the cache holds no face: no face was found in any frame" in result.stderr
    result = invert(small_clips["moving"], tmp_path / "other.vinv", "--end", "10f", "--faces", "4")
    assert result.returncode == 0 and "the cache holds no face: no track matched --faces 4" in result.stderr
    result = invert(small_clips["moving"], tmp_path / "one.vinv", "--end", "1f")  # counted in words
    assert result.returncode == 0 and "one.vinv: 1 frame, 1 face in 1 track, model" in result.stderr, result.stderr
    result = invert(small_clips["moving"], tmp_path / "past.vinv", "--start", "60s")
    # refused before the model loads (no "random weights" warning first), with the video's length
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and re.fullmatch(
        rf"videoinv: error: --start 60s is past the end of {re.escape(str(small_clips['moving']))} "
        r"\(1\.5\d\d s, 45 frames\); give a start inside the video", lines[0])
    assert not (tmp_path / "past.vinv").exists() and [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_a_start_past_the_end_is_refused_before_weights_are_asked_for(small_clips, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOINV_HOME", str(tmp_path / "empty"))  # no weights: that error used to come first
    for start in ("2s", "60f", "1:00"):
        result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(small_clips["moving"]), "-o",
                                 str(tmp_path / "out.mp4"), "--edit", "smile=1.5", "--start", start],
                                capture_output=True, text=True)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 1 and len(lines) == 1, result.stderr
        assert lines[0].startswith(f"videoinv: error: --start {start if start != '1:00' else '60s'} is past the "
                                   f"end of {small_clips['moving']} (") and "45 frames" in lines[0]
    assert list(tmp_path.glob("out*")) == []


def test_missing_weights_stop_before_decoding(small_clips, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOINV_HOME", str(tmp_path / "empty"))
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(small_clips["moving"]), "-o",
                             str(tmp_path / "out.mp4"), "--edit", "smile=1.5"], capture_output=True, text=True)
    assert result.returncode != 0
    line = result.stderr.strip().splitlines()[-1]
    assert "videoinv weights fetch psp-ffhq-encode fse-encoder fse-direction-smile" in line
    assert not (tmp_path / "out.mp4").exists()


def test_random_model_output_is_labelled(small_clips, tmp_path):
    result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(small_clips["moving"]), "-o",
                             str(tmp_path / "out.mp4"), "--model", MODEL, "--edit", "sefa0=1", "--json", "--end", "5f"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "random weights" in json.loads(result.stdout)["model"] and "random weights" in result.stderr


def test_the_summary_counts_edited_frames_and_warns_when_no_face_was_edited(small_clips, clips, tmp_path):
    def edit(clip, *args):
        result = subprocess.run([sys.executable, "-m", "videoinv", "edit", str(clip), "-o", str(tmp_path / "out.mp4"),
                                 "-y", "--model", MODEL, "--edit", "sefa0=1", "--json", "--end", "10f", *args],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout), result.stderr

    summary, err = edit(small_clips["moving"])
    assert summary["changed"] == summary["frames"] == 10 and "no face was edited" not in err
    assert "faces edited in 10 of 10 frames" in err
    # the start-up (models loading, input opening) apart from the frames, as the progress bar has it
    assert 0 < summary["setup_seconds"] < summary["seconds"]
    run = summary["seconds"] - summary["setup_seconds"]
    assert summary["fps_after_setup"] == pytest.approx(10 / run, rel=0.02) and summary["fps_after_setup"] > summary["fps"]
    summary, err = edit(small_clips["moving"], "--faces", "5")  # its one face is track 0
    assert summary["changed"] == 0 and "no face was edited: no track matched --faces 5" in err
    summary, err = edit(clips.bt709, "--every", "1")  # a test pattern: no face anywhere
    assert summary["changed"] == 0 and "no face was edited: no face was found in any frame" in err


def test_computed_directions_are_deterministic_orthonormal_and_move_the_image(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOINV_HOME", str(tmp_path))
    G = load_models(MODEL).G
    for method in ("ganspace", "sefa"):
        first = computed(G, method, samples=2000, seed=3, refresh=True)
        again = computed(G, method, samples=2000, seed=3, refresh=True)
        assert torch.equal(first["vectors"], again["vectors"])
        v = first["vectors"].double()
        assert torch.allclose(v @ v.t(), torch.eye(len(v), dtype=torch.float64), atol=1e-5)
        assert (first["scales"] > 0).all()
    direction = resolve("sefa0", G)
    w = G.mapping(torch.randn(1, 512, generator=torch.Generator().manual_seed(0)))[:, None].expand(1, G.n_latent, 512)
    base = G.synthesize(w, noise_seed=0)
    changes = [float((G.synthesize(w + direction.delta(G.n_latent, s)[None], noise_seed=0) - base).norm())
               for s in (0.5, 1, 2, 4)]
    assert 0 < changes[0] < changes[1] < changes[2] < changes[3]


@pytest.mark.slow
def test_memory_stays_flat_on_a_long_clip(tmp_path):
    # the short clip is long enough to fill the pipeline (its queues hold a bounded number of
    # frames in flight); from there on, memory must not grow with the length
    short, long = tmp_path / "short.mp4", tmp_path / "long.mp4"
    samples.write_clip(short, samples.moving_face(640, 360), 200)
    samples.write_clip(long, samples.moving_face(640, 360), 800)
    code = ("import resource\nfrom videoinv.cli import main\n"
            "main(['edit', {!r}, '-o', {!r}, '--model', 'random:64:16', '--edit', 'sefa0=2', '-q', '--preset', "
            "'ultrafast'])\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    peaks = []
    for clip in (short, long):
        out = subprocess.run([sys.executable, "-c", code.format(str(clip), str(tmp_path / f"{clip.stem}_out.mp4"))],
                             check=True, capture_output=True, text=True)
        peaks.append(int(out.stdout.strip().splitlines()[-1]))
    assert peaks[1] <= 1.15 * peaks[0], peaks


def test_a_chain_names_its_model_once(small_clips, tmp_path):
    # the model given to invert alone: edit and synthesize asked for the FFHQ weights instead,
    # and the model a latent cache was made with had to be given to every stage after it
    clip, cache = small_clips["moving"], tmp_path / "moving.vinv"
    common = ["--end", "20f", "--codec", "ffv1", "--pix-fmt", "bgr0", "-q"]

    def edit(name, chain):
        assert main(["edit", str(clip), "-o", str(tmp_path / name), "--chain", chain, *common]) == 0
        return [r.image for r in read_all(tmp_path / name)]

    everywhere = edit("everywhere.mkv", f"detect,align=size=64,invert={M},edit={M}:sefa0=3,synthesize={M},blend")
    once = edit("once.mkv", f"detect,align,invert={M},edit=sefa0=3,synthesize,blend")
    assert len(once) == 20 and all(np.array_equal(a, b) for a, b in zip(everywhere, once))
    assert sum(not np.array_equal(a, r.image) for a, r in zip(once, read_all(clip, end="20f"))) >= 15  # edited
    assert main(["invert", str(clip), "-o", str(cache), "--model", MODEL, "--end", "20f", "-q"]) == 0
    replayed = edit("replayed.mkv", f"latents=path='{cache}',edit=sefa0=3,synthesize,blend")
    explicit = edit("explicit.mkv", f"latents=path='{cache}',edit={M}:sefa0=3,synthesize={M},blend")
    assert all(np.array_equal(a, b) for a, b in zip(replayed, explicit))
    # another model after the cache, a stage out of order, or the cache of another video (whose
    # faces were pasted without a word) is refused before any work
    replay = f"latents=path='{cache}',synthesize,blend"
    for command, chain, words in [
            ("edit", f"latents=path='{cache}',synthesize=model='random:64:8',blend",
             f"latents uses model {MODEL} but synthesize model random:64:8"),
            ("edit", f"detect,align,invert={M},synthesize,edit=sefa0=3,blend", "put it before synthesize"),
            ("edit", replay, "was made from another video"), ("filter-file", replay, "was made from another video")]:
        source = small_clips["crossing"] if "another video" in words else clip
        output = ["-o", str(tmp_path / "bad.mkv")] if command == "edit" else [str(tmp_path / "bad.mkv")]
        result = subprocess.run([sys.executable, "-m", "videoinv", command, str(source), *output, "--chain", chain],
                                capture_output=True, text=True)
        assert result.returncode != 0 and words in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("videoinv: error: ")  # after the random-weights warning
        assert result.stderr.count("error") == 1 and not (tmp_path / "bad.mkv").exists()
        if "another video" in words:  # found before any model loads: the error alone
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
