# The user's verbs. STACK picks the stack (dev or prod): `make up STACK=prod`.
STACK ?= dev
VENV := venv
PYTHON := $(VENV)/bin/python
PULUMI := pulumi --stack $(STACK)

.PHONY: install test unit lint preview up destroy outputs

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

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

preview: install
	$(PULUMI) preview --diff

up: install
	$(PULUMI) up

destroy: install
	$(PULUMI) destroy

## Print one project's URLs: make outputs PROJECT=crypto_ai_agent
outputs:
	@for suffix in url host_url redis_url host_redis_url; do \
	  printf '%s_%s = ' "$(PROJECT)" "$$suffix"; \
	  pulumi stack output --stack $(STACK) --show-secrets "$(PROJECT)_$$suffix"; \
	done
