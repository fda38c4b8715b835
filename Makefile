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

# Every scenario, MOLECULE_JOBS at a time (scenarios have their own hosts, tmpnb-<scenario>), each
# in its own log under .cache/molecule/; on a failure the failed scenarios' summary lines and log
# tails are printed last, so a CI page that shows only the tail still names them.
# One scenario, in the foreground: make molecule SCENARIO=default.
MOLECULE_JOBS ?= 2
SCENARIO ?=
molecule: venv engine base-image notebook-image notebook7-image browser
	@if [ -n "$(SCENARIO)" ]; then molecule test -s $(SCENARIO); \
	else scripts/molecule-all.sh $(MOLECULE_JOBS); fi

# Debian's Chromium and its driver on the controller: the `default` scenario drives a headless
# browser through the whole chain (selenium is in the venv).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  || scripts/apt-install.sh chromium chromium-driver

# A disposable test host (the shared platform, named tmpnb-demo) with the whole stack; nginx is
# published on 127.0.0.1:$(DEMO_PORT). A second run changes nothing.
# CELLS=2: a front and two cells instead (inventories/local-cells: tmpnb-demo-front on :8180,
# tmpnb-demo-cell1/2 on :8181/:8182, one private Docker network); prints the front's and the
# status page's URLs. docs/cells.md.
DEMO_PORT ?= 8080
CELLS ?=
DEMO_INVENTORY := $(if $(CELLS),inventories/local-cells,inventories/local)
demo: venv engine base-image notebook-image notebook7-image
	@if [ -n "$(CELLS)" ] && [ "$(CELLS)" != 2 ]; then \
	  echo "make demo: CELLS=$(CELLS): inventories/local-cells has 2 cells (CELLS=2)" >&2; exit 2; fi
	@start=$$(date +%s); \
	DEMO_PORT=$(DEMO_PORT) ansible-playbook playbooks/testhost.yml -i $(DEMO_INVENTORY); \
	host=$$(date +%s); \
	ansible-playbook site.yml -i $(DEMO_INVENTORY); \
	end=$$(date +%s); \
	echo "==> make demo: test host(s) $$((host - start)) s, site.yml $$((end - host)) s"; \
	if [ -n "$(CELLS)" ]; then \
	  token=$$(docker exec tmpnb-demo-front sed -n 's/^FRONT_STATUS_TOKEN=//p' /etc/tmpnb-front/status.env); \
	  echo "==> open http://127.0.0.1:8180/ (the front; cells on :8181 and :8182)"; \
	  echo "==> status page http://127.0.0.1:8180/status/$$token/"; \
	else echo "==> open http://127.0.0.1:$(DEMO_PORT)/"; fi

# Switch the demo host's notebook image (one of tmpnb_images in inventories/local) without losing a
# visitor; a rollback is the same command with the previous image.
IMAGE ?=
redeploy: venv notebook-image notebook7-image
	@test -n "$(IMAGE)" || { echo "usage: make redeploy IMAGE=<one of tmpnb_images in inventories/local>"; exit 2; }
	@start=$$(date +%s); \
	ansible-playbook playbooks/redeploy.yml -i inventories/local -e tmpnb_image=$(IMAGE); \
	echo "==> make redeploy: $(IMAGE) in $$(( $$(date +%s) - start )) s"

demo-down: venv
	ansible-playbook playbooks/testhost.yml -i $(DEMO_INVENTORY) -e testhost_state=absent

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
