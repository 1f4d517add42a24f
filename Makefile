# iommap: memory-mapped file I/O for Erlang/Elixir through a Go port program.
#   make demo    build, then map a real file and show what it does
#   make test    every test: Go (race detector, fuzz corpus), the end-to-end
#                protocol test, EUnit and Common Test through rebar3
#   make bench   iommap against file:pread/pwrite on a raw fd, same run
#                (BENCH_FILE_VM=1: the file side in a VM of its own)
#   make docs    edoc of the Erlang API into erlang/doc/
#   make soak    2 minutes of mixed load (SOAK_SECONDS to change), with figures
# Missing tools (Erlang/OTP, rebar3) are installed from Debian with apt-get
# when we are root; otherwise the exact packages to install are printed.

GO      ?= go
REBAR3  ?= rebar3
ENGINE  := erlang/priv/iommap_port
ERL_PKGS := erlang-nox erlang-dev erlang-eunit erlang-common-test erlang-dialyzer erlang-tools rebar3 elixir
GO_SRC  := $(shell find cmd port mmap -name '*.go' -not -name '*_test.go') go.mod go.sum

# The systems the NIF package supports, each on amd64 and arm64: make test
# builds the engine, vets it and compiles its tests for every one, so a
# change that breaks a platform fails here (they run only on Linux here).
CROSS   := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 freebsd/amd64 freebsd/arm64 openbsd/amd64 openbsd/arm64

.PHONY: all build demo test test-go test-e2e test-erlang test-examples test-cross check bench soak docs deps clean

all: build

deps:
	@command -v $(GO) >/dev/null || { echo "iommap: Go 1.26+ is needed (https://go.dev/dl)"; exit 1; }
	@if ! command -v erl >/dev/null || ! command -v $(REBAR3) >/dev/null || ! command -v mix >/dev/null \
	    || ! erl -noshell -eval 'case [A || A <- [common_test, eunit, dialyzer, tools], code:lib_dir(A) =:= {error, bad_name}] of [] -> halt(0); _ -> halt(1) end.' >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "iommap: installing Erlang/OTP and rebar3 from Debian"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(ERL_PKGS) >/dev/null; \
	  else \
	    echo "iommap: please install: $(ERL_PKGS)"; exit 1; \
	  fi; \
	fi

$(ENGINE): $(GO_SRC) erlang/src/iommap.app.src
	sh erlang/build_engine.sh

build: deps $(ENGINE)
	cd erlang && $(REBAR3) compile

demo: build
	erlc -o examples examples/demo.erl
	erl -noshell -pa erlang/_build/default/lib/iommap/ebin -pa examples -eval 'demo:main(), halt().'

test: deps test-go test-cross test-e2e test-erlang check test-examples

test-go:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./mmap ./port

test-cross:
	@set -e; for t in $(CROSS); do \
	  os=$${t%/*}; arch=$${t#*/}; echo "cross: $$t"; \
	  GOOS=$$os GOARCH=$$arch $(GO) build -o /dev/null ./cmd/iommap_port; \
	  GOOS=$$os GOARCH=$$arch $(GO) vet ./...; \
	  for p in ./mmap ./port ./test; do GOOS=$$os GOARCH=$$arch $(GO) test -c -o /dev/null $$p; done; \
	done

test-e2e: $(ENGINE)
	$(GO) test -count=1 ./test/...

test-erlang: build
	cd erlang && $(REBAR3) eunit && $(REBAR3) ct && ERL_FLAGS="-iommap lanes 4" $(REBAR3) eunit

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
	rm -rf erlang/_build $(ENGINE) bench/*.beam examples/*.beam examples/rebar3_app/_build examples/elixir/_build
