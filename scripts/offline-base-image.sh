#!/usr/bin/env bash
# Make a Python base image from Debian packages, for build hosts with no registry access.
#
# debootstrap builds a minimal Debian rootfs (variant minbase) with python3, python3-venv
# and ca-certificates, optionally trusting an extra CA bundle (build hosts behind a TLS
# re-signing proxy), and `docker import`s it. The stage Dockerfile accepts it as
# BASE_IMAGE in place of the official python:3.11-slim-bookworm:
#
#   BASE_IMAGE=$(scripts/offline-base-image.sh --ca-bundle /etc/ssl/certs/ca-certificates.crt)
#   docker build --network host --build-arg BASE_IMAGE="$BASE_IMAGE" -f stages/Dockerfile --build-arg STAGE=ingest --target ingest .
#
# Only the image name goes to stdout; progress goes to stderr. Idempotent: when the image
# exists nothing is done (a warning says so if it was built with another suite or CA
# bundle); --force rebuilds.
# Needs root (debootstrap, chroot), debootstrap, docker, and a Debian mirror (--mirror for
# an internal one; http is fine, packages are verified with the Debian archive keyring).
set -euo pipefail

RECIPE_VERSION=1          # bump when the rootfs recipe below changes: forces a rebuild
TAG=""
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=""        # default: derived from MIRROR when it is deb.debian.org, else none
CA_BUNDLE=""
FORCE=0
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

usage() {
  cat <<EOF
usage: $0 [--tag NAME] [--suite SUITE] [--mirror URL] [--security-mirror URL]
          [--ca-bundle FILE] [--keyring FILE] [--force]

Build a minimal Debian + python3 base image with debootstrap and docker import, then
print its name (use it as BASE_IMAGE for docker build / docker buildx bake).

  --tag NAME             image name (default: cybersec-mlops-base:<suite>)
  --suite SUITE          Debian suite (default: $SUITE; its python3 must be 3.11 for the pinned wheels)
  --mirror URL           Debian mirror (default: $MIRROR)
  --security-mirror URL  debian-security mirror for the upgrade step (default: derived
                         from the default mirror; none for a custom mirror unless given)
  --ca-bundle FILE       PEM file with extra CA certificates to trust (system store and pip)
  --keyring FILE         archive keyring for debootstrap (default: $KEYRING)
  --force                rebuild even when the image exists
EOF
}

die() { echo "offline-base-image: $*" >&2; exit 1; }
say() { echo "offline-base-image: $*" >&2; }

while (($#)); do
  case "$1" in
    --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
    --suite) SUITE=${2:?--suite needs a value}; shift 2 ;;
    --mirror) MIRROR=${2:?--mirror needs a value}; shift 2 ;;
    --security-mirror) SECURITY_MIRROR=${2:?--security-mirror needs a value}; shift 2 ;;
    --ca-bundle) CA_BUNDLE=${2:?--ca-bundle needs a value}; shift 2 ;;
    --keyring) KEYRING=${2:?--keyring needs a value}; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

