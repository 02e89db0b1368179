#!/usr/bin/env bash
# Everything `make test-container` needs before pytest builds and runs the image:
#   1. podman, runc, debootstrap (and podman-compose, for the compose check), from apt if
#      missing (root, or sudo);
#   2. the base image, python:3.11-slim: pulled if a registry answers would be the usual way, but
#      these machines reach no image registry, so base-image.sh builds a stand-in from the
#      Debian mirror (skipped when the image exists: cached between runs).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

missing=()
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v podman-compose >/dev/null 2>&1 || missing+=(podman-compose)
if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { echo "prepare.sh: need root to install: ${missing[*]}" >&2; exit 1; }
        SUDO=(sudo)
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq || true
    # uidmap, slirp4netns, netavark etc. come in as podman's dependencies; crun is not wanted
    # (it fails on hybrid cgroup v1/v2 hosts), runc is the runtime the tests use.
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Dockerfile's base image, python:${PYTHON_VERSION}-slim with its default version.
PYTHON_VERSION=$(sed -n 's/^ARG PYTHON_VERSION=//p' "$HERE/../Dockerfile" | head -1)
"$HERE/base-image.sh" "${PYTHON_VERSION:-3.11}"
