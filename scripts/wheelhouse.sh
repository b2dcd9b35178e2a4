#!/usr/bin/env bash
# Download every wheel the images install into build/wheelhouse, for builds with no index.
#
# Run where PyPI (or a mirror: PIP_INDEX_URL) is reachable, carry build/ to the
# air-gapped build host, then build as usual: when build/wheelhouse/ holds wheels, the
# Dockerfiles install from it with `pip install --no-index` (scripts/build-venv.sh), so
# `docker build --network none` works on top of the offline base image.
#
#   scripts/wheelhouse.sh                       # all lock files, linux x86_64, CPython 3.11
#   scripts/wheelhouse.sh --arch aarch64 workflows/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."

ARCH=$(uname -m)
PYVER=3.11
DEST=build/wheelhouse
PIP=${PIP:-.venv/bin/pip}

usage() {
  cat <<EOF
usage: $0 [--arch x86_64|aarch64] [--python 3.11] [--dest DIR] [LOCKFILE...]

Download the wheels of the given lock files (default: every image's requirements.txt)
for Linux/ARCH and CPython PYTHON into DIR (default: $DEST), ready for pip --no-index.
EOF
}

locks=()
while (($#)); do
  case "$1" in
    --arch) ARCH=${2:?}; shift 2 ;;
    --python) PYVER=${2:?}; shift 2 ;;
    --dest) DEST=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) locks+=("$1"); shift ;;
  esac
done
((${#locks[@]})) || locks=(stages/*/requirements.txt workflows/requirements.txt)

mkdir -p "$DEST"
args=()
for lock in "${locks[@]}"; do args+=(-r "$lock"); done
# manylinux_2_28 covers Debian bookworm (glibc 2.36); pip also accepts older manylinux tags.
"$PIP" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --implementation cp --python-version "$PYVER" \
  --platform "manylinux_2_28_$ARCH" --platform "manylinux_2_17_$ARCH" --platform "manylinux2014_$ARCH" \
  --dest "$DEST" "${args[@]}"
echo "$(find "$DEST" -name '*.whl' | wc -l) wheels, $(du -sh "$DEST" | cut -f1) in $DEST"
