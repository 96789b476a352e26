# Build glue for cusip-loader.
#
#   make setup   install what is missing (PostgreSQL server binaries, the postgres user)
#   make build   release build
#   make dist    release build, stripped, copied to target/dist/cusip-loader (what the image ships)
#   make test    cargo test (the integration tests start their own throwaway clusters), then
#                the fault-injection scorecard
#   make test-faults   only the fault-injection suites (kills, server stops, disk full, S3 errors,
#                dead network paths, refusals, races, input edges, the soak of business days),
#                and the scorecard
#   make lint    rustfmt check + clippy, warnings are errors
#   make demo    load the sample files into a throwaway cluster and show the result
#   make fuzz    cargo-fuzz the record parser and value converters, FUZZ_SECONDS per target
#
# Variables you can override: CARGO, PG_BIN (directory holding initdb, pg_ctl, psql),
# DEMO_DIR (default target/demo).

SHELL := /bin/bash
# Every recipe runs as ONE bash script that stops at the first failing command.
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help

CARGO    ?= cargo
LOADER   := target/release/cusip-loader
DIST     := target/dist/cusip-loader
# The cargo profile `make dist` builds. The image always ships release; the deploy test's CI
# run checks the recipe with DIST_PROFILE=dev, which reuses the build `cargo test` just made
# instead of a cold release build of ~13 minutes on a 2-core runner.
DIST_PROFILE ?= release
DIST_FROM    := target/$(if $(filter dev,$(DIST_PROFILE)),debug,$(DIST_PROFILE))/cusip-loader
DEMO_DIR ?= target/demo

# Hand PG_BIN through to cargo test and the demo when the caller set it
# (environment or command line).
ifdef PG_BIN
export PG_BIN
endif

.PHONY: help setup build dist bench test test-faults lint demo fuzz clean

help: ## Show this list
	@echo "cusip-loader make targets:"
	grep -E '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) \
	  | awk -F':.*## ' '{ printf "  %-12s %s\n", $$1, $$2 }'

setup: ## Install what is missing (PostgreSQL, postgres user, runuser, openssl, moto); quiet when all is present
	@as_root() {
	  if [ "$$(id -u)" -eq 0 ]; then "$$@"
	  elif command -v sudo >/dev/null; then sudo "$$@"
	  else echo "setup: need root (or sudo) to run: $$*" >&2; return 1
	  fi
	}
	apt_install() {
	  echo "setup: installing $$*"
	  as_root apt-get update -qq
	  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$$@" >/dev/null
	}
	# PostgreSQL server binaries: $$PG_BIN, initdb on the PATH, or the Debian layout.
	if ! { [ -n "$${PG_BIN:-}" ] && [ -x "$$PG_BIN/initdb" ]; } \
	   && ! command -v initdb >/dev/null \
	   && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
	  apt_install postgresql
	fi
	# initdb refuses to run as root: as root, clusters run as the postgres user via runuser.
	if [ "$$(id -u)" -eq 0 ]; then
	  if ! getent passwd postgres >/dev/null; then
	    echo "setup: creating system user postgres"
	    useradd --system postgres
	  fi
	  command -v runuser >/dev/null || apt_install util-linux
	fi
	# openssl makes the TLS tests' CA and server certificate.
	command -v openssl >/dev/null || apt_install openssl
	# moto's S3 server for the S3 tests, in a venv under target/ (the tests find it there,
	# or at $$MOTO_SERVER).
	if [ ! -x target/venv/bin/moto_server ]; then
	  command -v python3 >/dev/null || apt_install python3 python3-venv
	  echo "setup: installing moto[server] into target/venv"
	  # Debian's python3 lacks ensurepip (so venv fails) until python3-venv is installed.
	  if ! python3 -m venv target/venv >/dev/null 2>&1; then
	    rm -rf target/venv
	    apt_install python3-venv
	    python3 -m venv target/venv
	  fi
	  target/venv/bin/pip install -q --disable-pip-version-check 'moto[server]>=5,<6'
	fi

build: ## cargo build --release
	@$(CARGO) build --release

# The artifact deploy/Dockerfile copies into the image. --locked: ship exactly Cargo.lock.
# Copied then renamed, so a binary that is running is never overwritten in place.
dist: ## Release build, stripped, at target/dist/cusip-loader (deploy/Dockerfile runs this)
	@$(CARGO) build --profile $(DIST_PROFILE) --locked
	mkdir -p "$(dir $(DIST))"
	cp "$(DIST_FROM)" "$(DIST).tmp"
	if command -v strip >/dev/null; then
	  strip "$(DIST).tmp"
	else
	  echo "dist: strip not found; shipping the binary unstripped" >&2
	fi
	mv -f "$(DIST).tmp" "$(DIST)"
	echo "dist: $(abspath $(DIST)) ($(DIST_PROFILE) profile, $$(du -h "$(DIST)" | cut -f1), $$(stat -c %s "$(DIST)") bytes)"

# Not part of test: a measurement, never a pass/fail on speed. BENCH_N=10000000 for the big run.
bench: setup ## Loader vs the textbook psql reference at BENCH_N issues (default 1000000); prints ratios
	@$(CARGO) build --release --bins --examples
	./target/release/examples/bench

