#!/bin/sh
# make dist: the OTP application as one package that needs no Go where one
# of its prebuilt engines fits (see erlang/build_engine.sh):
#
#   OUT/iommap-<vsn>.tar.gz
#     iommap-<vsn>/
#       src/                  the application; its app.src with the fields
#                             hex reads (files, exclude_regexps)
#       rebar.config          the pre-compile hook: sh build_engine.sh
#       build_engine.sh
#       priv/<os>-<arch>/iommap_port, one a target given
#       priv/SHA256SUMS       of those engines, as sha256sum -c reads it
#       engine/               the engine's Go sources, from which they are
#                             built (and can be built again, with Go)
#       README.md LICENSE CHANGELOG.md docs/
#
# The tarball is reproducible too: names sorted, owner 0, modes 644/755,
# every mtime that of the last commit (or SOURCE_DATE_EPOCH), gzip -n.
# SOURCE_URL, if set, is added to the links hex shows.
#
#   sh scripts/dist.sh OUT GOOS/GOARCH...
set -eu
[ $# -ge 2 ] || { echo "usage: $0 OUT GOOS/GOARCH..." >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
shift
tar=${TAR:-tar}
$tar --version 2>/dev/null | grep -q 'GNU tar' ||
  { echo "dist: needs GNU tar (set TAR, e.g. TAR=gtar)" >&2; exit 1; }
vsn=$(sed -n 's/.*{vsn, *"\([^"]*\)".*/\1/p' "$repo/erlang/src/iommap.app.src")
name=iommap-$vsn
work=$(mktemp -d "${TMPDIR:-/tmp}/iommap-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
pkg=$work/$name
mkdir -p "$pkg/src" "$pkg/priv" "$pkg/docs"

# The application.
for f in "$repo"/erlang/src/*; do
  case $f in *.app.src) ;; *) cp "$f" "$pkg/src/" ;; esac
done
if [ -d "$repo/erlang/include" ]; then cp -R "$repo/erlang/include" "$pkg/"; fi
erl -noshell -eval '
  [Src, Dst, Url] = init:get_plain_arguments(),
  {ok, [{application, iommap, Props0}]} = file:consult(Src),
  Links = proplists:get_value(links, Props0, [])
      ++ [{"Source", Url} || Url =/= ""],
  Hex = [{links, Links},
         {files, ["src", "priv", "engine", "build_engine.sh", "rebar.config",
                  "README.md", "LICENSE", "CHANGELOG.md", "docs"]},
         %% The engine a build copies or makes; the package carries the
         %% prebuilt ones only.
         {exclude_regexps, ["(^|/)priv/iommap_port(\\.tmp\\.[0-9]+)?$"]}],
  Props = lists:foldl(fun({K, _} = P, Acc) -> lists:keystore(K, 1, Acc, P) end, Props0, Hex),
  Head = "%% Made by make dist from erlang/src/iommap.app.src, with the fields hex reads.\n",
  ok = file:write_file(Dst, [Head, io_lib:format("~tp.~n", [{application, iommap, Props}])]),
  halt().' -extra "$repo/erlang/src/iommap.app.src" "$pkg/src/iommap.app.src" "${SOURCE_URL:-}"
cp "$repo/erlang/build_engine.sh" "$pkg/"
cat > "$pkg/rebar.config" <<'CONF'
%% iommap as a dependency. The pre-compile hook puts the engine in
%% priv/iommap_port: the prebuilt one for this system if its SHA-256 checks,
%% else one built from engine/ with Go (see build_engine.sh).
{erl_opts, [debug_info]}.
{deps, []}.
{pre_hooks, [{compile, "sh build_engine.sh"}]}.
%% For the maintainer only (rebar3 hex build); a project using iommap never
%% fetches it.
{project_plugins, [rebar3_hex]}.
CONF
cp "$repo/README.md" "$repo/LICENSE" "$repo/CHANGELOG.md" "$pkg/"
cp "$repo"/docs/*.md "$pkg/docs/"

# The engine's sources, then the engines built from them.
(cd "$repo" && find go.mod go.sum cmd port mmap -type f \
  \( -name go.mod -o -name go.sum -o -name PROTOCOL.md -o \( -name '*.go' ! -name '*_test.go' \) \)) |
  while read -r f; do
    mkdir -p "$pkg/engine/$(dirname "$f")"
    cp "$repo/$f" "$pkg/engine/$f"
  done
sh "$repo/scripts/engines.sh" "$pkg/engine" "$pkg/priv" "$vsn" "$@"
if command -v sha256sum >/dev/null 2>&1; then sum="sha256sum"; else sum="shasum -a 256"; fi
(cd "$pkg/priv" && $sum */iommap_port) > "$pkg/priv/SHA256SUMS"

# One tarball, the same bytes from the same tree.
find "$pkg" -type d -exec chmod 755 {} +
find "$pkg" -type f -exec chmod 644 {} +
chmod 755 "$pkg/build_engine.sh" "$pkg"/priv/*/iommap_port
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)}
(cd "$work" && find "$name" | LC_ALL=C sort > files &&
  $tar --format=ustar --no-recursion --owner=0 --group=0 --numeric-owner \
    --mtime="@$epoch" -cf - -T files | gzip -n -9 > "$out/$name.tar.gz.part")
mv -f "$out/$name.tar.gz.part" "$out/$name.tar.gz"
echo "dist: $out/$name.tar.gz ($(wc -c < "$out/$name.tar.gz" | tr -d ' ') bytes, $(go env GOVERSION))"
sed 's/^/dist:   /' "$pkg/priv/SHA256SUMS"
