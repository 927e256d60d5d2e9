# Keel developer commands. `make` (or `make help`) lists them.
# The scripts are the source of truth; these targets are short names for them.

CARGO   ?= cargo
SERVICE ?= platform
IMAGE   ?= keel/$(SERVICE)
# Extra arguments for `make test`, e.g. make test ARGS="-p keel-config -- --nocapture"
ARGS    ?=
# Cargo.lock is committed: release builds use exactly it.
LOCKED  := $(if $(wildcard Cargo.lock),--locked,)

.DEFAULT_GOAL := help
.PHONY: help test lint fmt build generate docker-build clean dev ci

help: ## List the targets
	@echo "Usage: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: ## Run every test against real servers (scripts/test.sh; ARGS=... passes arguments)
	./scripts/test.sh $(ARGS)

lint: ## Check formatting and run clippy with warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(LOCKED) -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

build: ## Build every crate in release mode
	$(CARGO) build --workspace --release $(LOCKED)

# Code generation runs inside the build: build.rs scripts compile proto/ with a pure-Rust protobuf
# compiler (no protoc), so "generate" is building the crates that generate. Only keel-testkit has
# one for now; add the others (proto, permission constants) here as they appear.
generate: ## Run code generation (build scripts)
	$(CARGO) build -p keel-testkit

docker-build: ## Build the container image of SERVICE (default platform) as keel/SERVICE
	DOCKER_BUILDKIT=1 docker build --build-arg SERVICE=$(SERVICE) -t $(IMAGE) .

clean: ## Remove build output (the active CARGO_TARGET_DIR); keeps ./data
	$(CARGO) clean

dev: ## Run the all-in-one platform with the embedded defaults (scripts/dev.sh)
	./scripts/dev.sh

ci: ## Run the CI pipeline locally (bash .ci/run)
	bash .ci/run