test: setup ## cargo test (honours PG_BIN), then the fault-injection scorecard
	@rm -rf target/tmp/scorecard
	$(CARGO) test
	python3 .ci/scorecard target/tmp/scorecard

test-faults: setup ## Fault injection (kills, server stops, disk full, S3 errors, dead paths, refusals, races, inputs, soak), with the scorecard
	@rm -rf target/tmp/scorecard
	$(CARGO) test --test faults --test server_faults --test s3_faults --test net --test refusals \
	  --test inputs --test soak
	python3 .ci/scorecard target/tmp/scorecard

lint: ## cargo fmt --check and clippy -D warnings
	@$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

# A private cluster under $(DEMO_DIR), listening only on a Unix socket (so a PostgreSQL
# already on 5432 is never touched), stopped and removed on any exit: .ci/pg-throwaway, which
# `testdata/check_sample.py --pg` runs in too. The steps are a bash function run inside it,
# with PGHOST and PGPORT set and the server's psql first on the PATH.
demo: setup build ## Load testdata 01-15 then the 01-16 delta into a throwaway cluster
	@demo_steps() {
	  trap 'rc=$$?; [ "$$rc" -eq 0 ] || echo "demo: FAILED (exit $$rc)" >&2' EXIT
	  echo "== Starting a throwaway PostgreSQL ($$(postgres --version)) in $(DEMO_DIR), socket $$PGHOST port $$PGPORT =="
	  psql() { command psql -X -q -v ON_ERROR_STOP=1 -P pager=off "$$@"; }
	  psql -c 'CREATE DATABASE cusip'
	  load() { "$(abspath $(LOADER))" --host "$$PGHOST" --port "$$PGPORT" --dbname cusip --user postgres --no-progress "$$@"; }
	  echo "== Applying the schema =="
	  load --init-schema
	  echo "== Loading 01-15 =="
	  load testdata/CED01-15R.PIP testdata/CED01-15E.PIP testdata/CED01-15A.PIP
	  echo "== Loading 01-16 (delta) =="
	  load testdata/CED01-16R.PIP testdata/CED01-16E.PIP testdata/CED01-16A.PIP
	  echo "== v_security_summary (first 8 rows) =="
	  psql -d cusip -c 'SELECT * FROM v_security_summary ORDER BY cusip LIMIT 8'
	  echo "== Demo OK; stopping the cluster and removing $(DEMO_DIR) =="
	}
	export -f demo_steps
	# exec: the signals make sends its recipe reach the cluster's cleanup at once.
	exec .ci/pg-throwaway --dir "$(DEMO_DIR)" bash -euo pipefail -c demo_steps

# Fuzzing (issue 7): tests/fuzz is a cargo-fuzz crate with two targets, `records` (any
# bytes as a PIP file, every layout) and `values` (one field, any column type). Not part of
# `test` or CI: CI only replays the committed corpus (tests/fuzz_corpus.rs, stable).
# Each target runs FUZZ_SECONDS (default 300) in one niced process, adds what it finds new
# to tests/fuzz/corpus/<target> (keep it small: `cargo fuzz cmin` before committing) and
# stops at the first failure, leaving the input in tests/fuzz/artifacts/<target>/.
# Toolchain: cargo-fuzz compiles with -Z flags (sanitizer, coverage passes) that only a
# nightly rustc accepts. With a rustup nightly installed it uses that, with
# AddressSanitizer; otherwise it runs the default stable toolchain with RUSTC_BOOTSTRAP=1
# (which lets stable accept -Z flags) and --sanitizer none (tried with stable 1.95: builds
# and runs, at ~4x the executions per second; what ASan would add matters little here, as
# the code under test is safe Rust but for one SSE2 load of a 16-byte array).
# cargo-fuzz itself is installed with `cargo install` when missing.
FUZZ_SECONDS ?= 300
FUZZ_TARGETS ?= records values
fuzz: ## Fuzz the parser and converters (cargo-fuzz; nightly, else stable+RUSTC_BOOTSTRAP), FUZZ_SECONDS per target
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	if rustup run nightly rustc --version >/dev/null 2>&1; then
	  fuzz=(rustup run nightly cargo fuzz); sanitizer=()
	else
	  echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1, no sanitizer" >&2
	  export RUSTC_BOOTSTRAP=1
	  fuzz=($(CARGO) fuzz); sanitizer=(--sanitizer none)
	fi
	for t in $(FUZZ_TARGETS); do
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s =="
	  # New inputs go to the first directory; past failures (if any) are seeds.
	  dirs=(tests/fuzz/corpus/$$t)
	  if [ -d tests/fuzz/regressions/$$t ]; then dirs+=(tests/fuzz/regressions/$$t); fi
	  nice -n 10 "$${fuzz[@]}" run --fuzz-dir tests/fuzz "$${sanitizer[@]}" "$$t" "$${dirs[@]}" -- \
	    -max_total_time=$(FUZZ_SECONDS) -dict=tests/fuzz/pip.dict -max_len=4096 -print_final_stats=1
	done

clean: ## cargo clean
	@$(CARGO) clean
