# Two commands for a new user: `make run` and `make test`. Everything else here serves them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
HOST ?= 127.0.0.1
PYTEST_ARGS ?=
export FLASK_APP := wsgi

.PHONY: run serve test lint format worker db demo bench lighthouse clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's dependencies change.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

db: $(VENV)/.installed-run
	$(BIN)/flask db upgrade

demo: db
	$(BIN)/flask storefront seed-demo

## make run: set up .venv, the database and the demo data, then serve the shop on http://$(HOST):$(PORT)
## with a task worker beside it, and the Stripe simulator when no STRIPE_SECRET_KEY is set.
run: demo
	$(BIN)/flask storefront dev --host $(HOST) --port $(PORT)

## make serve: the production server (gunicorn.conf.py: threaded workers, pools checked against PostgreSQL's
## max_connections) on http://$(HOST):$(PORT) against DATABASE_URL, after `flask db upgrade`. Production settings by
## default (make reads STOREFRONT_ENV from the environment or its command line, not from .env), so it needs
## SECRET_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET and SHOP_URL; on your own machine:
## `make serve STOREFRONT_ENV=development`. Sizing: WEB_CONCURRENCY, WEB_THREADS (README, "Deploying").
serve: export STOREFRONT_ENV ?= production
serve: db
	HOST=$(HOST) PORT=$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

worker: $(VENV)/.installed-run
	$(BIN)/flask storefront worker

## make test: set up .venv with the dev extras, lint, and run every test
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/drop.py

## make lighthouse: Lighthouse 12.2.3 (mobile) over a fresh demo shop; needs npm and Chromium (CHROME_PATH)
lighthouse: $(VENV)/.installed-run
	bash bench/lighthouse.sh

clean:
	rm -rf $(VENV) *.egg-info
