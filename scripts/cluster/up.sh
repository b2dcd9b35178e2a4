#!/usr/bin/env bash
# Start a single-node Kubernetes cluster on this machine from the binaries build.sh made:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd + runc + CNI
# bridge (Debian 12 packages), kubelet, kube-proxy; then CoreDNS, MinIO and Argo Workflows
# in the cluster, and PostgreSQL and MLflow on the host behind selector-less Services.
# The pipeline itself is installed by demo.sh with `kubectl apply -k k8s/`.
#
# Needs root. Every process logs to $CLUSTER_STATE/logs/; down.sh stops them all.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/cluster/lib.sh
source "$here/lib.sh"

((EUID == 0)) || die "run as root (the kubelet, containerd and the CNI bridge need it)"
t_start=$SECONDS
run="$CLUSTER_STATE/run" logs="$CLUSTER_STATE/logs" pki="$CLUSTER_STATE/pki"
mkdir -p "$run" "$logs" "$CLUSTER_STATE/manifests"

packages() {
  local need=()
  for pair in containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
    conntrack:conntrack iptables:iptables socat:socat openssl:openssl envsubst:gettext-base; do
    local probe="${pair%%:*}" pkg="${pair##*:}"
    [[ -e "$probe" ]] || command -v "$probe" >/dev/null || need+=("$pkg")
  done
  if ((${#need[@]})); then
    log "installing ${need[*]} (Debian packages)"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# config <file>: write stdin to the file only when it differs (kube-proxy exits when its
# configuration file changes under it).
config() {
  local tmp; tmp="$(mktemp)"
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# daemon <name> <command...>: start one process in the background (once), log and pidfile.
daemon() {
  local name="$1"; shift
  if [[ -f "$run/$name.pid" ]] && kill -0 "$(cat "$run/$name.pid")" 2>/dev/null; then return; fi
  log "starting $name"
  nohup "$@" >>"$logs/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
}

network() {
  # The pod bridge exists before the first pod, so the node address is there for the API
  # server; the bridge CNI plugin adopts it. Docker's FORWARD policy is DROP: let pod
  # traffic through.
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$NODE_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  for dir in -i -o; do
    iptables -C FORWARD "$dir" "$BRIDGE" -j ACCEPT 2>/dev/null || iptables -I FORWARD "$dir" "$BRIDGE" -j ACCEPT
  done
  mkdir -p "$CLUSTER_STATE/cni"
  config "$CLUSTER_STATE/cni/10-cybersec.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "cybersec",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$CLUSTER_STATE/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

control_plane() {
  local bin; bin="$(k8s_bin)"
  local etcd; etcd="$(component_dir etcd "$ETCD_VERSION")/bin/etcd"
  daemon etcd "$etcd" --name node --data-dir "$CLUSTER_STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster node=http://127.0.0.1:2380 --quota-backend-bytes 2147483648 --log-level warn
  daemon kube-apiserver "$bin/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --advertise-address "$NODE_IP" --secure-port 6443 \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range "$SERVICE_CIDR" --authorization-mode Node,RBAC \
    --kubelet-preferred-address-types InternalIP \
    --enable-admission-plugins NodeRestriction --allow-privileged=false --v 1
  wait_for 120 "kube-apiserver" kubectl get --raw /readyz
  daemon kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$pki/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$pki/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$pki/controller-manager.kubeconfig" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1 \
    --service-cluster-ip-range "$SERVICE_CIDR" --v 1
  daemon kube-scheduler "$bin/kube-scheduler" --kubeconfig "$pki/scheduler.kubeconfig" \
    --authentication-kubeconfig "$pki/scheduler.kubeconfig" --authorization-kubeconfig "$pki/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --v 1
}

node() {
  mkdir -p "$CLUSTER_STATE/containerd"
  config "$CLUSTER_STATE/containerd/config.toml" <<EOF
version = 2
root = "$CLUSTER_STATE/containerd/root"
state = "$run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj to the kubelet's
  # -998 for sandboxes: keep scores at or above containerd's own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_STATE/cni"
EOF
  daemon containerd containerd --config "$CLUSTER_STATE/containerd/config.toml"
  wait_for 60 "containerd" ctr --address "$CONTAINERD_SOCK" version
  "$here/images.sh" import

  local bin; bin="$(k8s_bin)"
  config "$CLUSTER_STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# PID 1 here is not systemd; cgroup v1 hierarchies only (1.35 refuses them unless told).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: cluster.local
resolvConf: $CLUSTER_STATE/resolv.conf
serializeImagePulls: false
# The images are imported, never pulled: do not garbage-collect them on a full disk.
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
maxPods: 60
EOF
  # No upstream DNS: nothing outside the cluster is ever resolved.
  : >"$CLUSTER_STATE/resolv.conf"
  daemon kubelet "$bin/kubelet" --config "$CLUSTER_STATE/kubelet.yaml" \
    --kubeconfig "$pki/kubelet.kubeconfig" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --root-dir "$CLUSTER_STATE/kubelet" --v 1
  config "$CLUSTER_STATE/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $pki/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
# Leave the host's conntrack table size alone.
conntrack: {maxPerCore: 0}
EOF
  daemon kube-proxy "$bin/kube-proxy" --config "$CLUSTER_STATE/kube-proxy.yaml" --v 1
  wait_for 120 "node $NODE_NAME" kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
}

# render <template>: a manifest from scripts/cluster/manifests with the cluster's values.
render() {
  # shellcheck disable=SC2046
  export $("$here/images.sh" names) NODE_IP DNS_SERVICE_IP ARGO_VERSION ARGO_SERVER_IP
  envsubst '$COREDNS_IMAGE $MINIO_IMAGE $ARGOEXEC_IMAGE $CONTROLLER_IMAGE $ARGOCLI_IMAGE $NODE_IP $DNS_SERVICE_IP $ARGO_VERSION $ARGO_SERVER_IP' \
    <"$here/manifests/$1"
}

addons() {
  render coredns.yaml | kubectl apply -f - >/dev/null
  render minio.yaml | kubectl apply -f - >/dev/null
  # Argo's own release manifests (CRDs, controller and server with their RBAC), with our
  # images and the server's certificate; see manifests/argo/kustomization.yaml.
  local argo_src="$CLUSTER_CACHE/src/argo-module-$ARGO_VERSION"
  local kdir="$CLUSTER_STATE/manifests/argo"
  rm -rf "$kdir" && mkdir -p "$kdir"
  cp -r "$argo_src/manifests" "$kdir/release"
  render argo/kustomization.yaml >"$kdir/kustomization.yaml"
  kubectl create namespace argo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n argo create secret tls argo-server-tls --cert "$pki/argo-server.crt" --key "$pki/argo-server.key" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl apply --server-side --force-conflicts -k "$kdir" >/dev/null
  wait_for 180 "CoreDNS" kubectl -n kube-system rollout status deploy/coredns --timeout=1s
  wait_for 180 "Argo controller" kubectl -n argo rollout status deploy/workflow-controller --timeout=1s
  wait_for 180 "Argo Server" kubectl -n argo rollout status deploy/argo-server --timeout=1s
}

build() { "$here/build.sh"; }
images() { "$here/images.sh" build; }
pki() { "$here/pki.sh"; }
host_services() { "$here/host-services.sh" up; }

# Every step by default; naming some runs only those (e.g. `up.sh addons` after a change).
steps=("$@")
((${#steps[@]})) || steps=(packages build images pki network control_plane node addons host_services)
for step in "${steps[@]}"; do "$step"; done
log "cluster up in $((SECONDS - t_start)) s — export KUBECONFIG=$KUBECONFIG_ADMIN"
((${#@})) || printf 'cluster_up_seconds\t%s\n' "$((SECONDS - t_start))" >"$CLUSTER_STATE/up-time.tsv"
