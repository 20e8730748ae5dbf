# The user's verbs. STACK picks the stack (dev or prod): `make up STACK=prod`.
# Unattended (scripts, cron, CI): YES=1 answers Pulumi's confirmation (never a protection: a
# prod destroy still stops at `protect`), ARGS= adds Pulumi flags. Without a terminal and
# without YES=1, a verb that would ask fails at once instead of waiting.
# make exits 0 when a verb is done and non-zero when it failed; the failing step's own code is
# in make's "Error N" line (make repair's: 1 failed, 2 wrong use, 3 locked by a deploy that runs). A first `make up` needs no login, stack or passphrase: scripts/stack-env.sh makes them.
STACK ?= dev
VENV := venv
PYTHON := $(VENV)/bin/python
STACK_ENV := scripts/stack-env.sh $(STACK)
PULUMI := $(STACK_ENV) pulumi --stack $(STACK)
CONFIRM := $(if $(YES),--yes) $(ARGS)

.PHONY: install test unit lint bench bench-load bench-archive preview up repair destroy retire forget-container outputs pitr pitr-switch pitr-project rebuild

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --requirement requirements.txt
	touch $@

install: $(VENV)/.installed

## Every test: unit tests under mocks, then the integration tests against real Docker/Pulumi.
test: install
	$(PYTHON) -m pytest

## Unit tests only: seconds, no Docker, no Pulumi CLI.
unit: install
	$(PYTHON) -m pytest tests/unit

## Deploy speed next to doing it by hand, with the real providers: make bench [N="1 3"]
N ?= 1 3 16 100
bench: install
	$(PYTHON) bench/bench.py --n "$(N)"

## A storm of CLIENTS connections across 5 projects, through PgBouncer and direct: make bench-load
CLIENTS ?= 1000
bench-load: install
	$(PYTHON) bench/load.py --clients $(CLIENTS)

## RPO, RTO and backup/restore throughput of continuous backup on a GB-sized cluster: make bench-archive [GB=1]
GB ?= 1
bench-archive: install
	$(PYTHON) bench/archive.py --gb $(GB)

## Python (ruff, mypy), the shell scripts (shellcheck) and the GitHub workflow (actionlint);
## .ci/setup puts shellcheck and actionlint on PATH.
SHELL_SCRIPTS := $(wildcard scripts/*.sh scripts/lib/*.sh .ci/lib/*.sh .ci/images/*/*.sh) .ci/setup .ci/run
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	shellcheck --external-sources $(SHELL_SCRIPTS)
	actionlint

preview: install
	$(PULUMI) preview --diff $(ARGS)

## Deploys STACK, creating it (and a local backend and passphrase) on a first run.
up: install
	$(STACK_ENV) --create pulumi --stack $(STACK) up $(CONFIRM)

## After an interrupted deploy, or containers removed or lost: make repair STACK=prod [YES=1]
## A stale lock is removed (a live one stops it), each pending operation is looked up in the
## real world and imported or cleared, then a refresh that runs the program reads each resource
## when the program reaches it, so containers are made again before anything dials their server.
repair: install
	$(STACK_ENV) $(PYTHON) -m repair $(STACK) $(if $(YES),--yes) $(if $(ARGS),-- $(ARGS))

destroy: install
	$(PULUMI) destroy $(CONFIRM)

## Let prod forget a project removed from projects.py, keeping its database, role and data:
## make retire PROJECT=shop STACK=prod, then make up STACK=prod (its Redis user is switched off)
retire:
	@urns=$$($(PULUMI) stack --show-urns | tr -s ' \t' '\n' | \
	  grep -E '^urn:pulumi:.*ProjectDatabase\$$.*::$(PROJECT)-(role|database|redis-user)$$'); \
	[ -n "$$urns" ] || { echo "retire: no project $(PROJECT) in stack $(STACK)" >&2; exit 1; }; \
	$(PULUMI) state unprotect --yes $$urns

## Before a service moves to an external server: make forget-container SERVICE=postgres STACK=prod
## The stack forgets the container and its volume; Docker keeps both, data and all.
forget-container:
	$(STACK_ENV) scripts/forget-container.sh "$(SERVICE)" "$(STACK)"

## Print one project's URLs: make outputs PROJECT=crypto_ai_agent
outputs:
	@for suffix in url host_url pooled_url host_pooled_url redis_url host_redis_url; do \
	  url=$$($(PULUMI) stack output --show-secrets "$(PROJECT)_$$suffix" 2>/dev/null) \
	    && printf '%s_%s = %s\n' "$(PROJECT)" "$$suffix" "$$url"; \
	done; true

## The pitr verbs read STACK, TARGET, PROJECT and VOLUME from the environment make gives them,
## never as text of the recipe: a target is passed as it is, whatever its characters.
export STACK TARGET PROJECT VOLUME
## Point-in-time recovery into a new volume, checked on a scratch server; YES=1 switches to it:
## make pitr STACK=prod TARGET='2026-12-01 15:04:05+00' [YES=1]   (or TARGET=latest, name:POINT)
pitr:
	@[ -n "$$TARGET" ] || { echo "pitr: TARGET='YYYY-MM-DD HH:MM:SS+00' (or latest, name:POINT)" >&2; exit 2; }
	$(STACK_ENV) scripts/pitr.sh "$$STACK" "$$TARGET" $(if $(YES),--yes)

## The stack's PostgreSQL onto a volume make pitr recovered: make pitr-switch STACK=prod VOLUME=...
pitr-switch:
	$(STACK_ENV) scripts/pitr.sh "$$STACK" --switch "$$VOLUME"

## One project's database back to a point in time, the others untouched:
## make pitr-project STACK=prod PROJECT=shop TARGET='2026-12-01 15:04:05+00'
pitr-project:
	$(STACK_ENV) scripts/pitr.sh "$$STACK" "$$TARGET" --project "$$PROJECT"

## A lost host: the servers made again from the archive in object storage: make rebuild STACK=prod [YES=1]
rebuild: install
	$(STACK_ENV) scripts/rebuild-host.sh "$(STACK)" $(if $(YES),--yes)
