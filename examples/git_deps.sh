#!/bin/sh
# The example projects again, each using iommap as a plain git dependency
# of this repository (a file:// URL at the commit checked out), as a user
# with the repository's URL would: rebar3 with {git, URL, {ref, Sha}}, mix
# with git: URL, subdir: "erlang". Each builds the engine and runs its tests.
# Only committed work is tested: a git dependency is a clone.
set -e
repo=$(cd "$(dirname "$0")/.." && pwd)
sha=$(git -C "$repo" rev-parse HEAD)
work=$(mktemp -d "${TMPDIR:-/tmp}/iommap-git-deps.XXXXXX")
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/rebar3_app"
cp -r "$repo/examples/rebar3_app/src" "$repo/examples/rebar3_app/test" "$work/rebar3_app/"
cat > "$work/rebar3_app/rebar.config" <<CONF
{deps, [{iommap, {git, "file://$repo", {ref, "$sha"}}}]}.
{erl_opts, [debug_info]}.
CONF
(cd "$work/rebar3_app" && rebar3 eunit)

mkdir -p "$work/elixir"
cp -r "$repo/examples/elixir/lib" "$repo/examples/elixir/test" "$work/elixir/"
sed "s|{:iommap, path: \"../../erlang\", manager: :rebar3}|{:iommap, git: \"file://$repo\", ref: \"$sha\", subdir: \"erlang\", manager: :rebar3}|" \
  "$repo/examples/elixir/mix.exs" > "$work/elixir/mix.exs"
grep -q 'git: "file://' "$work/elixir/mix.exs"
(cd "$work/elixir" && MIX_REBAR3=$(command -v rebar3) MIX_ENV=test mix do deps.get --only test, test)
