# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# picluster.carrier build and test entry points. docs/testing.md explains each target.
# Every target can be run alone on a fresh machine (after the Debian packages of
# .ci/apt-packages.txt are installed): the venvs are created when missing.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
SCRIPTS := $(ROOT)/scripts
STAGE := $(SCRIPTS)/stage.sh

# Main venv: ansible-core 2.19 on Python 3.11; smoke venv: ansible-core 2.21 on Python 3.12.
VENV ?= $(ROOT)/.venv
VENV_221 ?= $(ROOT)/.venv-2.21
REQ ?= $(ROOT)/requirements/test.txt
REQ_221 ?= $(ROOT)/requirements/test-2.21.txt
# Interpreters: pyenv's 3.11.7 / 3.12.1 when present, else another 3.11 / 3.12 (scripts/find-python.sh).
PYTHON_311 ?= $(shell $(SCRIPTS)/find-python.sh 3.11 7 2>/dev/null)
PYTHON_312 ?= $(shell $(SCRIPTS)/find-python.sh 3.12 1 2>/dev/null)

# Extra pytest arguments, e.g. `make units PYTEST_ARGS='-k board -x'`.
PYTEST_ARGS ?=
UNIT_WORKERS ?= 2
# Containers for molecule: runc, cgroupfs, file events (see tests/molecule/containers.conf).
export CONTAINERS_CONF ?= $(ROOT)/tests/molecule/containers.conf

.PHONY: help venv venv-2.19 venv-2.21 collection-link collections lint units integration sanity \
	units-2.21 sanity-2.21 smoke-2.21 base-image molecule twin integration-and-checks test demo demo-cluster bench \
	clean distclean

help:
	@echo "make venv            create/update .venv (ansible-core 2.19, Py 3.11) and .venv-2.21 (2.21, Py 3.12)"
	@echo "make collection-link .collections/ansible_collections/picluster/carrier -> repo root (scripts/collection-link.sh)"
	@echo "make lint            ruff, pycodestyle, yamllint, antsibull-changelog lint, ansible-lint (production profile)"
	@echo "make units           pytest tests/unit on 2.19"
	@echo "make integration     pytest tests/integration on 2.19"
	@echo "make sanity          ansible-test sanity on 2.19/3.11, no ignore file"
	@echo "make smoke-2.21      unit tests and sanity on ansible-core 2.21/3.12"
	@echo "make molecule        each role's default molecule scenario in podman"
	@echo "make twin            the twin rack test: 5 twin nodes from bare to a running cluster (root, podman)"
	@echo "make test            all of the above"
	@echo "make demo            the simulated cluster demo (scripts/demo.sh)"
	@echo "make demo-cluster    a bare rack of 5 twin nodes to a running cluster: flash, power, site.yml, checks (root)"
	@echo "make bench           every bench/bench_*.py"
	@echo "make clean           test outputs and caches (distclean also removes the venvs)"

# ---------------------------------------------------------------- environments

venv: venv-2.19 venv-2.21

venv-2.19:
	@test -n "$(PYTHON_311)" || { echo "make: no usable Python 3.11 (pyenv 3.11.x, python3.11, or Debian's with python3-venv)" >&2; exit 1; }
	@$(SCRIPTS)/make-venv.sh $(VENV) $(PYTHON_311) $(REQ)

venv-2.21:
	@if [ -z "$(PYTHON_312)" ]; then \
		echo "!!!!!!!! make: NO PYTHON 3.12 (pyenv 3.12.x or python3.12): skipping .venv-2.21 (ansible-core 2.21) !!!!!!!!"; \
	else \
		$(SCRIPTS)/make-venv.sh $(VENV_221) $(PYTHON_312) $(REQ_221); \
	fi

collection-link:
	@$(SCRIPTS)/collection-link.sh

collections: venv-2.19 collection-link
	@$(VENV)/bin/python $(SCRIPTS)/install_collections.py

# ---------------------------------------------------------------- checks

# ansible-test sanity's pep8 settings (ansible_test/_util/controller/sanity/pep8/current-ignore.txt)
PEP8_IGNORE = E402,W503,W504,E741,E203,E701,E704

# ansible-lint runs offline (.ansible-lint) on the collections `make collections` installs, with
# this checkout as picluster.carrier.
lint: collections
	@rc=0; cd $(ROOT); \
	$(STAGE) lint-ruff $(VENV)/bin/ruff check $(ROOT) || rc=1; \
	$(STAGE) lint-pycodestyle $(VENV)/bin/pycodestyle --max-line-length 160 --ignore $(PEP8_IGNORE) \
		--exclude '.venv*,.collections,.cache,output,.git' $(ROOT) || rc=1; \
	$(STAGE) lint-yamllint $(VENV)/bin/yamllint -s -c $(ROOT)/.yamllint $(ROOT) || rc=1; \
	$(STAGE) lint-changelog $(VENV)/bin/antsibull-changelog lint || rc=1; \
	PATH="$(VENV)/bin:$$PATH" ANSIBLE_COLLECTIONS_PATH="$$($(SCRIPTS)/collection-link.sh)" \
		$(STAGE) lint-ansible-lint $(VENV)/bin/ansible-lint --offline --nocolor -c $(ROOT)/.ansible-lint || rc=1; \
	exit $$rc

