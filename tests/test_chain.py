"""The chain spec parser, option binding, the stage registry and plugins."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from videoinv.chain import Arg, Chain, StageCall, build_stages, parse_chain
from videoinv.errors import ChainError
from videoinv.models.specs import load_models
from videoinv.models.weights import WeightsError
from videoinv.pipeline.runner import Pipeline
from videoinv.pipeline.stage import Param, Stage, parse_bool
from videoinv.registry import Registry
from videoinv.video.frame import FrameRecord

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_examples() -> list[str]:
    blocks = re.findall(r"```chain\n(.*?)```", README.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_has_examples():
    assert len(readme_examples()) >= 4


@pytest.mark.parametrize("example", readme_examples())
def test_readme_examples_round_trip(example):
    chain = parse_chain(example)
    assert parse_chain(str(chain)) == chain
    if "'" not in example:  # quotes are printed as backslash escapes (where needed at all)
        assert str(chain) == example


def test_structure_of_the_main_example():
    chain = parse_chain("detect=every=5,align=smooth=3,edit=age=2|smile=1,blend=segments=mouth+eyes")
    assert [s.name for s in chain.stages] == ["detect", "align", "edit", "blend"]
    assert chain.stages[0].args == (Arg("every", ("5",)),)
    assert chain.stages[2].args == (Arg("age", ("2",)), Arg("smile", ("1",)))  # | starts a new option
    assert chain.stages[3].args == (Arg("segments", ("mouth", "eyes"), ("+",)),)


def test_quoting_and_escaping():
    chain = parse_chain(r"edit=direction='dirs/my age:v2,x.npy':note=a\,b\=c")
    args = chain.stages[0].args
    assert args[0] == Arg("direction", ("dirs/my age:v2,x.npy",))
    assert args[1] == Arg("note", ("a,b=c",))
    assert parse_chain(str(chain)) == chain


def test_whitespace_around_names_is_ignored():
    assert parse_chain(" detect = every = 5 , copy ") == parse_chain("detect=every=5,copy")


@pytest.mark.parametrize("bad, words", [
    ("", "empty"),
    ("copy,,copy", "stage 2"),
    ("copy,", "stage 2"),
    ("9lives", "bad stage name"),
    ("detect=every==5", "unexpected '='"),
    ("edit='open", "unterminated quote"),
    ("edit=x\\", "lone backslash"),
    ("a=b c=d=e", "unexpected '='"),
])
def test_syntax_errors_are_chain_errors(bad, words):
    with pytest.raises(ChainError, match=re.escape(words)):
        parse_chain(bad)


# -- hypothesis: the parser never fails with anything but its own error -----------------------
@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab1_-=,:|+'\\ \t\n=é")) | st.characters(), max_size=60))
def test_fuzz_parser_raises_only_chain_error(text):
    try:
        chain = parse_chain(text)
    except ChainError as err:
        assert "\n" not in str(err)
    else:
        assert parse_chain(str(chain)) == chain


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_@-]{0,6}", fullmatch=True)
ITEMS = st.text(max_size=8)


@st.composite
def chains(draw):
    stages = []
    for _ in range(draw(st.integers(1, 4))):
        args = []
        for i in range(draw(st.integers(0, 3))):
            items = tuple(draw(st.lists(ITEMS, min_size=1, max_size=3)))
            seps = tuple(draw(st.sampled_from("|+")) for _ in items[1:])
            key = draw(NAMES) if (i > 0 and args and args[-1].key) or draw(st.booleans()) else None
            args.append(Arg(key, items, seps))
        stages.append(StageCall(draw(NAMES), tuple(args)))
    return Chain(tuple(stages))


@settings(max_examples=400, deadline=None)
@given(chains())
def test_any_chain_prints_to_text_that_parses_back(chain):
    assert parse_chain(str(chain)) == chain


# -- resolution against a registry ------------------------------------------------------------
class Blur(Stage):
    """Blur the frame (a test stage)."""

    name = "blur"
    params = (Param("radius", int, 3, "pixels"), Param("mode", str, "box", choices=("box", "gauss")),
              Param("channels", str, ["r", "g", "b"], multiple=True), Param("fast", parse_bool, False))

    def __init__(self, radius, mode, channels, fast):
        self.options = dict(radius=radius, mode=mode, channels=channels, fast=fast)


class Tag(Stage):
    """Takes any names (like edit directions)."""

    name = "tag"
    params = (Param("strength", float, 1.0),)
    extra_keys = True

    def __init__(self, strength, extras):
        self.strength, self.extras = strength, extras


def _registry() -> Registry:
    registry = Registry(group=None)
    registry.add_stage(Blur)
    registry.add_stage(Tag)
    return registry


def test_options_bind_by_position_and_name_with_defaults():
    stages = build_stages("blur=7:gauss:fast=yes,blur=channels=r+g", _registry())
    assert stages[0].options == {"radius": 7, "mode": "gauss", "channels": ["r", "g", "b"], "fast": True}
    assert stages[1].options["channels"] == ["r", "g"] and stages[1].options["radius"] == 3


def test_copy_gives_no_stages():
    assert build_stages("copy") == []
    assert Pipeline("copy").is_identity


def test_extra_keys_are_handed_over():
    (tag,) = build_stages("tag=age=2|smile=1:strength=0.5", _registry())
    assert tag.strength == 0.5
    assert {k: v.text for k, v in tag.extras.items()} == {"age": "2", "smile": "1"}


@pytest.mark.parametrize("spec, words", [
    ("warp=1", ["unknown stage 'warp'", "blur", "copy", "tag"]),
    ("blur=size=3", ["no option 'size'", "radius, mode, channels, fast"]),
    ("blur=radius=x", ["radius", "'x'", "int"]),
    ("blur=mode=median", ["mode", "box, gauss"]),
    ("blur=1:box:r:no:9", ["at most 4 positional"]),
    ("blur=radius=1:radius=2", ["given twice"]),
    ("copy=1", ["copy takes at most 0"]),
    # a ':' inside a value split it: radius=1, then '2' taken as the next positional option
    ("blur=radius=1:2", ["blur: '2' follows radius=... without a name", "quoted (e.g. device='cuda:1')"]),
])
def test_resolution_errors_name_the_valid_choices(spec, words):
    with pytest.raises(ChainError) as info:
        build_stages(spec, _registry())
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("value", ["-2", "nan"])
def test_a_negative_feather_is_refused(value):
    # it was taken silently: a mask edge cannot be narrower than nothing
    from videoinv.registry import default_registry

    with pytest.raises(ChainError, match=re.escape(f"option feather of stage blend: '{value}' is out of range; "
                                                   "it must be 0 or more")):
        build_stages(f"blend=feather={value}", default_registry())
    assert build_stages("blend=feather=0", default_registry())[0].spec.feather == 0


@pytest.mark.parametrize("spec, words", [
    # each was taken: an internal error at the first frame (OpenCV's resize, dlib's arguments, the
    # latent smoother), or quietly odd (a negative gap, sigma or dilation, a quad of size 0)
    ("detect=size=0", "option size of stage detect: '0' is out of range; it must be 32 or more"),
    ("detect=upsample=-1", "option upsample of stage detect: '-1' is out of range; it must be 0 or more"),
    ("detect=every=0", "option every of stage detect: '0' is out of range; it must be 1 or more"),
    ("detect=max_gap=-1", "it must be 0 or more"),
    ("detect=cut=2", "option cut of stage detect: '2' is out of range; it must be -1 to 1"),
    ("detect=ids=0+-1", "option ids of stage detect: '-1' is out of range; it must be 0 or more"),
    ("align=scale=0", "option scale of stage align: '0' is out of range; it must be more than 0"),
    ("align=sigma=-1", "option sigma of stage align: '-1' is out of range"),
    ("align=fade=-2", "option fade of stage align: '-2' is out of range"),
    ("blend=dilate=-5", "option dilate of stage blend: '-5' is out of range"),
    ("invert=lookahead=0:smooth=lookahead", "option lookahead of stage invert: '0' is out of range; it must be 1 or more"),
    ("invert=batch=0", "option batch of stage invert: '0' is out of range"),
    ("synthesize=parallel=0", "option parallel of stage synthesize: '0' is out of range"),
    ("synthesize=model='random:64:8':k=6", "k=6 is not a styled conv that takes the encoder's 16x16 F; use k=4 or 5"),
    ("synthesize=model='random:64:8':k=99", "k=99 is not a styled conv"),
    ("blend=exclude=face", "blend: segments face without face leave nothing to paste"),
])
def test_options_out_of_range_are_refused_when_the_chain_is_built(spec, words):
    from videoinv.registry import default_registry

    with pytest.raises(ChainError, match=re.escape(words)):
        build_stages(spec, default_registry())


@pytest.mark.parametrize("spec, words", [
    # each ran over a video doing nothing without a word: nothing before it made its input, or
    # nothing after it used what it changed
    ("detect,align,synthesize,blend", "synthesize needs W+ codes from invert or latents before it in the chain"),
    ("detect,align,invert,blend", "blend needs rendered faces from synthesize before it"),
    ("align,invert", "align needs faces from detect or latents before it"),
    ("detect,invert", "invert needs aligned faces from align or latents before it"),
    ("annotate", "annotate needs faces from detect or latents before it"),
    ("detect,align,invert,synthesize,edit=smile=1,blend",
     "edit changes the W+ codes but no stage after it uses them: put it before synthesize"),
])
def test_a_video_chain_whose_stage_has_no_input_or_no_user_is_refused(spec, words):
    from videoinv.registry import default_registry

    with pytest.raises(ChainError, match=re.escape(words)):
        build_stages(spec, default_registry(), from_frames=True)


def test_the_model_and_device_are_one_per_chain(monkeypatch, tmp_path):
    import torch

    from videoinv.registry import default_registry

    # given once, on invert: edit and synthesize took the default model (fse) instead, and
    # align cropped at 1024 for a 64-pixel generator
    stages = build_stages("detect,align,invert=model='random:64:8':device=cpu,edit=sefa0=1,synthesize,blend",
                          default_registry(), from_frames=True)
    named = {s.name: s for s in stages}
    assert named["align"].size == 64
    assert named["invert"].models is named["synthesize"].models  # the same loaded pair, on one device
    assert named["synthesize"].models.spec == "random:64:8" and str(named["synthesize"].models.device) == "cpu"
    assert build_stages("detect,align=size=128,invert=model='random:64:8'", default_registry())[1].size == 128
    # two different ones: a W+ code of one model reached another's generator (internal errors)
    with pytest.raises(ChainError, match=re.escape("invert uses model random:64:8 but synthesize model random:64:16: "
                                                   "a chain works with one model; give it once")):
        build_stages("detect,align,invert=model='random:64:8',synthesize=model='random:64:16',blend", default_registry())
    # one model spelled two ways (a bundle's two parts) is one model, loaded once
    spelled = build_stages("detect,align,invert=model='random:64:8',synthesize=model='random:64:8+random:64:8'",
                           default_registry())
    assert spelled[2].models is spelled[3].models is load_models("random:64:8+random:64:8", "cpu")
    monkeypatch.setenv("VIDEOINV_HOME", str(tmp_path))  # no weights: the one model's are asked for
    with pytest.raises(WeightsError, match=re.escape("model fse needs psp-ffhq-encode, fse-encoder")):
        build_stages("invert=model='psp-ffhq-encode+fse-encoder',edit=model=fse:sefa0=1", default_registry())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # refused before anything goes to a GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(ChainError, match=re.escape("edit uses device cuda:1 but synthesize device cuda:0")):
        build_stages("edit=device='cuda:1':sefa0=1,synthesize=device=cuda", default_registry())


def _detect_workers() -> list[int]:
    """This process's detection worker processes that are still running."""
    import os

    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != os.getpid():
                continue
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"videoinv.faces.pool" in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_a_stage_that_fails_to_build_closes_those_built_before_it():
    # detect's worker process (and its reader thread) kept running after a later stage's bad
    # option, until the process exited
    import time

    from videoinv.registry import default_registry

    before = set(_detect_workers())
    with pytest.raises(ChainError, match="k=6 is not a styled conv"):
        build_stages("detect=workers=1,align,invert=model='random:64:8',synthesize=k=6,blend", default_registry())
    deadline = time.time() + 10
    while set(_detect_workers()) - before and time.time() < deadline:
        time.sleep(0.05)
    assert set(_detect_workers()) - before == set()


