#!/usr/bin/env bash
# PostgreSQL and MLflow run on the host, as many teams already have them outside the
# cluster; pods reach them through selector-less Services (postgres, mlflow in the
# pipeline's namespace) whose EndpointSlices point at the node address. This script also
# makes the credentials (random, kept in $CLUSTER_STATE/secrets, mode 600, never printed),
# the two Secrets a user creates (README "Installing into a cluster"), MinIO's root Secret,
# the bucket, and the ConfigMap argo-server-ca with the CA the Argo Server's certificate
# is signed by.
#
#   host-services.sh up | pg-stop | pg-start | down
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/cluster/lib.sh
source "$here/lib.sh"

secrets="$CLUSTER_STATE/secrets" pgdata="$CLUSTER_STATE/postgres" mlflow_dir="$CLUSTER_STATE/mlflow"
pgbin="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
pgsock="$CLUSTER_STATE/run/pg"

# secret <name>: a random credential, made once.
secret() {
  mkdir -p "$secrets" && chmod 700 "$secrets"
  [[ -s "$secrets/$1" ]] || (umask 077 && openssl rand -hex 16 >"$secrets/$1")
  cat "$secrets/$1"
}

as_postgres() { runuser -u postgres -- "$@"; }

pg_start() {
  touch "$CLUSTER_STATE/logs/postgres.log" && chown postgres "$CLUSTER_STATE/logs/postgres.log"
  as_postgres "$pgbin/pg_ctl" -D "$pgdata" -l "$CLUSTER_STATE/logs/postgres.log" -w start >/dev/null
}

pg_stop() {
  as_postgres "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null
}

postgres_up() {
  mkdir -p "$pgsock" && chown postgres "$pgsock"
  if [[ ! -f "$pgdata/PG_VERSION" ]]; then
    log "PostgreSQL: initdb in $pgdata"
    mkdir -p "$pgdata" && chown postgres "$pgdata" && chmod 700 "$pgdata"
    as_postgres "$pgbin/initdb" -D "$pgdata" -A peer --auth-host=scram-sha-256 >/dev/null
    cat >>"$pgdata/postgresql.conf" <<EOF
listen_addresses = '$NODE_IP'
port = 5432
unix_socket_directories = '$pgsock'
EOF
    echo "host all all $POD_CIDR scram-sha-256" >>"$pgdata/pg_hba.conf"
  fi
  as_postgres "$pgbin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1 || pg_start
  local password; password="$(secret pg-password)"
  as_postgres "$pgbin/psql" -h "$pgsock" -q -v ON_ERROR_STOP=1 -v pw="$password" postgres >/dev/null <<'EOF'
SELECT 'CREATE ROLE mlops LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mlops') \gexec
ALTER ROLE mlops PASSWORD :'pw';
SELECT 'CREATE DATABASE mlops_audit OWNER mlops' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlops_audit') \gexec
EOF
}

mlflow_up() {
  local pidfile="$CLUSTER_STATE/run/mlflow.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return; fi
  mkdir -p "$mlflow_dir"
  log "starting MLflow on $NODE_IP:5000"
  # One worker and no job runner: this is a 2-core machine. No usage telemetry out of the network.
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true nohup "$repo/.venv/bin/mlflow" server \
    --host "$NODE_IP" --port 5000 --workers 1 \
    --backend-store-uri "sqlite:///$mlflow_dir/mlflow.db" --artifacts-destination "$mlflow_dir/artifacts" \
    --allowed-hosts "mlflow.$PIPELINE_NS.svc.cluster.local:5000,mlflow.$PIPELINE_NS.svc.cluster.local,$NODE_IP:5000,$NODE_IP" \
    >>"$CLUSTER_STATE/logs/mlflow.log" 2>&1 &
  echo $! >"$pidfile"
  wait_for 120 "MLflow" curl -fsS "http://$NODE_IP:5000/health"
}

cluster_objects() {
  kubectl create namespace "$PIPELINE_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  local svc
  for svc in postgres:5432 mlflow:5000; do
    kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: ${svc%%:*}, namespace: $PIPELINE_NS}
spec:
  ports: [{port: ${svc##*:}, targetPort: ${svc##*:}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${svc%%:*}-host
  namespace: $PIPELINE_NS
  labels: {kubernetes.io/service-name: ${svc%%:*}}
addressType: IPv4
ports: [{port: ${svc##*:}}]
endpoints: [{addresses: ["$NODE_IP"]}]
EOF
  done
  local minio_user=cybersec-mlops minio_password; minio_password="$(secret minio-password)"
  printf %s "$minio_user" >"$secrets/minio-user"
  kubectl -n minio create secret generic minio-root --from-literal=user="$minio_user" \
    --from-file=password=<(printf %s "$minio_password") --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$PIPELINE_NS" create secret generic cybersec-mlops-minio --from-literal=accesskey="$minio_user" \
    --from-file=secretkey=<(printf %s "$minio_password") --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$PIPELINE_NS" create secret generic cybersec-mlops-postgres --from-literal=username=mlops \
    --from-file=password=<(printf %s "$(secret pg-password)") --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl -n "$PIPELINE_NS" create configmap argo-server-ca --from-file=ca.crt="$CLUSTER_STATE/pki/ca.crt" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

bucket() {
  # From the host through the Service's cluster IP (kube-proxy's rules cover the host too).
  kubectl -n minio rollout restart deploy/minio >/dev/null 2>&1 || true
  wait_for 120 "MinIO with its credentials" kubectl -n minio rollout status deploy/minio --timeout=1s
  local ip; ip="$(kubectl -n minio get svc minio -o jsonpath='{.spec.clusterIP}')"
  MINIO_ENDPOINT="http://$ip:9000" MINIO_ACCESS_KEY="$(cat "$secrets/minio-user")" MINIO_SECRET_KEY="$(secret minio-password)" \
    "$repo/.venv/bin/python" - <<'EOF'
import os, time
import boto3
from botocore.exceptions import ClientError, EndpointConnectionError
s3 = boto3.client("s3", endpoint_url=os.environ["MINIO_ENDPOINT"], aws_access_key_id=os.environ["MINIO_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["MINIO_SECRET_KEY"], region_name="us-east-1")
for attempt in range(120):
    try:
        s3.create_bucket(Bucket="cybersec-mlops")
        break
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            break
        if attempt == 119:
            raise
    except EndpointConnectionError:
        if attempt == 119:
            raise
    time.sleep(1)
EOF
  log "bucket cybersec-mlops ready"
}

case "${1:-up}" in
  up) postgres_up; mlflow_up; cluster_objects; bucket ;;
  pg-stop) pg_stop ;;
  pg-start) pg_start ;;
  down)
    [[ -f "$CLUSTER_STATE/run/mlflow.pid" ]] && kill "$(cat "$CLUSTER_STATE/run/mlflow.pid")" 2>/dev/null || true
    rm -f "$CLUSTER_STATE/run/mlflow.pid"
    [[ -f "$pgdata/PG_VERSION" ]] && { as_postgres "$pgbin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1 && pg_stop; } || true ;;
  *) die "usage: $0 up|pg-stop|pg-start|down" ;;
esac
