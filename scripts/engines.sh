#!/bin/sh
# Builds the engine from the Go module in MODULE_DIR for each GOOS/GOARCH
# given, into OUT/<os>-<arch>/iommap_port, stamped with VSN. The same Go
# release makes the same bytes from the same sources on any machine, in any
# folder, with any build cache: no cgo, paths trimmed, no VCS stamp, no
# build id, symbols and DWARF stripped (stack traces keep their names and
# lines), and every setting that changes code given here, not taken from
# the environment. The Go release is in each binary: go version -m FILE.
#
#   sh scripts/engines.sh MODULE_DIR OUT VSN linux/amd64 darwin/arm64 ...
set -eu
[ $# -ge 4 ] || { echo "usage: $0 MODULE_DIR OUT VSN GOOS/GOARCH..." >&2; exit 2; }
mod=$1 out=$2 vsn=$3
shift 3
mkdir -p "$out"
out=$(cd "$out" && pwd)
for t in "$@"; do
  os=${t%/*} arch=${t#*/}
  mkdir -p "$out/$os-$arch"
  (cd "$mod" && env CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" GOAMD64=v1 GOARM64=v8.0 \
    GOFLAGS= GOEXPERIMENT= \
    go build -trimpath -buildvcs=false \
    -ldflags "-s -w -buildid= -X github.com/iommap/iommap/port.Version=$vsn" \
    -o "$out/$os-$arch/iommap_port" ./cmd/iommap_port)
done
