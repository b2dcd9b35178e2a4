# One image per stage plus the submitter. The compiled workflow and the Job take their
# image names and tags from the variables below (workflows/images.py reads this file).
#   docker buildx bake                       # all six, tagged ${REGISTRY}/cybersec-mlops-<name>:${TAG}
#   TAG=1.2.0 REGISTRY=registry.example.com/sec docker buildx bake ingest

variable "REGISTRY" {
  default = "registry.local"
}

variable "TAG" {
  default = "0.1.0"
}

variable "BASE_IMAGE" {
  default = "python:3.11-slim-bookworm"
}

# Source revision for the org.opencontainers.image.revision label, e.g. REVISION=$(git rev-parse HEAD).
variable "REVISION" {
  default = "unknown"
}

variable "PLATFORMS" {
  default = "linux/amd64"
}

group "default" {
  targets = ["ingest", "silver", "train", "eval", "score", "submitter"]
}

target "_common" {
  context   = "."
  args = {
    BASE_IMAGE = "${BASE_IMAGE}"
    VERSION    = "${TAG}"
    REVISION   = "${REVISION}"
  }
  platforms = split(",", PLATFORMS)
  labels = {
    "org.opencontainers.image.source"   = "https://github.com/cybersec-mlops/cybersec-mlops-pipeline"
    "org.opencontainers.image.version"  = "${TAG}"
    "org.opencontainers.image.licenses" = "Apache-2.0"
  }
}

# The five stages share stages/Dockerfile: STAGE picks the lock file and the code, the
# build target of the same name the entrypoint.
target "_stage" {
  inherits   = ["_common"]
  dockerfile = "stages/Dockerfile"
}

target "ingest" {
  inherits = ["_stage"]
  target   = "ingest"
  args = {
    STAGE       = "ingest"
    DESCRIPTION = "Ingest network flows (Zeek, CSV presets, Parquet, synthetic) into RAW Parquet in the canonical flow schema"
  }
  tags = ["${REGISTRY}/cybersec-mlops-ingest:${TAG}"]
}

target "silver" {
  inherits = ["_stage"]
  target   = "silver"
  args = {
    STAGE       = "silver"
    DESCRIPTION = "Feature engineering and time-based train/holdout split of RAW network flows"
  }
  tags = ["${REGISTRY}/cybersec-mlops-silver:${TAG}"]
}

target "train" {
  inherits = ["_stage"]
  target   = "train"
  args = {
    STAGE       = "train"
    DESCRIPTION = "Train and calibrate the network-flow anomaly detector; track and register it in MLflow"
  }
  tags = ["${REGISTRY}/cybersec-mlops-train:${TAG}"]
}

target "eval" {
  inherits = ["_stage"]
  target   = "eval"
  args = {
    STAGE       = "eval"
    DESCRIPTION = "Score the holdout, write metrics and an HTML report, apply the quality gate and promote the champion"
  }
  tags = ["${REGISTRY}/cybersec-mlops-eval:${TAG}"]
}

target "score" {
  inherits = ["_stage"]
  target   = "score"
  args = {
    STAGE       = "score"
    DESCRIPTION = "Scores new flows with the champion model: alerts, incidents, drift"
  }
  tags = ["${REGISTRY}/cybersec-mlops-score:${TAG}"]
}

target "submitter" {
  inherits   = ["_common"]
  dockerfile = "workflows/Dockerfile"
  tags       = ["${REGISTRY}/cybersec-mlops-submitter:${TAG}"]
}
