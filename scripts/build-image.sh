#!/usr/bin/env bash
# Build the queueworker image from the repository's Dockerfile on a machine that reaches
# Debian's packages and PyPI but no container registry (docs/image.md says why each step is so).
#
#   bash scripts/build-image.sh               install the tools, build the base once, build the image
#   bash scripts/build-image.sh --run-flags   print the `podman run` flags this machine needs
#
# 1. Tools: Debian's podman (buildah inside), runc and debootstrap, installed when missing.
# 2. Base: `python:3.11-slim-bookworm` cannot be pulled, so an equivalent is made from
#    Debian packages (debootstrap minbase + python3 + python3-venv) and imported into the local
#    container storage as localhost/qw-base:bookworm-<recipe hash>. Built once; reused while
#    the recipe below is unchanged.
# 3. Image: the real Dockerfile, `--build-arg PYTHON_IMAGE=<that base>`; pip in the build stage
#    reaches PyPI through the host's network and trusts what the host's pip trusts
#    (PIP_CERT / PIP_INDEX_URL from the environment or /etc/pip.conf, build-stage ARGs).
# Prints the image's name, id and size last. Environment: QW_IMAGE (tag), QW_SUITE (Debian release).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=${QW_SUITE:-bookworm}
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -1)
IMAGE=${QW_IMAGE:-localhost/queueworker:$VERSION}
# python-is-python3: the Dockerfile runs `python -m venv`, as on the official image.
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
RECIPE="$SUITE minbase $PACKAGES slim-v1"
BASE=localhost/qw-base:$SUITE-$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)

# crun 1.8 (Debian 12) refuses a host with cgroup v1 and v2 both mounted ("cgroups in
# hybrid mode not supported"); runc runs there and everywhere else.
# The default ulimits (nofile 1048576, nproc 4194304) are above this host's hard limits,
# and raising a limit needs CAP_SYS_RESOURCE, which this sandbox does not grant: ask for
# the current hard nofile and a nproc every host here allows (50000 was refused, 32768 not).
run_flags() {
    local nofile nproc
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    [[ $nofile == unlimited || $nofile -gt 1048576 ]] && nofile=1048576
    [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
    echo "--runtime runc --ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"
}

if [[ ${1:-} == --run-flags ]]; then
    run_flags
    exit 0
fi
if [[ $# -gt 0 ]]; then
    echo "usage: $0 [--run-flags]" >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "build-image.sh: needs root (debootstrap, rootful podman)" >&2
    exit 1
fi

ensure_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if ((${#missing[@]})); then
        echo "== installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# The Debian mirror apt already uses here (deb822 or one-line sources), else the default.
debian_mirror() {
    local uri
    uri=$(grep -hsoE '^URIs: *\S+/debian/?$' /etc/apt/sources.list.d/*.sources | head -1 \
          | awk '{print $2}') || true
    [[ -n $uri ]] || uri=$(grep -hsoE '^deb +\S+/debian/? ' /etc/apt/sources.list | head -1 \
          | awk '{print $2}') || true
    echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
    if podman image exists "$BASE"; then
        echo "== base $BASE (cached)"
        return
    fi
    local root mirror
    root=$(mktemp -d /var/tmp/qw-base.XXXXXX)
    BASE_TMP=$root
    mirror=$(debian_mirror)
    echo "== base $BASE: debootstrap $SUITE from $mirror"
    nice -n 19 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root/fs" "$mirror" \
        >"$root/debootstrap.log" 2>&1 || { tail -20 "$root/debootstrap.log" >&2; return 1; }
    # What the official slim image also leaves out: apt's lists and caches, docs, man pages.
    rm -rf "$root"/fs/var/lib/apt/lists/* "$root"/fs/var/cache/apt/*.bin \
           "$root"/fs/var/cache/apt/archives/*.deb "$root"/fs/usr/share/doc/* \
           "$root"/fs/usr/share/man/* "$root"/fs/usr/share/info/* "$root"/fs/usr/share/locale/*
    tar --numeric-owner -C "$root/fs" -c . | podman import \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        --message "debootstrap $SUITE minbase + $PACKAGES" - "$BASE" >/dev/null
}

# A pip setting of the host, from the environment or /etc/pip.conf (`key = value`).
host_pip() {
    local env=$1 key=$2
    if [[ -n ${!env:-} ]]; then
        echo "${!env}"
    elif [[ -f /etc/pip.conf ]]; then
        sed -n "s/^[[:space:]]*$key[[:space:]]*=[[:space:]]*//p" /etc/pip.conf | head -1
    fi
}

build_image() {
    local flags=() cert index
    read -ra flags <<<"$(run_flags)"
    # pip in the build stage trusts what the host's pip trusts: where PyPI is reached through
    # a TLS-inspecting proxy, the host's pip is given its CA (`cert` in /etc/pip.conf) and
    # Debian's bundle in the base does not know it. The file is bind-mounted over the base's
    # bundle for the RUN steps only (a path the base has: no mount point is left in a layer).
    cert=$(host_pip PIP_CERT cert)
    if [[ -n $cert ]]; then
        flags+=(-v "$cert:/etc/ssl/certs/ca-certificates.crt:ro"
                --build-arg PIP_CERT=/etc/ssl/certs/ca-certificates.crt)
    fi
    index=$(host_pip PIP_INDEX_URL index-url)
    if [[ -n $index ]]; then
        flags+=(--build-arg "PIP_INDEX_URL=$index")
    fi
    echo "== image $IMAGE (Dockerfile, PYTHON_IMAGE=$BASE)"
    nice -n 19 podman build "${flags[@]}" --network host --layers \
        --build-arg PYTHON_IMAGE="$BASE" -t "$IMAGE" -f Dockerfile . >&2
}

BASE_TMP=""
trap 'rm -rf "$BASE_TMP"' EXIT
start=$(date +%s)
ensure_tools
build_base
build_image
# Earlier builds' images and build stages, untagged now: ~200 MB each, and the build stage's
# cache is stale whenever operator/ or worker/ changed (then pip runs again: ~15 s).
podman image prune -f >/dev/null
podman image inspect --format "image $IMAGE id {{.Id}} size {{.Size}}" "$IMAGE"
echo "built in $(($(date +%s) - start)) s"
