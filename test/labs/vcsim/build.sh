#!/usr/bin/env bash
# Builds vcsim (test/labs/vcsim/main.go) and the govmomi benchmark peer (bench/govmomi/main.go)
# from Debian's Go toolchain and govmomi 0.24 library into .build/go/, installing the two
# packages when missing. Rebuilds only when the Go sources, the Go version or the govmomi
# package version changed (stamp next to the binaries). Prints the binary paths as
#   vcsim=<path>
#   govmomi-bench=<path>
# Fails loudly (exit 1, message on stderr) when it cannot install or build.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
out="$repo/.build/go"
packages=(golang-go golang-github-vmware-govmomi-dev)
# Debian installs Go libraries in GOPATH layout (src/github.com/vmware/govmomi) under this root.
gopath=/usr/share/gocode

die() { echo "vcsim build: $*" >&2; exit 1; }

missing=()
if ! command -v dpkg-query >/dev/null; then
  die "needs a Debian/Ubuntu host (dpkg + apt) to install ${packages[*]}"
fi
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "need root to install ${missing[*]} (or run: sudo bash test/labs/provision.sh)"
  echo "vcsim build: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install failed for: ${missing[*]}"
fi
command -v go >/dev/null || die "go is not on PATH after installing golang-go"
[ -d "$gopath/src/github.com/vmware/govmomi/simulator" ] \
  || die "govmomi's simulator package is missing under $gopath (golang-github-vmware-govmomi-dev)"

mkdir -p "$out"
# Test files may build at the same time: one builder at a time, the others then find it cached.
exec 9>"$out/.lock"
flock 9

sources=("$repo/test/labs/vcsim/main.go" "$repo/bench/govmomi/main.go")
stamp=$( {
  sha256sum "${sources[@]}" | cut -d' ' -f1
  go version
  dpkg-query -W -f='${Version}' golang-github-vmware-govmomi-dev
} | sha256sum | cut -d' ' -f1)

vcsim="$out/vcsim"
bench="$out/govmomi-bench"
if [ -x "$vcsim" ] && [ -x "$bench" ] && [ "$(cat "$out/stamp" 2>/dev/null || true)" = "$stamp" ]; then
  printf 'vcsim=%s\ngovmomi-bench=%s\n' "$vcsim" "$bench"
  exit 0
fi

# GOPATH mode: the Debian library has no go.mod and the module proxy is not an option here.
# GOCACHE inside .build keeps rebuilds warm and works without $HOME.
export GO111MODULE=off GOPATH="$gopath" GOCACHE="$out/cache" GOFLAGS=
echo "vcsim build: building vcsim and govmomi-bench ($(go version | cut -d' ' -f3))" >&2
rm -f "$out/stamp"
cd "$repo"
go build -ldflags='-s -w' -o "$vcsim.tmp" ./test/labs/vcsim || die "go build of test/labs/vcsim failed"
go build -ldflags='-s -w' -o "$bench.tmp" ./bench/govmomi || die "go build of bench/govmomi failed"
mv -f "$vcsim.tmp" "$vcsim"
mv -f "$bench.tmp" "$bench"
echo "$stamp" >"$out/stamp"
printf 'vcsim=%s\ngovmomi-bench=%s\n' "$vcsim" "$bench"
