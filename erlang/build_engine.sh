#!/bin/sh
# Builds the Go engine into priv/iommap_port (rebar3 pre-compile hook).
# The Go module is the parent of this folder. An argument names another
# priv folder (relative to where it is run): the repository's own
# rebar.config builds into <checkout>/priv when iommap is a git dependency.
set -e
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v go >/dev/null 2>&1; then
  echo "iommap: the Go toolchain (go) is needed to build the engine; install Go 1.26 or later" >&2
  exit 1
fi
# The engine's version is the application's vsn, stamped in at build time.
vsn=$(sed -n 's/.*{vsn, *"\([^"]*\)".*/\1/p' "$here/src/iommap.app.src")
priv=${1:-$here/priv}
mkdir -p "$priv"
priv=$(cd "$priv" && pwd)
cd "$here/.." && go build -ldflags "-X github.com/iommap/iommap/port.Version=$vsn" \
  -o "$priv/iommap_port" ./cmd/iommap_port
