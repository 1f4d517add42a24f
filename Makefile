# iommap: memory-mapped file I/O for Erlang/Elixir through a Go port program.
#   make demo    build, then map a real file and show what it does
#   make test    every test: Go (race detector, fuzz corpus), the end-to-end
#                protocol test, EUnit and Common Test through rebar3
#   make bench   iommap against file:pread/pwrite on a raw fd, same run
#                (BENCH_FILE_VM=1: the file side in a VM of its own)
#   make docs    edoc of the Erlang API into erlang/doc/
#   make soak    2 minutes of mixed load (SOAK_SECONDS to change), with figures
#   make dist    the package: the application with prebuilt engines for the
#                eight targets and their SHA256SUMS, in _dist/ (needs no Go
#                where one fits; see erlang/build_engine.sh)
# Missing tools (Erlang/OTP, rebar3, qemu-user-static) are installed from
# Debian with apt-get when we are root; otherwise the exact packages to
# install are printed.

GO      ?= go
REBAR3  ?= rebar3
ENGINE  := erlang/priv/iommap_port
ERL_PKGS := erlang-nox erlang-dev erlang-eunit erlang-common-test erlang-dialyzer erlang-tools rebar3 elixir
VSN     := $(shell sed -n 's/.*{vsn, *"\([^"]*\)".*/\1/p' erlang/src/iommap.app.src)
PACKAGE := _dist/iommap-$(VSN).tar.gz
GO_SRC  := $(shell find cmd port mmap -name '*.go' -not -name '*_test.go') go.mod go.sum

# The systems the NIF package supports, each on amd64 and arm64: make test
# builds the engine, vets it and compiles its tests for every one, so a
# change that breaks a platform fails here (they run only on Linux here).
CROSS   := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 freebsd/amd64 freebsd/arm64 openbsd/amd64 openbsd/arm64
# Built as make dist builds the engines (no cgo, paths trimmed): what we
# ship is what is checked, and the standard library compiled for each
# target once serves test-cross, test-arm64 and dist.
SHIP_ENV := CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

.PHONY: all build demo test test-core test-ship test-go test-e2e test-erlang test-examples test-cross test-arm64 test-dist dist check bench soak docs deps clean

all: build

deps:
	@command -v $(GO) >/dev/null || { echo "iommap: Go 1.23+ is needed (https://go.dev/dl)"; exit 1; }
	@if ! command -v erl >/dev/null || ! command -v $(REBAR3) >/dev/null || ! command -v mix >/dev/null \
	    || ! erl -noshell -eval 'case [A || A <- [common_test, eunit, dialyzer, tools], code:lib_dir(A) =:= {error, bad_name}] of [] -> halt(0); _ -> halt(1) end.' >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "iommap: installing Erlang/OTP and rebar3 from Debian"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(ERL_PKGS) >/dev/null; \
	  else \
	    echo "iommap: please install: $(ERL_PKGS)"; exit 1; \
	  fi; \
	fi
	@if ! command -v qemu-aarch64-static >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "iommap: installing qemu-user-static from Debian (make test-arm64)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null; \
	  else \
	    echo "iommap: please install: qemu-user-static"; exit 1; \
	  fi; \
	fi
	@# The package has the kernel start arm64 programs through qemu (binfmt_misc);
	@# systemd does it after the install, and without systemd we do it here.
	@bm=/proc/sys/fs/binfmt_misc; conf=/usr/lib/binfmt.d/qemu-aarch64.conf; \
	if [ ! -e $$bm/qemu-aarch64 ] && [ -f $$conf ] && [ "$$(id -u)" = 0 ]; then \
	  echo "iommap: registering qemu-aarch64 with binfmt_misc ($$conf)"; \
	  [ -e $$bm/register ] || mount -t binfmt_misc binfmt_misc $$bm; \
	  cat $$conf > $$bm/register; \
	fi

$(ENGINE): $(GO_SRC) erlang/src/iommap.app.src
	sh erlang/build_engine.sh

build: deps $(ENGINE)
	cd erlang && $(REBAR3) compile

demo: build
	erlc -o examples examples/demo.erl
	erl -noshell -pa erlang/_build/default/lib/iommap/ebin -pa examples -eval 'demo:main(), halt().'

# make test is both halves; .ci/run runs it. test-core: this machine's
# build through every test (about 4 minutes on 2 cores with an empty Go
# build cache, 1 warm). test-ship: the eight targets, arm64 under qemu and
# the package (8 to 10 minutes with an empty cache, most of it compiling
# the standard library eight times; 2 warm).
test: deps test-core test-ship
test-core: deps test-go test-e2e test-erlang check test-examples
test-ship: deps test-cross test-arm64 test-dist