units: venv-2.19 collection-link
	@$(STAGE) units-2.19 $(SCRIPTS)/pytest-stage.sh units-2.19 $(VENV) tests/unit -n $(UNIT_WORKERS) $(PYTEST_ARGS)

integration: venv-2.19 collection-link
	@$(STAGE) integration-2.19 $(SCRIPTS)/pytest-stage.sh integration-2.19 $(VENV) tests/integration $(PYTEST_ARGS)

sanity: venv-2.19
	@$(STAGE) sanity-2.19 $(SCRIPTS)/sanity.sh $(VENV)

units-2.21: venv-2.21 collection-link
	@if [ -x $(VENV_221)/bin/python ]; then \
		$(STAGE) units-2.21 $(SCRIPTS)/pytest-stage.sh units-2.21 $(VENV_221) tests/unit -n $(UNIT_WORKERS) $(PYTEST_ARGS); \
	else echo "!!!!!!!! make: no .venv-2.21: unit tests on ansible-core 2.21 SKIPPED !!!!!!!!"; fi

sanity-2.21: venv-2.21
	@if [ -x $(VENV_221)/bin/python ]; then \
		$(STAGE) sanity-2.21 $(SCRIPTS)/sanity.sh $(VENV_221); \
	else echo "!!!!!!!! make: no .venv-2.21: sanity on ansible-core 2.21 SKIPPED !!!!!!!!"; fi

smoke-2.21: units-2.21 sanity-2.21

base-image:
	@$(STAGE) base-image $(SCRIPTS)/build-base-image.sh

molecule: venv-2.19 collection-link
	@$(STAGE) molecule $(SCRIPTS)/molecule-all.sh $(VENV)

# The twin rack, end to end (tests/twin, root and podman): a bare rack of 5 twin nodes to a running cluster.
twin: venv-2.19 collection-link
	@$(STAGE) twin $(SCRIPTS)/pytest-stage.sh twin $(VENV) tests/twin $(PYTEST_ARGS)

# The integration tests wait on simulated boots and timeouts about three quarters of their time:
# the unit tests, sanity, the 2.21 smoke and then the twin rack run beside them (scripts/beside.sh),
# their output printed after. The molecule scenarios come last, two at a time.
integration-and-checks: venv collection-link
	@$(SCRIPTS)/beside.sh checks '$(MAKE) --no-print-directory -k units sanity smoke-2.21 twin' \
		$(MAKE) --no-print-directory integration

test: lint integration-and-checks molecule

# ---------------------------------------------------------------- use

# scripts/demo.sh makes the collection link itself.
demo: venv-2.19
	@test -x $(ROOT)/scripts/demo.sh || { echo "make demo: scripts/demo.sh is missing" >&2; exit 1; }
	@PATH="$(VENV)/bin:$$PATH" $(ROOT)/scripts/demo.sh

# scripts/twin_rack.py builds the twin image when missing and prints each stage's time; TWIN_NODES=14 for a bigger rack.
TWIN_NODES ?= 5
demo-cluster: venv-2.19 collection-link
	@PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/python $(ROOT)/scripts/twin_rack.py --nodes $(TWIN_NODES)

# Each bench makes the collection importable itself (scripts/collection_link.py).
bench: venv-2.19
	@shopt -s nullglob; benches=($(ROOT)/bench/bench_*.py); \
	if [ $${#benches[@]} -eq 0 ]; then echo "make bench: no bench/bench_*.py yet"; exit 0; fi; \
	collections=$$($(SCRIPTS)/collection-link.sh); \
	rc=0; for b in "$${benches[@]}"; do \
		echo "==== $${b#$(ROOT)/}"; \
		PATH="$(VENV)/bin:$$PATH" ANSIBLE_COLLECTIONS_PATH="$$collections" \
			$(VENV)/bin/python "$$b" || { rc=1; echo "!!!! $$b failed"; }; \
	done; exit $$rc

clean:
	rm -rf $(ROOT)/tests/output $(ROOT)/.pytest_cache $(ROOT)/.ruff_cache $(ROOT)/.hypothesis
	find $(ROOT) -path $(ROOT)/.venv -prune -o -path '$(ROOT)/.venv-*' -prune -o -path $(ROOT)/.collections -prune \
		-o -name __pycache__ -type d -print0 | xargs -0r rm -rf

# Also the venvs, the extracted collections and the wheel cache (not the molecule base image:
# `podman rmi localhost/bookworm-systemd` for that).
distclean: clean
	rm -rf $(VENV) $(VENV_221) $(ROOT)/.collections $(ROOT)/.cache
