#!/bin/sh
# make test-dist: the package made by make dist, used as someone without Go
# would use it. In a temporary folder, removed whatever happens:
#   1. its contents: the eight engines, their SHA256SUMS, no built engine
#      or beam, the app.src hex needs;
#   2. reproducible: linux/amd64 and darwin/arm64 (one of each system
#      family and arch, to keep CI short; the other six are built the same
#      way) built again from the package's own engine/ sources, in another
#      folder, with an empty build cache: the same bytes as SHA256SUMS;
#   3. with a PATH that has no go (GOROOT, GOPATH unset): the rebar3 and the
#      mix example built against it and their tests run, on the prebuilt
#      engine for this machine;
#   4. an engine with one byte changed is refused with a clear error, even
#      with Go at hand; no engine and no Go stops with one message naming
#      both ways out.
#
#   sh scripts/test_dist.sh PACKAGE.tar.gz
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(mktemp -d "${TMPDIR:-/tmp}/iommap-test-dist.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
say() { echo "test-dist: $*"; }
die() { echo "test-dist: FAILED: $*" >&2; exit 1; }

tar -xzf "$tarball" -C "$work"
pkg=$(echo "$work"/iommap-*)
vsn=${pkg##*/iommap-}
case $(uname -s) in Linux) os=linux ;; Darwin) os=darwin ;; FreeBSD) os=freebsd ;; OpenBSD) os=openbsd ;; *) os=unknown ;; esac
case $(uname -m) in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch=unknown ;; esac
host=$os-$arch

say "1. contents of $(basename "$tarball")"
for f in rebar.config build_engine.sh src/iommap.app.src src/iommap.erl engine/go.mod engine/cmd/iommap_port/main.go priv/SHA256SUMS LICENSE; do
  [ -f "$pkg/$f" ] || die "$f is missing"
done
[ "$(ls "$pkg"/priv/*/iommap_port | wc -l)" -eq 8 ] || die "not eight engines: $(ls "$pkg/priv")"
[ "$(wc -l < "$pkg/priv/SHA256SUMS")" -eq 8 ] || die "SHA256SUMS has not eight lines"
(cd "$pkg/priv" && sha256sum -c --quiet SHA256SUMS) || die "an engine does not match SHA256SUMS"
[ ! -e "$pkg/priv/iommap_port" ] || die "priv/iommap_port (a built engine) is in the package"
[ -z "$(find "$pkg" -name '*.beam' -o -name '_build' -o -name '*_test.go')" ] || die "built files or tests in the package"
[ -f "$pkg/priv/$host/iommap_port" ] || die "no prebuilt engine for this machine ($host)"
[ "$("$pkg/priv/$host/iommap_port" -version)" = "iommap_port $vsn protocol $(sed -n 's/^const ProtocolVersion = //p' "$pkg/engine/port/server.go")" ] ||
  die "the $host engine says $("$pkg/priv/$host/iommap_port" -version), not version $vsn"
if [ "$arch" = amd64 ] && command -v qemu-aarch64-static >/dev/null; then
  [ "$(qemu-aarch64-static "$pkg/priv/$os-arm64/iommap_port" -version)" = "$("$pkg/priv/$host/iommap_port" -version)" ] ||
    die "the $os-arm64 engine, run under qemu, does not say what the $host one says"
fi
erl -noshell -eval '
  [F] = init:get_plain_arguments(),
  {ok, [{application, iommap, P}]} = file:consult(F),
  Need = [description, vsn, licenses, links, files],
  case [K || K <- Need, not lists:keymember(K, 1, P)] of
      [] -> halt(0);
      Missing -> io:format("app.src lacks ~p~n", [Missing]), halt(1)
  end.' -extra "$pkg/src/iommap.app.src" || die "the app.src lacks what hex needs"

say "2. linux/amd64 and darwin/arm64 again, from the package's engine/, empty build cache"
GOCACHE=$work/gocache sh "$repo/scripts/engines.sh" "$pkg/engine" "$work/again" "$vsn" linux/amd64 darwin/arm64
for t in linux-amd64 darwin-arm64; do
  want=$(awk -v f="$t/iommap_port" '$2 == f { print $1 }' "$pkg/priv/SHA256SUMS")
  got=$(sha256sum "$work/again/$t/iommap_port" | cut -d' ' -f1)
  [ "$got" = "$want" ] || die "$t built again is $got, the package's is $want: not reproducible"
  say "   $t: $got, both times"
done
chmod -R u+w "$work/gocache" && rm -rf "$work/gocache" "$work/again"

