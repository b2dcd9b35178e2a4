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

target "ingest" {
  inherits   = ["_common"]
  dockerfile = "stages/ingest/Dockerfile"
  tags       = ["${REGISTRY}/cybersec-mlops-ingest:${TAG}"]
}

target "silver" {
  inherits   = ["_common"]
  dockerfile = "stages/silver/Dockerfile"
  tags       = ["${REGISTRY}/cybersec-mlops-silver:${TAG}"]
}

target "train" {
  inherits   = ["_common"]
  dockerfile = "stages/train/Dockerfile"
  tags       = ["${REGISTRY}/cybersec-mlops-train:${TAG}"]
}

target "eval" {
  inherits   = ["_common"]
  dockerfile = "stages/eval/Dockerfile"
  tags       = ["${REGISTRY}/cybersec-mlops-eval:${TAG}"]
}

target "score" {
  inherits   = ["_common"]
  dockerfile = "stages/score/Dockerfile"
  tags       = ["${REGISTRY}/cybersec-mlops-score:${TAG}"]
}

target "submitter" {
  inherits   = ["_common"]
  dockerfile = "workflows/Dockerfile"
  tags       = ["${REGISTRY}/cybersec-mlops-submitter:${TAG}"]
}
