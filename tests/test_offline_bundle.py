"""scripts/offline_bundle.py: the parts it cuts put back together on the other side, and a
missing or foreign part named rather than half-unpacked."""

from __future__ import annotations

import importlib.util
import io
import lzma
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "offline_bundle.py"
spec = importlib.util.spec_from_file_location("offline_bundle", SCRIPT)
bundle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bundle)


def unpack(folder: Path, to: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "unpack", str(folder), "--to", str(to)],
                          capture_output=True, text=True)


@pytest.fixture
def packed(tmp_path):
    """A bundle of 2.5 MiB of incompressible files cut into parts of at most 1 MiB."""
    rng = np.random.default_rng(5)
    files = {"models/face_recognition_models/models/a.dat": rng.bytes(1_600_000),
             "golden/b.npz": rng.bytes(1_000_000), "golden/README.md": b"vectors\n"}
    whole = tmp_path / bundle.NAME
    with lzma.open(whole, "wb") as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / f"{bundle.NAME}.part1of5").write_bytes(b"an earlier bundle's part")
    parts = bundle.write_parts(whole, tmp_path / "parts", part_mib=1)
    return files, parts, whole


def test_parts_fit_the_limit_and_unpack_to_the_same_files(packed, tmp_path):
    files, parts, whole = packed
    assert [p.name for p in parts] == [f"{bundle.NAME}.part{i}of3" for i in (1, 2, 3)]
    assert sorted(p.name for p in parts[0].parent.iterdir()) == [p.name for p in parts]  # the stale one went
    sizes = [p.stat().st_size for p in parts]
    assert max(sizes) <= 1 << 20 and max(sizes) - min(sizes) <= 2  # equal parts, none over the limit
    assert b"".join(p.read_bytes() for p in parts) == whole.read_bytes()
    done = unpack(parts[0].parent, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    again = unpack(parts[0].parent, tmp_path / "out")  # an earlier unpacking is replaced
    assert again.returncode == 0, again.stderr


def test_a_missing_part_is_named_and_nothing_is_unpacked(packed, tmp_path):
    _, parts, _ = packed
    parts[1].unlink()
    done = unpack(parts[0].parent, tmp_path / "out")
    assert done.returncode != 0
    assert "lacks part(s) 2 of 3" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_damaged_part_and_a_foreign_folder_are_refused(packed, tmp_path):
    _, parts, _ = packed
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    done = unpack(parts[0].parent, tmp_path / "mine")
    assert done.returncode != 0 and "holds other files" in done.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    parts[2].write_bytes(parts[2].read_bytes()[:1000])
    done = unpack(parts[0].parent, tmp_path / "out")
    assert done.returncode != 0 and "do not make a whole bundle" in done.stderr
    assert sorted(q.name for q in tmp_path.iterdir()) == ["mine", "parts", bundle.NAME]  # nothing half-unpacked


def test_an_interrupted_pack_leaves_no_part_that_looks_whole(packed, tmp_path, monkeypatch):
    """A pack that fails while writing (a full disk) keeps the parts made before and leaves
    nothing of its own: no truncated part under a finished name, no temporary file."""
    files, parts, whole = packed
    before = {p.name: p.read_bytes() for p in parts}
    real = bundle.shutil.copyfileobj
    calls = []

    def full_disk(src, dst):
        calls.append(1)
        if len(calls) == 2:
            dst.write(src.read(1000))
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(bundle.shutil, "copyfileobj", full_disk)
    with pytest.raises(OSError):
        bundle.write_parts(whole, parts[0].parent, part_mib=2)
    assert {p.name: p.read_bytes() for p in parts[0].parent.iterdir()} == before
    done = unpack(parts[0].parent, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "golden" / "b.npz").read_bytes() == files["golden/b.npz"]


def test_wheels_that_do_not_install_are_a_one_line_error_and_leave_nothing(tmp_path):
    """A wheel pip refuses (here a damaged one) stops the unpacking with a line saying so, and
    no folder is left that a later run would take for a finished one."""
    whole = tmp_path / bundle.NAME
    with lzma.open(whole, "wb") as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        data = b"not a zip archive"
        info = tarfile.TarInfo("wheels/broken-1.0-py3-none-any.whl")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    bundle.write_parts(whole, tmp_path / "parts", part_mib=1)
    done = unpack(tmp_path / "parts", tmp_path / "out")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("offline_bundle: pip could not install")
    assert "Traceback" not in done.stderr
    assert sorted(q.name for q in tmp_path.iterdir()) == ["parts", bundle.NAME]
