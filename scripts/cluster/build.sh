#!/usr/bin/env bash
# Build the cluster tier's binaries from their published Go modules into a cache outside the
# repository, keyed by the pins in versions.env: a second run reuses what is there.
#
#   scripts/cluster/build.sh            # everything
#   scripts/cluster/build.sh argo etcd  # some components
#
# Each component is built inside a small wrapper module (go install pkg@version refuses
# modules with replace directives, and Kubernetes maps its staging modules with them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/cluster/lib.sh
source "$here/lib.sh"

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

# wrapper <dir> <go.mod body>: a fresh wrapper module in the cache's src folder.
wrapper() {
  local dir="$1" body="$2"
  mkdir -p "$dir"
  printf 'module local/cluster-build\n\ngo 1.25.0\n\n%s\n' "$body" >"$dir/go.mod"
  : >"$dir/go.sum"
}

# build <name> <version-key> <wrapper go.mod body> <ldflags> <package>...
build() {
  local name="$1" key="$2" body="$3" ldflags="$4"; shift 4
  local out; out="$(component_dir "$name" "$key")"
  if [[ -f "$out/.complete" ]]; then
    log "$name $key: cached in $out"
    return
  fi
  local src="$CLUSTER_CACHE/src/$name-$key" t0=$SECONDS
  log "$name $key: building ${*##*/} (first build takes minutes)"
  wrapper "$src" "$body"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp/bin"
  # Each package at the pinned version: a bare `go get pkg` would take the newest release.
  (cd "$src" && go get "${@/%/@$key}" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp/bin/" "$@")
  touch "$out.tmp/.complete"
  rm -rf "$out" && mv "$out.tmp" "$out"
  printf '%s\t%s\t%ss\n' "$name" "$key" "$((SECONDS - t0))" >>"$CLUSTER_CACHE/build-times.tsv"
  log "$name $key: built in $((SECONDS - t0)) s"
}

build_kubernetes() {
  local v="$KUBERNETES_VERSION" sv="$KUBERNETES_STAGING_VERSION" gomod replaces
  gomod="$(go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
  # Every ./staging replace of the release becomes the published module of the same minor.
  replaces="$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$sv"'#p' "$gomod")"
  local ld="-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1"
  ld+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$v") -X k8s.io/component-base/version.gitTreeState=clean"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
  build kubernetes "$v" "require k8s.io/kubernetes $v
replace (
$replaces
)" "$ld" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
  build etcd "$ETCD_VERSION" "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" "" \
    go.etcd.io/etcd/server/v3
  local bin; bin="$(component_dir etcd "$ETCD_VERSION")/bin"
  [[ -x "$bin/etcd" ]] || mv "$bin/v3" "$bin/etcd" 2>/dev/null || mv "$bin/server" "$bin/etcd"
}

build_coredns() {
  build coredns "$COREDNS_VERSION" "require github.com/coredns/coredns $COREDNS_VERSION" "" \
    github.com/coredns/coredns
}

build_minio() {
  build minio "$MINIO_VERSION" "require github.com/minio/minio $MINIO_VERSION" "" \
    github.com/minio/minio
}

build_argo() {
  # The Argo Server embeds the UI's build output, which the module does not carry: the
  # wrapper replaces the module by a copy holding a one-page placeholder, as Argo's own
  # Makefile does for API-only builds (STATIC_FILES=false).
  local v="$ARGO_VERSION" src="$CLUSTER_CACHE/src/argo-module-$ARGO_VERSION"
  if [[ ! -d "$src" ]]; then
    local dir; dir="$(go mod download -json "github.com/argoproj/argo-workflows/v4@$v" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
    cp -r "$dir" "$src.tmp" && chmod -R u+w "$src.tmp"
    # Upstream keeps signal_linux.go as a symlink to signal_darwin.go; module zips drop
    # symlinks, so the executor would not build for Linux without this copy.
    local osdir="$src.tmp/workflow/executor/osspecific"
    [[ -f "$osdir/signal_linux.go" ]] || cp "$osdir/signal_darwin.go" "$osdir/signal_linux.go"
    mkdir -p "$src.tmp/ui/dist/app"
    [[ -f "$src.tmp/ui/dist/app/index.html" ]] || echo 'Argo Server UI not built (API only)' >"$src.tmp/ui/dist/app/index.html"
    mv "$src.tmp" "$src"
  fi
  local ld="-X github.com/argoproj/argo-workflows/v4.version=$v"
  build argo "$v" "require github.com/argoproj/argo-workflows/v4 $v
replace github.com/argoproj/argo-workflows/v4 => $src" "$ld" \
    github.com/argoproj/argo-workflows/v4/cmd/argo \
    github.com/argoproj/argo-workflows/v4/cmd/workflow-controller \
    github.com/argoproj/argo-workflows/v4/cmd/argoexec
}

build_pause() {
  # The sandbox image's one binary, from the Kubernetes module's own source.
  local out; out="$(component_dir pause "$KUBERNETES_VERSION")"
  [[ -f "$out/.complete" ]] && return
  local dir; dir="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')"
  mkdir -p "$out/bin"
  gcc -Os -static -Wall -o "$out/bin/pause" "$dir/build/pause/linux/pause.c"
  touch "$out/.complete"
}

components=("$@")
((${#components[@]})) || components=(pause etcd kubernetes coredns minio argo)
for c in "${components[@]}"; do "build_$c"; done
