# Shared settings of the cluster scripts (sourced, not run).
# shellcheck disable=SC2034
here="${here:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/cluster/versions.env
source "$here/versions.env"

# Binaries and images built from source live here, outside the repository.
CLUSTER_CACHE="${CLUSTER_CACHE:-/var/cache/cybersec-mlops-cluster}"
# Runtime state (etcd data, certificates, logs, containerd root) of the running cluster.
CLUSTER_STATE="${CLUSTER_STATE:-/var/lib/cybersec-mlops-cluster}"
mkdir -p "$CLUSTER_CACHE"

# One node. Its address is the pod bridge's gateway: pods reach the API server and the
# host's PostgreSQL and MLflow there, and nothing leaves the machine.
NODE_NAME=cybersec-node
BRIDGE=cmlops0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/24
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
# A fixed address for the Argo Server's Service, named in its certificate, so the host's
# argo CLI and submitter can verify it too (pods use the Service name).
ARGO_SERVER_IP=10.96.0.20
PAUSE_IMAGE=localhost/cluster/pause:3.10
KUBECONFIG_ADMIN="$CLUSTER_STATE/pki/admin.kubeconfig"
CONTAINERD_SOCK="$CLUSTER_STATE/run/containerd.sock"
# The namespace the pipeline is installed into (k8s/kustomization.yaml).
PIPELINE_NS=cybersec-mlops

log() { printf '[cluster %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# component_dir <name> <version>: where one pinned build lives in the cache.
component_dir() { echo "$CLUSTER_CACHE/$1-$2"; }

k8s_bin() { echo "$(component_dir kubernetes "$KUBERNETES_VERSION")/bin"; }
argo_bin() { echo "$(component_dir argo "$ARGO_VERSION")/bin"; }
kubectl() { "$(k8s_bin)/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# wait_for <seconds> <description> <command...>: poll until the command succeeds.
wait_for() {
  local limit="$1" what="$2"; shift 2
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - t0 < limit)) || die "$what: not ready after ${limit}s"
    sleep 1
  done
  log "$what: ready in $((SECONDS - t0)) s"
}
