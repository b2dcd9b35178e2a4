#!/usr/bin/env bash
# Certificates and kubeconfigs of the single-node cluster (the same set as Kubernetes'
# hack/local-up-cluster.sh makes): one CA, the API server's serving certificate, a client
# certificate per component with its RBAC identity, the ServiceAccount signing key, and the
# Argo Server's certificate for its Service name. Kept until `down.sh --purge`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/cluster/lib.sh
source "$here/lib.sh"

pki="$CLUSTER_STATE/pki"
mkdir -p "$pki"
cd "$pki"
[[ -f .complete ]] && exit 0

openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=cybersec-mlops-cluster-ca" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null

# cert <name> <subject> [subjectAltName]: a key and a CA-signed certificate.
cert() {
  local name="$1" subject="$2" san="${3:-}"
  openssl req -newkey rsa:2048 -nodes -subj "$subject" -keyout "$name.key" -out "$name.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n%s\n' \
    "${san:+subjectAltName=$san}" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
    -out "$name.crt" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

# kubeconfig <name>: a kubeconfig for the client certificate <name>.
kubeconfig() {
  cat >"$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    certificate-authority: $pki/ca.crt
    server: https://$NODE_IP:6443
users:
- name: $1
  user:
    client-certificate: $pki/$1.crt
    client-key: $pki/$1.key
contexts:
- name: local
  context: {cluster: local, user: $1, namespace: $PIPELINE_NS}
current-context: local
EOF
}

cert apiserver "/CN=kube-apiserver" \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$API_SERVICE_IP,IP:$NODE_IP,IP:127.0.0.1"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "DNS:$NODE_NAME,IP:$NODE_IP"
cert admin "/O=system:masters/CN=cluster-admin"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kube-proxy "/CN=system:kube-proxy"
for c in admin kubelet controller-manager scheduler kube-proxy; do kubeconfig "$c"; done
# The Argo Server's certificate names its Service, so clients verify it with ca.crt.
cert argo-server "/CN=argo-server" \
  "DNS:argo-server,DNS:argo-server.argo,DNS:argo-server.argo.svc,DNS:argo-server.argo.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$ARGO_SERVER_IP"
chmod 600 ./*.key
touch .complete
log "certificates in $pki"
