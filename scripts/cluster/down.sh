#!/usr/bin/env bash
# Stop the single-node cluster: every pod's containers, the node and control-plane
# processes, the host services, the bridge and kube-proxy's rules. The build cache is kept;
# --purge also removes the cluster's state (etcd data, certificates, PostgreSQL, MLflow).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/cluster/lib.sh
source "$here/lib.sh"

run="$CLUSTER_STATE/run"
stop() {
  local name="$1" pid
  [[ -f "$run/$name.pid" ]] || return 0
  pid="$(cat "$run/$name.pid")"
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $name"
  fi
  rm -f "$run/$name.pid"
}

stop kubelet
if [[ -S "$CONTAINERD_SOCK" ]]; then
  # Containers first (kubelet is gone, nobody restarts them), then their sandboxes.
  for task in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s KILL "$task" >/dev/null 2>&1 || true; done
  sleep 1
  for task in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks delete -f "$task" >/dev/null 2>&1 || true; done
  for c in $(ctr_k8s containers ls -q 2>/dev/null); do ctr_k8s containers delete "$c" >/dev/null 2>&1 || true; done
fi
stop kube-proxy
stop containerd
for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$name"; done
"$here/host-services.sh" down || true

# Mounts the kubelet and containerd left (volumes, sandboxes' shm, rootfs).
{ grep -oE "$CLUSTER_STATE/[^ ]+" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns delete "$ns" 2>/dev/null || true; done
if [[ -x "$(k8s_bin)/kube-proxy" ]]; then "$(k8s_bin)/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
for dir in -i -o; do iptables -D FORWARD "$dir" "$BRIDGE" -j ACCEPT 2>/dev/null || true; done
ip link delete "$BRIDGE" 2>/dev/null || true
rm -rf "$CLUSTER_STATE/cni/ipam"

if [[ "${1:-}" == "--purge" ]]; then
  rm -rf "$CLUSTER_STATE"
  log "removed $CLUSTER_STATE (the build cache $CLUSTER_CACHE is kept)"
fi
log "cluster down"
