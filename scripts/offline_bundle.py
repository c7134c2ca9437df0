"""Carry what videoinv needs beyond torch to a machine without internet access, in parts.

A GPU machine often comes with Python, a CUDA build of torch and the scientific packages, but
without PyAV, dlib or dlib's landmark model, and cannot download them. This packs them (wheels
for the target's Python version, dlib's model files, and ../shared/golden where present) into one
xz-compressed tar, cut into parts of at most --part-mib MiB each, so that every part fits a
transfer with a size limit; ``unpack`` puts the parts together on the other side, checks that
none is missing, and installs the wheels into a folder to put on PYTHONPATH:

    python scripts/offline_bundle.py pack [--python 3.12] [--part-mib 56] [--out dist/offline]
    python scripts/offline_bundle.py unpack dist/offline --to .offline
    export PYTHONPATH=.offline/site:.offline/models:$PWD:$PWD/plugins

``scripts/gpu_check.sh`` runs the unpacking itself when given the parts' folder.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import lzma
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "videoinv-offline.tar.xz"
MARK = ".offline-bundle"  # marks a folder unpacked here (replaced by the next unpacking)
PART = re.compile(re.escape(NAME) + r"\.part(\d+)of(\d+)$")
PACKAGES = ("av", "dlib-bin")  # what a CUDA torch image lacks (the rest of the dependencies it has)
MODELS = ("landmarks68", "cnn")  # dlib's model files the edit uses (the identity ones only the evaluation)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def _pinned(package: str) -> str:
    """``package==version`` as installed here (the versions the tests pass with), else unpinned."""
    try:
        return f"{package}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return package


def _download(packages: list[str], python: str, into: Path) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                           "--only-binary=:all:", "--python-version", python, "--implementation", "cp", *platforms,
                           "-d", str(into), *packages], stderr=subprocess.PIPE, text=True)
    # (local package mirrors configured on some machines make pip warn about every missing project)
    sys.stderr.writelines(line for line in done.stderr.splitlines(True) if "neither a file nor a directory" not in line)
    if done.returncode:
        sys.exit(f"offline_bundle: pip could not download {' '.join(packages)} for Python {python} (above)")


def pack(args) -> int:
    sys.path.insert(0, str(ROOT))
    from videoinv.faces import dlib_models

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheels = tmp / "wheels"
        _download([_pinned(p) for p in args.packages], args.python, wheels)
        models = tmp / "models" / "face_recognition_models"
        (models / "models").mkdir(parents=True)
        (models / "__init__.py").write_text("")  # only the files: videoinv finds them through the package's path
        for kind in MODELS:
            source = dlib_models.model_path(kind)
            shutil.copy2(source, models / "models" / source.name)
        whole = tmp / NAME
        with lzma.open(whole, "wb", preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
            tar.add(wheels, "wheels")
            tar.add(tmp / "models", "models")
            if args.golden and args.golden.is_dir():
                tar.add(args.golden, "golden")
        for part in write_parts(whole, args.out, args.part_mib):
            print(f"{part}  {part.stat().st_size / 2**20:.1f} MiB")
    return 0


def write_parts(whole: Path, out: Path, part_mib: int) -> list[Path]:
    """``whole`` cut into parts of equal size, at most ``part_mib`` MiB each, in ``out`` (where
    the parts of an earlier bundle are removed, as they would mix with these). The parts are
    written under temporary names and renamed once all are whole, so an interrupted pack leaves
    no part that looks finished."""
    out.mkdir(parents=True, exist_ok=True)
    size = whole.stat().st_size
    count = max(1, -(-size // (part_mib << 20)))
    limit = -(-size // count)
    parts = [out / f"{NAME}.part{i}of{count}" for i in range(1, count + 1)]
    written = [part.with_name(f".{part.name}.writing") for part in parts]
    try:
        with whole.open("rb") as src:
            for path in written:
                with path.open("wb") as dst:
                    shutil.copyfileobj(_Limited(src, limit), dst)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    for path in out.iterdir():
        if PART.match(path.name):
            path.unlink()
    for path, part in zip(written, parts):
        path.rename(part)
    return parts


class _Limited:
    """At most ``limit`` bytes of ``src`` as a file to read."""

    def __init__(self, src, limit: int):
        self.src, self.left = src, limit

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.src.read(n)
        self.left -= len(data)
        return data


class _Joined:
    """The parts, one after another, as one file to read."""

    def __init__(self, paths: list[Path]):
        self.paths, self.current = list(paths), None

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if self.current is None:
                if not self.paths:
                    break
                self.current = self.paths.pop(0).open("rb")
            data = self.current.read(-1 if n < 0 else n - len(out))
            if not data:
                self.current.close()
                self.current = None
            out += data
        return bytes(out)


def parts_in(folder: Path) -> list[Path]:
    """The bundle's parts in order; exits with a message naming the missing ones."""
    found: dict[int, Path] = {}
    counts = set()
    for path in sorted(folder.glob(f"{NAME}.part*")):
        match = PART.match(path.name)
        if match:
            found[int(match[1])] = path
            counts.add(int(match[2]))
    if not found:
        sys.exit(f"offline_bundle: no parts ({NAME}.partIofN) in {folder}; make them with "
                 "'python scripts/offline_bundle.py pack' and copy them there")
    if len(counts) > 1:
        sys.exit(f"offline_bundle: {folder} holds parts of different bundles ({sorted(counts)} parts); "
                 "keep the parts of one and remove the others")
    count = counts.pop()
    missing = [i for i in range(1, count + 1) if i not in found]
    if missing:
        sys.exit(f"offline_bundle: {folder} lacks part(s) {', '.join(map(str, missing))} of {count}; copy them there")
    return [found[i] for i in range(1, count + 1)]


