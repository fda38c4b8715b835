# tmpnb: the two commands a newcomer needs are `make demo` and `make test`.
# Everything below installs what it needs by itself (virtualenv, Docker engine, base image, CHP).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/.cache/chp/node_modules/.bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTHON      ?= python3
CHP_VERSION := 5.3.0
TIMED       := scripts/timed.sh
SCENARIOS   ?= --all

.PHONY: help test venv engine base-image chp lint pytest molecule bench demo demo-down clean

help:
	@echo "make demo       deploy the whole stack onto a local disposable test host; prints the URL"
	@echo "make demo-down  remove that host"
	@echo "make test       lint, Python tests (unit + integration), every Molecule scenario"
	@echo "make bench      benchmarks (writes bench/results/)"

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt -e .
	@touch $@

venv: $(VENV)/.installed

engine:
	@scripts/ensure-docker.sh

base-image: engine
	@scripts/build-base-image.sh

.cache/chp/node_modules/.bin/configurable-http-proxy:
	@command -v npm >/dev/null || { echo "ERROR: npm is missing (apt-get install nodejs npm)"; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .cache/chp configurable-http-proxy@$(CHP_VERSION)

chp: .cache/chp/node_modules/.bin/configurable-http-proxy

lint: venv
	yamllint -s .
	ansible-lint -q
	ruff check .
	ruff format --check .

pytest: venv engine base-image chp
	pytest -q -rs tests

molecule: venv engine base-image
	molecule test $(SCENARIOS)

test:
	@rm -f .cache/timings.txt
	@$(TIMED) venv $(MAKE) --no-print-directory venv
	@$(TIMED) engine $(MAKE) --no-print-directory engine
	@$(TIMED) base-image $(MAKE) --no-print-directory base-image
	@$(TIMED) chp $(MAKE) --no-print-directory chp
	@$(TIMED) lint $(MAKE) --no-print-directory lint
	@$(TIMED) pytest $(MAKE) --no-print-directory pytest
	@$(TIMED) molecule $(MAKE) --no-print-directory molecule
	@echo "==> make test: phase timings"; cat .cache/timings.txt

bench: venv engine base-image chp
	$(VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) .cache