test-go:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./mmap ./port

test-cross:
	@set -e; for t in $(CROSS); do \
	  os=$${t%/*}; arch=$${t#*/}; echo "cross: $$t"; \
	  export $(SHIP_ENV) GOOS=$$os GOARCH=$$arch; \
	  $(GO) build -o /dev/null ./cmd/iommap_port; \
	  $(GO) vet ./...; \
	  for p in ./mmap ./port ./test; do $(GO) test -c -o /dev/null $$p; done; \
	done

test-e2e: $(ENGINE)
	$(GO) test -count=1 ./test/...

# What we ship for arm64, run under qemu-user: the Go tests, and the
# end-to-end test, whose engine the kernel starts through qemu (binfmt_misc,
# see deps). IOMMAP_QEMU=1 skips the few tests that need what qemu-user does
# not do as a kernel does, each saying what (mmap/emulation_test.go).
test-arm64:
	IOMMAP_QEMU=1 GOARCH=arm64 $(SHIP_ENV) $(GO) test -count=1 -exec qemu-aarch64-static ./port/ ./mmap/
	@mkdir -p _build/arm64 && GOARCH=arm64 $(SHIP_ENV) $(GO) build -o _build/arm64/iommap_port ./cmd/iommap_port
	@_build/arm64/iommap_port -version >/dev/null 2>&1 || { \
	  echo "test-arm64: this kernel cannot start arm64 programs (binfmt_misc has no qemu-aarch64): run make deps as root"; exit 1; }
	IOMMAP_QEMU=1 GOARCH=arm64 $(SHIP_ENV) $(GO) test -count=1 -exec qemu-aarch64-static ./test/

# The package. Its engines are the same bytes from the same sources with the
# same Go release (scripts/engines.sh); so is the tarball.
dist: deps
	sh scripts/dist.sh _dist $(CROSS)

# The package used without Go, its engines built again, a changed one
# refused (scripts/test_dist.sh).
test-dist: dist
	sh scripts/test_dist.sh $(PACKAGE)

# The read suites run again with direct reads off, so the engine's read path
# is tested as thoroughly as the direct one. Then all of EUnit again on
# socket lanes (a pool of 4; lanes are off by default), direct reads off so
# that reads take the lanes too.
DIRECT_OFF_EUNIT := iommap_api_tests,iommap_beyond_tests,iommap_options_tests,iommap_counters_tests,iommap_direct_tests

test-erlang: build
	cd erlang && $(REBAR3) eunit && $(REBAR3) ct
	cd erlang && ERL_FLAGS="-iommap direct_reads false" $(REBAR3) eunit --module=$(DIRECT_OFF_EUNIT)
	cd erlang && ERL_FLAGS="-iommap direct_reads false" $(REBAR3) ct --suite=iommap_property_SUITE
	cd erlang && ERL_FLAGS="-iommap lanes 4 -iommap direct_reads false" $(REBAR3) eunit

# Another rebar3 project using iommap (through _checkouts), and a mix project
# using it by path: both build the engine and run their tests; then the same
# two with iommap as a git dependency of this repository (committed work).
test-examples: build
	cd examples/rebar3_app && $(REBAR3) eunit
	cd examples/elixir && MIX_REBAR3=$$(command -v $(REBAR3)) MIX_ENV=test mix test
	sh examples/git_deps.sh

check: build
	@out=$$(gofmt -l cmd port mmap test); if [ -n "$$out" ]; then echo "gofmt -l: $$out"; exit 1; fi
	cd erlang && $(REBAR3) xref && $(REBAR3) dialyzer

soak: build
	@mkdir -p erlang/_build/soak
	erlc -o erlang/_build/soak erlang/test/iommap_soak.erl erlang/test/iommap_test_lib.erl
	erl -noshell -pa erlang/_build/default/lib/iommap/ebin -pa erlang/_build/soak -eval 'iommap_soak:main(), halt().'

docs: build
	cd erlang && $(REBAR3) edoc
	@echo "docs: erlang/doc/index.html"

bench: build
	erlc -o bench bench/iommap_bench.erl
	erl -noshell $(BENCH_ERL_ARGS) -pa erlang/_build/default/lib/iommap/ebin -pa bench -eval 'iommap_bench:main(), halt().'

clean:
	rm -rf erlang/_build $(ENGINE) bench/*.beam examples/*.beam examples/rebar3_app/_build examples/elixir/_build _build _dist
