#!/usr/bin/env bash
# Build a stand-in for the Dockerfile's base image (python:3.11-slim) where no image registry
# can be reached: a Debian minbase root filesystem made with debootstrap from the mirror apt
# uses, with python3, python3-venv and python-is-python3, imported into podman's storage and
# tagged docker.io/library/python:<version>-slim. Does nothing if that image exists already.
#
#   deploy/container/test/base-image.sh [PYTHON_VERSION]      (default 3.11; run as root)
#
# The stand-in differs from the official image in where python lives (/usr/bin, not
# /usr/local/bin) and in its patch release (Debian's), not in anything the Dockerfile uses.
set -euo pipefail

PYTHON_VERSION=${1:-3.11}
IMAGE=docker.io/library/python:${PYTHON_VERSION}-slim
# runc where installed: Debian's crun fails on hybrid cgroup v1/v2 hosts (as the tests do).
# WATCHDESK_PODMAN_RUNTIME overrides it ("" for podman's default).
RUNTIME=${WATCHDESK_PODMAN_RUNTIME-$(command -v runc >/dev/null 2>&1 && echo runc || true)}
PODMAN=(podman ${RUNTIME:+--runtime "$RUNTIME"})

if "${PODMAN[@]}" image exists "$IMAGE"; then
    echo "base image $IMAGE: present"
    exit 0
fi

# The mirror and suite that apt installs python3 from, e.g. "http://deb.debian.org/debian bookworm".
read -r MIRROR SUITE < <(apt-cache policy python3 | awk '$2 ~ /^https?:/ && $3 ~ /\/main$/ {sub("/main$", "", $3); print $2, $3; exit}')
if [[ -z ${MIRROR:-} || -z ${SUITE:-} ]]; then
    echo "base-image.sh: cannot find the Debian mirror of python3 in 'apt-cache policy python3'" >&2
    exit 1
fi
DEBIAN_PYTHON=$(apt-cache show --no-all-versions python3 | awk '/^Version:/ {print $2; exit}')
case $DEBIAN_PYTHON in
    "$PYTHON_VERSION".*) ;;
    *) echo "base-image.sh: $SUITE has python3 $DEBIAN_PYTHON, not $PYTHON_VERSION" >&2; exit 1 ;;
esac

ROOTFS=$(mktemp -d /var/tmp/watchdesk-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "base image $IMAGE: debootstrap $SUITE from $MIRROR (python3 $DEBIAN_PYTHON)"
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || { tail -20 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"
# Slim, as the official image: no apt lists, caches, docs or man pages.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
tar -C "$ROOTFS" -c . | "${PODMAN[@]}" import --quiet \
    --change 'CMD ["python3"]' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$IMAGE" >/dev/null
echo "base image $IMAGE: imported"
