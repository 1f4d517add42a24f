#!/bin/sh
# Puts the Go engine in priv/iommap_port (the rebar3 pre-compile hook).
#
#   1. A prebuilt engine for this system, priv/<os>-<arch>/iommap_port (the
#      package made by `make dist` has one for each of its eight targets),
#      is copied there if its SHA-256 is the one priv/SHA256SUMS gives it:
#      no Go is needed. If the hash differs, the build stops: a changed
#      engine is never run, nor quietly replaced by one built from source.
#   2. Otherwise, with Go, the engine is built from source: the Go module
#      is engine/ beside this script (in the package) or its parent folder
#      (in the repository).
#   3. Otherwise the build stops, naming both ways out.
#
# An argument names another priv folder (relative to where it is run): the
# repository's own rebar.config builds into <checkout>/priv when iommap is
# a git dependency.
set -e
here=$(cd "$(dirname "$0")" && pwd)
priv=${1:-$here/priv}
mkdir -p "$priv"
priv=$(cd "$priv" && pwd)
go_min=23 # Go 1.23: go.mod's go line

fail() {
  echo "iommap: $*" >&2
  exit 1
}

# The engine's version is the application's vsn, stamped in at build time.
vsn=$(sed -n 's/.*{vsn, *"\([^"]*\)".*/\1/p' "$here/src/iommap.app.src")

# GOOS and GOARCH of this machine, as `make dist` names the folders.
case $(uname -s) in
  Linux) os=linux ;; Darwin) os=darwin ;; FreeBSD) os=freebsd ;; OpenBSD) os=openbsd ;;
  *) os=$(uname -s) ;;
esac
case $(uname -m) in
  x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;;
  *) arch=$(uname -m) ;;
esac
target=$os-$arch

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  elif command -v sha256 >/dev/null 2>&1; then
    sha256 -q "$1"
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 -r "$1" | cut -d' ' -f1
  fi
}

prebuilt=$priv/$target/iommap_port
if [ -f "$prebuilt" ]; then
  sums=$priv/SHA256SUMS
  [ -f "$sums" ] || fail "$prebuilt is there but $sums is not: refusing an engine whose hash cannot be checked"
  want=$(awk -v f="$target/iommap_port" '$2 == f || $2 == "*" f { print $1 }' "$sums")
  [ -n "$want" ] || fail "$sums has no line for $target/iommap_port: refusing an engine whose hash cannot be checked"
  # The bytes checked are the bytes that will run: the copy, not the original.
  tmp=$priv/iommap_port.tmp.$$
  trap 'rm -f "$tmp"' EXIT
  cp "$prebuilt" "$tmp"
  got=$(sha256 "$tmp")
  case $got in
    [0-9a-f]*) ;;
    *) fail "no SHA-256 tool here (sha256sum, shasum, sha256 or openssl) to check $prebuilt" ;;
  esac
  if [ "$got" != "$want" ]; then
    rm -f "$priv/iommap_port"
    fail "REFUSED: the prebuilt engine $prebuilt is not the one the package was made with
  SHA-256 in SHA256SUMS: $want
  SHA-256 of the file:   $got
It was changed after the package was made, so it is not run. Get a fresh copy
of the package; or, to build the engine from source with Go 1.$go_min or later
instead, delete the folder $priv/$target."
  fi
  chmod 755 "$tmp"
  mv -f "$tmp" "$priv/iommap_port"
  echo "iommap: engine: the prebuilt one for $target (SHA-256 checked)"
  exit 0
fi

if [ -f "$here/engine/go.mod" ]; then mod=$here/engine; else mod=$here/..; fi
ways="Either use the iommap package made by \`make dist\`, which carries prebuilt
engines for linux, darwin, freebsd and openbsd on amd64 and arm64 and needs no
Go, or install Go 1.$go_min or later (https://go.dev/dl) to build the engine
from source."
if [ -f "$priv/SHA256SUMS" ]; then
  ways="This package has no prebuilt engine for $target; install Go 1.$go_min or
later (https://go.dev/dl) to build it from source."
fi
command -v go >/dev/null 2>&1 || fail "no engine for $target: no prebuilt one in $priv, and no Go to build one.
$ways"
# Go 1.21 and later fetch the toolchain go.mod asks for by themselves; an
# older one would fail on the code with errors that do not say why.
gov=$(go env GOVERSION 2>/dev/null || true)
minor=$(echo "$gov" | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -n "$minor" ] && [ "$minor" -lt 21 ]; then
  fail "$gov is too old to build the engine: no prebuilt engine for $target in $priv.
$ways"
fi
cd "$mod" && go build -ldflags "-X github.com/iommap/iommap/port.Version=$vsn" \
  -o "$priv/iommap_port" ./cmd/iommap_port