TAG=${TAG:-cybersec-mlops-base:$SUITE}
if [[ -z "$SECURITY_MIRROR" && "$MIRROR" == http*://deb.debian.org/debian ]]; then
  SECURITY_MIRROR=${MIRROR%/debian}/debian-security
fi

command -v docker >/dev/null || die "docker not found: install docker.io and start dockerd"
docker info >/dev/null 2>&1 || die "cannot talk to dockerd: start it (dockerd &) or check permissions"

ca_sha=none
if [[ -n "$CA_BUNDLE" ]]; then
  [[ -r "$CA_BUNDLE" ]] || die "--ca-bundle $CA_BUNDLE: file not readable"
  grep -q -- '-----BEGIN CERTIFICATE-----' "$CA_BUNDLE" || die "--ca-bundle $CA_BUNDLE: no PEM certificate in it"
  ca_sha=$(sha256sum "$CA_BUNDLE" | cut -d' ' -f1)
fi
recipe="recipe=$RECIPE_VERSION suite=$SUITE ca-sha256=$ca_sha"

if [[ $FORCE == 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  existing=$(docker image inspect --format '{{ index .Config.Labels "io.cybersec-mlops.base.recipe" }}' "$TAG")
  if [[ "$existing" == "$recipe" ]]; then
    say "$TAG exists ($recipe); nothing to do (--force rebuilds)"
  else
    say "WARNING: $TAG exists but was built as '$existing', not '$recipe'; keeping it (--force rebuilds)"
  fi
  echo "$TAG"
  exit 0
fi

[[ $(id -u) == 0 ]] || die "needs root for debootstrap and chroot (run with sudo)"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
[[ -r "$KEYRING" ]] || die "keyring $KEYRING not readable: apt-get install debian-archive-keyring or pass --keyring"

work=$(mktemp -d /tmp/offline-base.XXXXXX)
rootfs=$work/rootfs
cleanup() {
  mountpoint -q "$rootfs/proc" 2>/dev/null && umount "$rootfs/proc"
  rm -rf "$work"
}
trap cleanup EXIT

say "debootstrap $SUITE (minbase) from $MIRROR into $rootfs"
debootstrap --variant=minbase --keyring="$KEYRING" \
  --include=python3,python3-venv,python-is-python3,ca-certificates \
  "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; die "debootstrap failed (full log above)"; }

# apt sources for the image's users, and the security/updates upgrade now.
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$MIRROR" "$SUITE" "$SUITE"
  if [[ -n "$SECURITY_MIRROR" ]]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$SECURITY_MIRROR" "$SUITE"
  fi
} >"$rootfs/etc/apt/sources.list.d/debian.sources"
rm -f "$rootfs/etc/apt/sources.list"

# Keep later apt installs small too (the same rules as Debian's official slim images),
# but keep copyright files: they are the packages' licences.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
EOF

cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
say "apt-get upgrade inside the rootfs (${SUITE}-updates${SECURITY_MIRROR:+, ${SUITE}-security})"
chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c 'apt-get update -qq && apt-get -y -qq dist-upgrade' >"$work/upgrade.log" 2>&1 \
  || { tail -30 "$work/upgrade.log" >&2; die "apt-get upgrade in the rootfs failed (log above)"; }

if [[ -n "$CA_BUNDLE" ]]; then
  say "trusting the CA bundle $CA_BUNDLE (sha256 $ca_sha)"
  install -m 0644 "$CA_BUNDLE" "$rootfs/usr/local/share/ca-certificates/build-host-ca.crt"
fi
chroot "$rootfs" /usr/sbin/update-ca-certificates >"$work/ca.log" 2>&1 \
  || { cat "$work/ca.log" >&2; die "update-ca-certificates failed"; }
# pip ships its own CA list (certifi); point it at the system store so the extra CA counts.
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\ndisable-pip-version-check = true\n' \
  >"$rootfs/etc/pip.conf"
umount "$rootfs/proc"

say "cleaning caches, docs and logs"
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname" "$rootfs/etc/machine-id"
: >"$rootfs/etc/resolv.conf"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
  "$rootfs"/usr/share/lintian/*
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete

python_version=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
debian_version=$(cat "$rootfs/etc/debian_version")
say "rootfs: Debian $debian_version, Python $python_version, $(du -sh "$rootfs" | cut -f1)"

say "docker import as $TAG"
tar --numeric-owner --xattrs -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --change "LABEL org.opencontainers.image.title=cybersec-mlops-base" \
  --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase with Python $python_version (debootstrap, offline base)\"" \
  --change "LABEL org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --change "LABEL io.cybersec-mlops.base.debian-version=$debian_version" \
  --change "LABEL io.cybersec-mlops.base.python-version=$python_version" \
  --change "LABEL io.cybersec-mlops.base.recipe=\"$recipe\"" \
  --message "offline base: debootstrap $SUITE minbase + python3" \
  - "$TAG" >/dev/null
say "done: $(docker image inspect --format '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"
echo "$TAG"
