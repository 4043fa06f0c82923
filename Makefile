# MoCert: `make run` serves the demo on http://localhost:5000 (PORT overrides); `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test setup setup-test translations db demo-pki clean

run: setup translations db demo-pki
	MOCERT_PUBLIC_URL=$${MOCERT_PUBLIC_URL:-http://localhost:$(PORT)} $(FLASK) run --host localhost --port $(PORT)

test: setup-test translations
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The venv is rebuilt only when the pinned requirements change.
$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

setup: $(BIN)/.installed
setup-test: $(BIN)/.installed-test

CATALOGS := $(wildcard app/translations/*/LC_MESSAGES/messages.po)
translations: $(CATALOGS:.po=.mo)
%.mo: %.po $(BIN)/.installed
	$(BIN)/pybabel compile -i $< -o $@

db: setup
	$(FLASK) db upgrade

demo-pki: setup
	MOCERT_PUBLIC_URL=$${MOCERT_PUBLIC_URL:-http://localhost:$(PORT)} $(FLASK) pki init-demo

clean:
	rm -rf $(VENV) instance
