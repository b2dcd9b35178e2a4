#!/bin/sh
# Create the image's virtualenv with exactly the pinned packages of one lock file.
#
# Runs inside the builder stage of every Dockerfile (stages/Dockerfile, workflows/Dockerfile):
#   sh /build/build-venv.sh /build/requirements.txt
# Optional inputs copied from the repository's git-ignored build/ folder next to it:
#   /build/ca/*.crt       extra CA certificates for pip (a TLS re-signing proxy); the offline
#                         base image trusts its CA already (scripts/offline-base-image.sh)
#   /build/wheelhouse/    wheels to install from with --no-index (air-gapped hosts, made by
#                         scripts/wheelhouse.sh); without it pip uses PyPI or $PIP_INDEX_URL
# Wheels only (no compilers in the image), no dependency resolution (the lock file is the
# full closure), then `pip check`. Test suites, C headers, Arrow Flight and pip itself are
# removed: the runtime image needs none of them.
set -eu

requirements=${1:?usage: build-venv.sh REQUIREMENTS [VENV]}
venv=${2:-/opt/venv}
here=$(dirname "$0")

python3 -m venv "$venv"
py="$venv/bin/python"

set -- --no-cache-dir --no-input --disable-pip-version-check --progress-bar off \
  --no-deps --only-binary=:all: --require-virtualenv
if ls "$here"/ca/*.crt >/dev/null 2>&1; then
  cat /etc/ssl/certs/ca-certificates.crt "$here"/ca/*.crt >"$here/pip-ca.pem"
  export PIP_CERT="$here/pip-ca.pem"
  echo "build-venv: trusting $(ls "$here"/ca/*.crt | wc -l) extra CA file(s) from build/ca"
fi
if ls "$here"/wheelhouse/*.whl >/dev/null 2>&1; then
  set -- "$@" --no-index --find-links "$here/wheelhouse"
  echo "build-venv: installing from build/wheelhouse only (no index)"
fi
[ -n "${PIP_INDEX_URL:-}" ] || unset PIP_INDEX_URL

"$py" -m pip install "$@" -r "$requirements"
"$py" -m pip check

site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for pkg in numpy pandas pyarrow scipy sklearn skops matplotlib; do
  if [ -d "$site/$pkg" ]; then find "$site/$pkg" -depth -type d -name tests -exec rm -rf {} +; fi
done
rm -rf "$site/pyarrow/include" "$site/pyarrow/src" "$site"/pyarrow/_pyarrow_cpp_tests.*
# Arrow Flight (a gRPC client/server, 30 MB) is linked only by pyarrow.flight, which no
# image imports: less to ship and less attack surface. `import pyarrow.flight` fails.
rm -f "$site"/pyarrow/libarrow_flight.so* "$site"/pyarrow/libarrow_python_flight.so* \
  "$site"/pyarrow/_flight.*
"$py" -m pip uninstall --yes --quiet pip setuptools
echo "build-venv: $(du -sh "$venv" | cut -f1) in $venv"
