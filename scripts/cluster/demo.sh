#!/usr/bin/env bash
# Install the pipeline into the running cluster exactly as a user would
# (`kubectl apply -k k8s/`), let the Job submit and follow the workflow, and show it with
# the argo CLI. Exits with the Job's outcome: 0 when it completed, 1 when it failed.
#
#   scripts/cluster/demo.sh                 # the template's defaults (synthetic flows)
#   scripts/cluster/demo.sh -p gate-min-pr-auc=0.999   # extra workflow parameters for the Job
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=scripts/cluster/lib.sh
source "$here/lib.sh"

export KUBECONFIG="$KUBECONFIG_ADMIN"
argo() { "$(argo_bin)/argo" -n "$PIPELINE_NS" "$@"; }
job=cybersec-mlops-submit
t0=$SECONDS

kubectl -n "$PIPELINE_NS" delete job "$job" --ignore-not-found --wait >/dev/null
kubectl apply -k "$repo/k8s/argo-controller" >/dev/null  # the memo cache of the partitioned pipeline
# `kubectl apply -k k8s/`, with per-run parameters in the Job's args as the README says.
kubectl kustomize "$repo/k8s" | "$repo/.venv/bin/python" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
for d in docs:
    if d["kind"] == "Job" and sys.argv[1:]:
        d["spec"]["template"]["spec"]["containers"][0]["args"] = sys.argv[1:]
yaml.safe_dump_all(docs, sys.stdout)' "$@" | kubectl apply -f -
log "Job $job started; following it (argo CLI: $(argo_bin)/argo -n $PIPELINE_NS ...)"
for _ in $(seq 1 60); do argo list -o name 2>/dev/null | grep -q . && break; sleep 2; done
for _ in $(seq 1 1800); do
  status="$(kubectl -n "$PIPELINE_NS" get job "$job" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}')"
  [[ "$status" == *"Complete=True"* || "$status" == *"Failed=True"* ]] && break
  sleep 2
done
argo list
argo get @latest
kubectl -n "$PIPELINE_NS" logs "job/$job" --tail 5 || true
log "demo finished in $((SECONDS - t0)) s: Job conditions: $status"
[[ "$status" == *"Complete=True"* ]]