# A PATH with everything but go: a folder of PATH that holds go is replaced
# by a folder of links to all it holds but go and gofmt.
nogo_path=
i=0
IFS=:
for d in $PATH; do
  [ -n "$d" ] || continue
  if [ -e "$d/go" ]; then
    i=$((i + 1))
    mkdir -p "$work/nogo$i"
    for f in "$d"/*; do
      case ${f##*/} in go | gofmt) ;; *) ln -s "$f" "$work/nogo$i/" ;; esac
    done
    d=$work/nogo$i
  fi
  nogo_path=${nogo_path:+$nogo_path:}$d
done
unset IFS
nogo() { env -u GOROOT -u GOPATH -u GOTOOLCHAIN -u GOFLAGS PATH="$nogo_path" "$@"; }
nogo sh -c '! command -v go' >/dev/null || die "go is still on the PATH meant to have none"

say "3. the examples against the package, with no go on the PATH"
app=$work/rebar3_app
mkdir -p "$app/_checkouts"
cp -R "$repo/examples/rebar3_app/src" "$repo/examples/rebar3_app/test" "$app/"
cp -R "$pkg" "$app/_checkouts/iommap"
printf '{deps, [iommap]}.\n{erl_opts, [debug_info]}.\n' > "$app/rebar.config"
(cd "$app" && nogo rebar3 eunit) || die "the rebar3 example against the package"
cmp -s "$app/_checkouts/iommap/priv/iommap_port" "$pkg/priv/$host/iommap_port" ||
  die "the rebar3 example did not get the prebuilt $host engine"
ex=$work/elixir
mkdir -p "$ex"
cp -R "$repo/examples/elixir/lib" "$repo/examples/elixir/test" "$ex/"
sed "s|{:iommap, path: \"../../erlang\", manager: :rebar3}|{:iommap, path: \"$pkg\", manager: :rebar3}|" \
  "$repo/examples/elixir/mix.exs" > "$ex/mix.exs"
grep -q "path: \"$pkg\"" "$ex/mix.exs" || die "examples/elixir/mix.exs no longer has the line this test rewrites"
(cd "$ex" && nogo env MIX_REBAR3="$(command -v rebar3)" MIX_ENV=test mix test) || die "the mix example against the package"
cmp -s "$pkg/priv/iommap_port" "$pkg/priv/$host/iommap_port" || die "the mix example did not get the prebuilt $host engine"

say "4. a changed engine is refused, even with Go on the PATH"
bad=$work/tampered
cp -R "$pkg" "$bad"
rm -f "$bad/priv/iommap_port"
f=$bad/priv/$host/iommap_port
b=$(od -An -tu1 -j 4096 -N1 "$f" | tr -d ' ')
printf "\\$(printf %03o $((b ^ 255)))" | dd of="$f" bs=1 seek=4096 conv=notrunc 2>/dev/null
cmp -s "$f" "$pkg/priv/$host/iommap_port" && die "the byte was not changed"
command -v go >/dev/null || die "this step needs go on the PATH"
if sh "$bad/build_engine.sh" > "$work/out" 2>&1; then die "build_engine.sh took a changed engine"; fi
grep -q "REFUSED: the prebuilt engine .*$host/iommap_port is not the one the package was made with" "$work/out" ||
  { cat "$work/out"; die "not the refusal message"; }
[ ! -e "$bad/priv/iommap_port" ] || die "a refused engine left priv/iommap_port"
rm -rf "$bad/_build"
mkdir -p "$work/app2/_checkouts" && cp -R "$app/src" "$app/rebar.config" "$work/app2/" && mv "$bad" "$work/app2/_checkouts/iommap"
if (cd "$work/app2" && rebar3 compile) > "$work/out" 2>&1; then die "rebar3 compile took a changed engine"; fi
grep -q "REFUSED" "$work/out" || { cat "$work/out"; die "rebar3 did not show the refusal"; }
sed -n '/REFUSED/,/SHA-256 of the file/s/^/   /p' "$work/out"

say "   no prebuilt engine and no Go: one message, both ways out"
none=$work/none
cp -R "$pkg" "$none" && rm -rf "$none/priv/$host" "$none/priv/iommap_port"
if nogo sh "$none/build_engine.sh" > "$work/out" 2>&1; then die "built an engine with neither a prebuilt one nor Go"; fi
grep -q "no engine for $host" "$work/out" && grep -q "install Go 1" "$work/out" || { cat "$work/out"; die "not the message"; }
if nogo sh "$repo/erlang/build_engine.sh" "$work/priv" > "$work/out" 2>&1; then die "the repository's hook built with no Go"; fi
grep -q "make dist" "$work/out" && grep -q "install Go 1" "$work/out" || { cat "$work/out"; die "not the message naming both ways"; }
sed 's/^/   /' "$work/out"
say "ok"
