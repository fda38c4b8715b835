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

.PHONY: help test venv engine base-image notebook-image notebook7-image chp lint pytest molecule bench bench-strata nginx demo demo-down redeploy browser clean

help:
	@echo "make demo       deploy the whole stack onto a local disposable test host; prints the URL"
	@echo "make demo-down  remove that host"
	@echo "make redeploy IMAGE=<name>  switch the demo host's notebook image, losing nobody (and back)"
	@echo "make test       lint, Python tests (unit + integration), every Molecule scenario"
	@echo "make bench      benchmarks (writes bench/results/); one of them: make bench BENCH=static"
	@echo "make bench-strata  only the Strata reproduction (bench/results/strata.json)"

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

# The notebook image (Debian's jupyter-notebook, apt only) and its tarball for the test host.
notebook-image: base-image
	@scripts/build-notebook-image.sh --save

# The current image: Notebook 7 + JupyterLab 4 on jupyter-server, pinned pip packages in a venv
# (roles/tmpnb/files/notebook7/), built with the machine's CA bundle, and its tarball.
notebook7-image: base-image
	@scripts/build-notebook-image.sh --image notebook7 --save

.cache/chp/node_modules/.bin/configurable-http-proxy:
	@command -v npm >/dev/null || scripts/apt-install.sh npm
	npm install --silent --no-audit --no-fund --prefix .cache/chp configurable-http-proxy@$(CHP_VERSION)

chp: .cache/chp/node_modules/.bin/configurable-http-proxy

lint: venv
	yamllint -s .
	ansible-lint -q
	ruff check .
	ruff format --check .
	mypy

pytest: venv engine base-image notebook-image notebook7-image chp nginx
	pytest -q -rfEs tests

# The log is kept in .cache/molecule.log; on a failure the failed tests' summary lines are
# repeated last, so a CI page that shows only the tail still names them.
molecule: venv engine base-image notebook-image notebook7-image browser
	@mkdir -p .cache
	molecule test $(SCENARIOS) 2>&1 | tee .cache/molecule.log || { \
	  echo "==> molecule failed; failed tests and scenarios (full log: .cache/molecule.log):"; \
	  sed 's/\x1b\[[0-9;]*m//g' .cache/molecule.log | grep -E '^(FAILED|ERROR) |failed=[1-9]|fatal:' | tail -n 20; \
	  exit 1; }

# Debian's Chromium and its driver on the controller: the `default` scenario drives a headless
# browser through the whole chain (selenium is in the venv).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  || scripts/apt-install.sh chromium chromium-driver

# A disposable test host (the shared platform, named tmpnb-demo) with the whole stack; nginx is
# published on 127.0.0.1:$(DEMO_PORT). A second run changes nothing.
DEMO_PORT ?= 8080
demo: venv engine base-image notebook-image notebook7-image
	@start=$$(date +%s); \
	DEMO_PORT=$(DEMO_PORT) ansible-playbook playbooks/testhost.yml -i inventories/local; \
	host=$$(date +%s); \
	ansible-playbook site.yml -i inventories/local; \
	end=$$(date +%s); \
	echo "==> make demo: test host $$((host - start)) s, site.yml $$((end - host)) s"; \
	echo "==> open http://127.0.0.1:$(DEMO_PORT)/"

# Switch the demo host's notebook image (one of tmpnb_images in inventories/local) without losing a
# visitor; a rollback is the same command with the previous image.
IMAGE ?=
redeploy: venv notebook-image notebook7-image
	@test -n "$(IMAGE)" || { echo "usage: make redeploy IMAGE=<one of tmpnb_images in inventories/local>"; exit 2; }
	@start=$$(date +%s); \
	ansible-playbook playbooks/redeploy.yml -i inventories/local -e tmpnb_image=$(IMAGE); \
	echo "==> make redeploy: $(IMAGE) in $$(( $$(date +%s) - start )) s"

demo-down: venv
	ansible-playbook playbooks/testhost.yml -i inventories/local -e testhost_state=absent

test:
	@rm -f .cache/timings.txt
	@$(TIMED) venv $(MAKE) --no-print-directory venv
	@$(TIMED) engine $(MAKE) --no-print-directory engine
	@$(TIMED) base-image $(MAKE) --no-print-directory base-image
	@$(TIMED) nb-image $(MAKE) --no-print-directory notebook-image
	@$(TIMED) nb7-image $(MAKE) --no-print-directory notebook7-image
	@$(TIMED) browser $(MAKE) --no-print-directory browser
	@$(TIMED) chp $(MAKE) --no-print-directory chp
	@$(TIMED) lint $(MAKE) --no-print-directory lint
	@$(TIMED) pytest $(MAKE) --no-print-directory pytest
	@$(TIMED) molecule $(MAKE) --no-print-directory molecule
	@echo "==> make test: phase timings"; cat .cache/timings.txt

# Benchmarks (bench/): spawn (time-to-notebook), static (nginx's copy against CHP), cost (the
# orchestrator with 1,000 slots). BENCH=<name> runs one. The static one runs Debian's nginx binary
# as its own process on a loopback port.
BENCH ?=
bench: venv engine base-image notebook-image chp nginx
	$(VENV)/bin/python -m bench $(BENCH)
	@if [ -z "$(BENCH)" ]; then $(MAKE) --no-print-directory bench-strata; fi

# Benchmark 1 of issue 7: the Strata reproduction on a disposable test host (tmpnb-bench).
bench-strata: venv engine base-image notebook-image chp
	$(VENV)/bin/python -m bench.strata

# Debian's nginx binary on the controller: extract_static's and the static bench's checks run it as their
# own process on a loopback port (on a host with systemd the package also starts its default site).
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || scripts/apt-install.sh nginx

clean:
	rm -rf $(VENV) .cache
