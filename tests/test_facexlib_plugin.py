"""The RetinaFace/BiSeNet plugin: our networks have the published files' layout, and the stages run
with weights in that layout (random here: no weights can be downloaded in the tests)."""

from __future__ import annotations

from collections import OrderedDict
from fractions import Fraction

import numpy as np
import pytest
import torch

import videoinv_facexlib as plugin
from videoinv import samples
from videoinv.faces.masks import SEGMENTS
from videoinv.models import weights as W
from videoinv.pipeline.runner import Pipeline
from videoinv.registry import default_registry
from videoinv.video.frame import FrameRecord
from videoinv_facexlib.nets import BiSeNet, RetinaFace, decode, nms, priors

torch.set_grad_enabled(False)


def values(module) -> int:
    return sum(v.numel() for v in module.state_dict().values() if v.dtype.is_floating_point)


def test_layouts_match_the_published_weight_files():
    assert values(BiSeNet(19)) == 13_313_088  # parameter count of facexlib's BiSeNet
    assert values(RetinaFace("mobilenet0.25")) == 433_296  # ... and of RetinaFace-MobileNet-0.25
    # the published files are these float32 values plus ~190 bytes of pickle/zip framing per
    # tensor (sizes from the registry): a missing or extra layer would not fit
    for net, name in ((BiSeNet(19), "bisenet-parsing"), (RetinaFace("mobilenet0.25"), "retinaface-mobilenet"),
                      (RetinaFace("resnet50"), "retinaface-resnet50")):
        framing = W.spec(name).size - 4 * values(net)
        assert 150 * len(net.state_dict()) < framing < 250 * len(net.state_dict()), name


def test_priors_decode_and_nms():
    anchors = priors(64, 96)
    assert anchors.shape == (2 * (8 * 12 + 4 * 6 + 2 * 3), 4)
    assert torch.allclose(anchors[0], torch.tensor([4 / 96, 4 / 64, 16 / 96, 16 / 64]))
    boxes, points = decode(torch.zeros(len(anchors), 4), torch.zeros(len(anchors), 10), anchors)
    assert torch.allclose((boxes[:, :2] + boxes[:, 2:]) / 2, anchors[:, :2])
    assert torch.allclose(points[:, 0:2], anchors[:, :2])
    kept = nms(torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.0]]), torch.tensor([0.9, 0.8, 0.7]), 0.4)
    assert kept == [0, 2]


@pytest.fixture()
def random_weights(tmp_path, monkeypatch):
    """Seeded random weights saved in the published layouts and imported into a fresh cache."""
    monkeypatch.setenv("VIDEOINV_HOME", str(tmp_path / "home"))
    plugin._retinaface.cache_clear()
    plugin._bisenet.cache_clear()
    for name, build, prefix in (("retinaface-mobilenet", lambda: RetinaFace("mobilenet0.25"), "module."),
                                ("bisenet-parsing", lambda: BiSeNet(19), "")):
        torch.manual_seed(3)
        net = build()  # PyTorch's default initialisation, seeded
        path = tmp_path / f"{name}.pth"
        torch.save(OrderedDict((prefix + k, v) for k, v in net.state_dict().items()), path)
        W.import_file(name, path)
    yield
    plugin._retinaface.cache_clear()
    plugin._bisenet.cache_clear()


def test_detector_and_parser_run_through_the_chain(random_weights):
    scene = samples.moving_face()
    records = [FrameRecord(i, i, Fraction(1, 30), image=scene.frame(i)) for i in range(3)]
    detector = default_registry().get("detector", "retinaface-mobile")(threshold=0.0)
    boxes, scores, points = detector.run(records[0].image)
    assert boxes.shape[1:] == (4,) and points.shape[1:] == (5, 2) and len(boxes) == len(scores) > 0
    assert np.isfinite(boxes).all() and (np.diff(scores) <= 0).all()
    out = list(Pipeline("detect=model=retinaface-mobile:threshold=0.5,align=size=256", batch_size=2).run(records))
    assert [r.index for r in out] == [0, 1, 2]
    parser = default_registry().get("parser", "bisenet")()
    labels = parser.labels(scene.frame(0)[100:612, 400:912])
    assert labels.shape == (512, 512) and labels.dtype == np.uint8 and labels.max() < 19
    segs = parser.segments(scene.frame(0)[100:612, 400:912], 1024)
    assert set(segs) == set(SEGMENTS) and all(m.shape == (512, 512) for m in segs.values())


def test_auto_detector_is_retinaface_on_a_gpu_when_its_weights_are_present(random_weights, monkeypatch):
    from videoinv.edit.recipe import EditOptions
    from videoinv.models import specs

    assert EditOptions(device="cpu").detector_name() == "hog"  # on the CPU dlib, in worker processes
    real = specs.pick_device
    monkeypatch.setattr(specs, "pick_device", lambda name: torch.device("cuda") if name == "cuda" else real(name))
    options = EditOptions(device="cuda", workers=2)
    assert options.detector_name() == "retinaface-mobile"  # the only RetinaFace file imported
    detect = str(options.analysis(256).stages[0])
    assert "model=retinaface-mobile" in detect and "workers=0" in detect  # on the GPU, no dlib workers
    assert EditOptions(device="cuda", detector="hog").detector_name() == "hog"
    W.path_of("retinaface-mobilenet").unlink()
    assert EditOptions(device="cuda").detector_name() == "hog"


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDEOINV_HOME", str(tmp_path / "empty"))
    plugin._retinaface.cache_clear()
    with pytest.raises(W.WeightsError, match="videoinv weights import retinaface-resnet50 FILE"):
        Pipeline("detect=model=retinaface")
    plugin._retinaface.cache_clear()