def unpack(args) -> int:
    parts = parts_in(args.folder)
    to = args.to
    if to.exists() and any(to.iterdir()) and not (to / MARK).exists():
        sys.exit(f"offline_bundle: {to} holds other files; unpack into a new or empty folder (--to)")
    work = to.with_name(f".{to.name}.unpacking")  # renamed to ``to`` once whole
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        with lzma.open(_Joined(parts), "rb") as xz, tarfile.open(fileobj=xz, mode="r|") as tar:
            tar.extractall(work, filter="data")
    except (lzma.LZMAError, tarfile.TarError, EOFError) as err:
        shutil.rmtree(work)
        sys.exit(f"offline_bundle: the parts in {args.folder} do not make a whole bundle ({err}); copy them again")
    wheels = sorted(str(p) for p in (work / "wheels").glob("*.whl"))
    if wheels:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
                               "--no-deps", "--no-compile", "--target", str(work / "site"), *wheels])
        if done.returncode:
            shutil.rmtree(work)
            sys.exit(f"offline_bundle: pip could not install the bundle's wheels (above) for Python "
                     f"{sys.version_info.major}.{sys.version_info.minor}; pack them for it (pack --python)")
    (work / MARK).write_text("unpacked by scripts/offline_bundle.py; replaced by the next unpacking\n")
    if to.exists():
        shutil.rmtree(to)  # empty, or an earlier unpacking
    work.rename(to)
    print(f"unpacked {len(parts)} part(s) into {to}: {len(wheels)} wheel(s) in {to / 'site'}, dlib's models in "
          f"{to / 'models'}" + (f", golden vectors in {to / 'golden'}" if (to / "golden").is_dir() else ""))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="download and pack into parts")
    p.add_argument("--python", default="3.12", help="the target's Python version (its wheels' tag)")
    p.add_argument("--part-mib", type=int, default=56, help="the largest part, in MiB")
    p.add_argument("--out", type=Path, default=ROOT / "dist" / "offline")
    p.add_argument("--packages", nargs="+", default=list(PACKAGES))
    p.add_argument("--golden", type=Path, default=ROOT.parent / "shared" / "golden",
                   help="the golden vectors' folder, packed where it exists")
    p.set_defaults(run=pack)
    u = sub.add_parser("unpack", help="put the parts together and install the wheels")
    u.add_argument("folder", type=Path)
    u.add_argument("--to", type=Path, default=ROOT / ".offline")
    u.set_defaults(run=unpack)
    args = ap.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
