#!/usr/bin/env bash
# Regenerate tests/cluster/kube/go.mod and tests/cluster/etcd/go.mod (and their
# go.sum) from the pinned versions in tests/cluster/versions.env.
#
# Why a generator: k8s.io/kubernetes requires every staging module (k8s.io/api,
# k8s.io/apiserver, ...) at v0.0.0 and maps each one to ./staging/src/... with a
# replace directive. Replace directives only count in the main module, so a
# consumer must carry its own `replace k8s.io/X => k8s.io/X v0.<minor>.<patch>`
# for each of them. The list changes between releases (1.36 added
# k8s.io/streaming and k8s.io/cri-streaming), so it is read from the real .mod
# file of the pinned release instead of being copied by hand.
# go.etcd.io/etcd/server/v3 does the same with relative paths (../api, ...).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
. "$here/versions.env"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

modfile() { # module@version -> path of its downloaded .mod file
  go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])'
}

# Modules that the real .mod both requires at v0.0.0 and replaces with a local
# ./staging path. Replaced-but-not-required ones (sample-controller,
# sample-cli-plugin) are outside the build graph and not published for every
# release, so they are left out.
k8s_staging() {
  awk '
    /^replace \(/ { inrep = 1; next }
    inrep && /^\)/ { inrep = 0; next }
    inrep && $2 == "=>" && $3 ~ /^\.\/staging\// { staged[$1] = 1; next }
    /^require \(/ { inreq = 1; next }
    inreq && /^\)/ { inreq = 0; next }
    inreq && $2 == "v0.0.0" { req[$1] = 1 }
    END { for (m in req) if (m in staged) print m }
  ' "$1" | sort
}

# Modules that a .mod replaces with a sibling directory (../api, ../client/v3).
# etcd's `replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY` lines only guard
# against importing the old module path and are left out.
relative_replaces() {
  awk '
    /^replace \(/ { inrep = 1; next }
    inrep && /^\)/ { inrep = 0; next }
    inrep && $2 == "=>" && $3 ~ /^\.\.\// { print $1; next }
    $1 == "replace" && $3 == "=>" && $4 ~ /^\.\.\// { print $2 }
  ' "$1" | sort -u
}

go_line() { awk '$1 == "go" { print $2; exit }' "$1"; }

write_kube() {
  local dir="$here/kube" mod staging_version
  rm -f "$dir/go.mod" "$dir/go.sum"
  mod="$(cd "$dir" && modfile "k8s.io/kubernetes@$K8S_VERSION")"
  staging_version="v0.${K8S_VERSION#v1.}"
  (
    cd "$dir"
    go mod init queueworker.test/cluster/kube >/dev/null 2>&1
    go mod edit -go="$(go_line "$mod")"
    # A dependency's godebug lines are ignored: copy them so the binaries run
    # with the same GODEBUG defaults as upstream's.
    while read -r kv; do go mod edit -godebug="$kv"; done < <(awk '$1 == "godebug" && $2 != "(" { print $2 }' "$mod")
    for m in $(k8s_staging "$mod"); do go mod edit -replace="$m=$m@$staging_version"; done
    go get -tool \
      "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION"
  )
  echo "gen-modules: wrote $dir/go.mod ($(k8s_staging "$mod" | wc -l) staging replaces from $mod)"
}

write_etcd() {
  local dir="$here/etcd" mod
  rm -f "$dir/go.mod" "$dir/go.sum"
  mod="$(cd "$dir" && modfile "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
  (
    cd "$dir"
    go mod init queueworker.test/cluster/etcd >/dev/null 2>&1
    go mod edit -go="$(go_line "$mod")"
    for m in $(relative_replaces "$mod"); do go mod edit -replace="$m=$m@$ETCD_VERSION"; done
    go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  )
  echo "gen-modules: wrote $dir/go.mod ($(relative_replaces "$mod" | wc -l) relative replaces from $mod)"
}

case "${1:-all}" in
  kube) write_kube ;;
  etcd) write_etcd ;;
  all) write_etcd; write_kube ;;
  *) echo "usage: $0 [all|kube|etcd]" >&2; exit 2 ;;
esac
