# LookFirst: `make help` lists the targets.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)

.DEFAULT_GOAL := help
.PHONY: help demo test up venv lock check-services clean labelstudio-venv chromium

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

test: venv labelstudio-venv chromium  ## run the whole test suite
	$(BIN)/python -m pytest

chromium:  ## Debian's Chromium for the browser tests (Playwright drives it; no browser download)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi; }

LS_VENV := $(HOME)/.cache/lookfirst/labelstudio-venv
labelstudio-venv: $(LS_VENV)/.installed-1.23.2  ## Label Studio 1.23.2 in its own virtualenv (it pins its own Django)

$(LS_VENV)/.installed-1.23.2:
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet label-studio==1.23.2
	touch $@

lock:  ## re-resolve dependencies into requirements.lock (fresh throwaway venv)
	rm -rf /tmp/lookfirst-lock && $(PYTHON) -m venv /tmp/lookfirst-lock
	/tmp/lookfirst-lock/bin/pip install --quiet -e '.[dev]'
	(echo "# Full pinned set, made with 'make lock'. Used as pip constraints."; \
	 /tmp/lookfirst-lock/bin/pip freeze --exclude-editable | grep -vi '^lookfirst') > requirements.lock

clean:  ## remove the virtualenv and caches (not LOOKFIRST_HOME)
	rm -rf $(VENV) .pytest_cache
