#!/usr/bin/env bash
# Set up a development environment: ffmpeg, jemalloc and chromium (Debian), a virtualenv in .venv, torch (only when
# missing, pinned by constraints.txt so no CUDA packages are pulled), and videoinv with extras.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test,ffmpeg,sample}

# Debian packages: ffmpeg (the tests' independent encoder/decoder) and, with WITH_CHROMIUM=1 (as
# 'make test' sets it), chromium for the test that opens the benchmark's HTML report headless
# (without it that test skips)
WITH_CHROMIUM=${WITH_CHROMIUM:-0}
APT_PACKAGES=()
command -v ffmpeg >/dev/null 2>&1 || APT_PACKAGES+=(ffmpeg)
# jemalloc: the videoinv command runs on it where it is installed (a full-size edit peaks 1 GB lower)
{ /sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null; } | grep 'libjemalloc\.so' >/dev/null || APT_PACKAGES+=(libjemalloc2)
if [ "$WITH_CHROMIUM" = 1 ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    APT_PACKAGES+=(chromium)
fi
if [ ${#APT_PACKAGES[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "setup: installing ${APT_PACKAGES[*]} (apt-get)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup: Python >= 3.10 is needed (got $("$PYTHON" --version))" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip_install() {
    # (local package mirrors configured on some machines make pip warn about every missing
    # project; those lines are noise, errors still show)
    "$VENV/bin/python" -m pip --disable-pip-version-check -q install "$@" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    echo "setup: installing torch (constraints.txt)"
    pip_install -c constraints.txt torch
fi
echo "setup: installing videoinv[$EXTRAS]"
pip_install -e ".[$EXTRAS]"
# LPIPS's linear-layer weights ship in the lpips wheel; its code needs torchvision (which would
# pull another torch), so the wheel alone is installed and videoinv reads the weight files.
pip_install --no-deps "lpips>=0.1.4"