def test_entry_point_plugins_are_found_and_broken_ones_skipped(tmp_path, monkeypatch):
    """A real installed plugin: a module plus a dist-info with an entry point on sys.path."""
    (tmp_path / "vi_plug.py").write_text(textwrap.dedent('''
        from videoinv.pipeline.stage import Stage, Param

        class Negate(Stage):
            """Negate colours."""
            name = "negate"
            params = (Param("amount", float, 1.0),)
            def __init__(self, amount):
                self.amount = amount
            def process(self, batch):
                for r in batch:
                    r.image = 255 - r.image
                return batch

        def register(registry):
            registry.add_stage(Negate)

        class Shadow(Negate):
            """Tries to take over a core stage name."""
            name = "invert"

        def shadow(registry):
            registry.add_stage(Shadow)

        def broken(registry):
            raise ImportError("needs torchvision")
    '''))
    dist = tmp_path / "vi_plug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vi-plug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[videoinv.plugins]\nnegate = vi_plug:register\nfancy = vi_plug:broken\nshadow = vi_plug:shadow\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    # asked for first (the core's modules come in as names need them): still the core's, all of it first
    assert registry.stage("negate").__module__ == "vi_plug"
    assert "negate" in registry.names("stage")
    assert registry.origin("stage", "negate").startswith("plugin negate")
    # a plugin cannot shadow a core stage: the core one stays
    assert registry.origin("stage", "invert") == "core"
    assert Registry().stage("invert").__module__ == "videoinv.edit.stages"  # asked for first
    assert "fancy" in registry.failed and "torchvision" in registry.failed["fancy"]
    with pytest.raises(ChainError, match="plugin fancy failed to load"):
        registry.stage("fancy")
    import numpy as np

    pipeline = Pipeline("negate=amount=1", registry=registry, batch_size=2)
    frames = [FrameRecord(i, i, 1, np.full((2, 2, 3), 10 * i, np.uint8)) for i in range(5)]
    out = list(pipeline.run(frames))
    assert [r.index for r in out] == list(range(5))
    assert [int(r.image[0, 0, 0]) for r in out] == [255, 245, 235, 225, 215]
    sys.modules.pop("vi_plug", None)


class Delay(Stage):
    """Holds back two frames (like a smoothing look-ahead)."""

    name = "delay"

    def __init__(self):
        self.held = []

    def process(self, batch):
        self.held += batch
        out, self.held = self.held[:-2], self.held[-2:]
        return out

    def flush(self):
        out, self.held = self.held, []
        return out


class Dropper(Stage):
    name = "dropper"

    def process(self, batch):
        return batch[1:]


def test_pipeline_keeps_order_and_count_through_latency():
    registry = Registry(group=None)
    registry.add_stage(Delay)
    registry.add_stage(Dropper)
    frames = [FrameRecord(i, i, 1, image=None, source=object(), to_rgb=lambda s: None) for i in range(11)]
    out = list(Pipeline("delay,delay", registry=registry, batch_size=3).run(frames))
    assert [r.index for r in out] == list(range(11))
    with pytest.raises(RuntimeError, match="lost frames"):
        list(Pipeline("dropper", registry=registry, batch_size=3).run(frames))
