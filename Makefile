# LookFirst: `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help demo test up venv lock check-services clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

venv: $(STAMP)  ## create .venv and install LookFirst with pinned dependencies

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

demo: venv  ## whole pipeline on the bundled demo pool (embedded PostgreSQL + Redis), then serve the UI
	$(BIN)/python manage.py demo

up: venv  ## serve the product (web + workers) on the configured or embedded services
	$(BIN)/python manage.py up

test: venv  ## run the whole test suite
	$(BIN)/python -m pytest

lock:  ## re-resolve dependencies into requirements.lock (fresh throwaway venv)
	rm -rf /tmp/lookfirst-lock && $(PYTHON) -m venv /tmp/lookfirst-lock
	/tmp/lookfirst-lock/bin/pip install --quiet -e '.[dev]'
	(echo "# Full pinned set, made with 'make lock'. Used as pip constraints."; \
	 /tmp/lookfirst-lock/bin/pip freeze --exclude-editable | grep -vi '^lookfirst') > requirements.lock

clean:  ## remove the virtualenv and caches (not LOOKFIRST_HOME)
	rm -rf $(VENV) .pytest_cache
