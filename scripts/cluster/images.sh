#!/usr/bin/env bash
# Container images of the cluster tier, all built here (no registry is reachable):
# the sandbox (pause), CoreDNS, MinIO and Argo's three images from the binaries build.sh
# made, on the offline Debian base; plus the pipeline's own bake targets. Then every one
# is imported into containerd's k8s.io namespace, where the kubelet finds them.
#
#   scripts/cluster/images.sh build    # docker images (reuses what exists)
#   scripts/cluster/images.sh import   # into the running cluster's containerd
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/cluster/lib.sh
source "$here/lib.sh"

BASE_IMAGE="${BASE_IMAGE:-cybersec-mlops-base:bookworm}"
ARGO_TAG="${ARGO_VERSION}"
COREDNS_IMAGE="localhost/cluster/coredns:$COREDNS_VERSION"
MINIO_IMAGE="localhost/cluster/minio:${MINIO_VERSION##*-}"
ARGOEXEC_IMAGE="localhost/cluster/argoexec:$ARGO_TAG"
# Repository names only: the Argo kustomization sets their tag to ARGO_VERSION.
CONTROLLER_IMAGE="localhost/cluster/workflow-controller"
ARGOCLI_IMAGE="localhost/cluster/argocli"

# go_image <image> <binary path> <uid> <entrypoint json>: one Go binary on the offline base.
go_image() {
  local image="$1" binary="$2" uid="$3" entrypoint="$4"
  if docker image inspect "$image" >/dev/null 2>&1; then return; fi
  log "image $image"
  local ctx; ctx="$(mktemp -d)"
  cp "$binary" "$ctx/"
  cat >"$ctx/Dockerfile" <<EOF
FROM $BASE_IMAGE
COPY $(basename "$binary") /usr/local/bin/
USER $uid
ENTRYPOINT $entrypoint
EOF
  docker build -q -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# The pipeline's image names, from docker-bake.hcl (the one place they are defined).
pipeline_images() {
  (cd "$repo" && .venv/bin/python -c 'from workflows.images import load_bake
bake = load_bake()
for target in sorted(bake.tag_templates):
    print(bake.image(target))')
}

build_images() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
    "$repo/scripts/offline-base-image.sh" --tag "$BASE_IMAGE" --ca-bundle /etc/ssl/certs/ca-certificates.crt >/dev/null
  if ! docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1; then
    local pause; pause="$(component_dir pause "$KUBERNETES_VERSION")/bin"
    tar -C "$pause" -c pause | docker import -c 'ENTRYPOINT ["/pause"]' -c 'USER 65535' - "$PAUSE_IMAGE" >/dev/null
  fi
  go_image "$COREDNS_IMAGE" "$(component_dir coredns "$COREDNS_VERSION")/bin/coredns" 65532 '["coredns"]'
  go_image "$MINIO_IMAGE" "$(component_dir minio "$MINIO_VERSION")/bin/minio" 1000 '["minio"]'
  go_image "$ARGOEXEC_IMAGE" "$(argo_bin)/argoexec" 8737 '["argoexec"]'
  go_image "$CONTROLLER_IMAGE:$ARGO_TAG" "$(argo_bin)/workflow-controller" 8737 '["workflow-controller"]'
  go_image "$ARGOCLI_IMAGE:$ARGO_TAG" "$(argo_bin)/argo" 8737 '["argo"]'
  log "pipeline images (docker-bake.hcl targets)"
  (cd "$repo" && .venv/bin/python -m tests.images.bake --set BASE_IMAGE="$BASE_IMAGE" >&2)
}

import_images() {
  local images=("$PAUSE_IMAGE" "$COREDNS_IMAGE" "$MINIO_IMAGE" "$ARGOEXEC_IMAGE" "$CONTROLLER_IMAGE:$ARGO_TAG" "$ARGOCLI_IMAGE:$ARGO_TAG")
  mapfile -t -O "${#images[@]}" images < <(pipeline_images)
  # A stamp per image holds the docker image ID last imported: only changed ones go again.
  local stamps="$CLUSTER_STATE/containerd/imported" changed=() img id
  mkdir -p "$stamps"
  for img in "${images[@]}"; do
    id="$(docker image inspect -f '{{.Id}}' "$img")" || die "image $img is missing: run $here/images.sh build"
    [[ "$(cat "$stamps/${img//[\/:]/_}" 2>/dev/null)" == "$id" ]] || changed+=("$img")
  done
  ((${#changed[@]})) || { log "images: containerd has all ${#images[@]}"; return; }
  log "importing ${#changed[@]} of ${#images[@]} images into containerd (namespace k8s.io)"
  docker save "${changed[@]}" | ctr_k8s images import - >/dev/null
  for img in "${changed[@]}"; do docker image inspect -f '{{.Id}}' "$img" >"$stamps/${img//[\/:]/_}"; done
}

case "${1:-build}" in
  build) build_images ;;
  import) import_images ;;
  names) printf '%s\n' "COREDNS_IMAGE=$COREDNS_IMAGE" "MINIO_IMAGE=$MINIO_IMAGE" "ARGOEXEC_IMAGE=$ARGOEXEC_IMAGE" \
    "CONTROLLER_IMAGE=$CONTROLLER_IMAGE" "ARGOCLI_IMAGE=$ARGOCLI_IMAGE" ;;
  *) die "usage: $0 build|import|names" ;;
esac
