# MoCert: `make run` serves the demo on http://localhost:5000 (PORT overrides); `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
FLASK := $(BIN)/flask --app wsgi

.PHONY: run several-instances test fuzz bench bench-verify bench-accounts setup setup-test lock translations db demo-pki mobile-certificates marketplace-registration clean

AGENT_PORT ?= 61161
MARKET_PORT ?= 5001

# The server, and beside it the card agent with the emulated demo cards and the example relying party
# (臺灣雲市集 on http://localhost:5001), both stopped with the server.
run: setup translations db demo-pki mobile-certificates marketplace-registration
	@public=$${MOCERT_PUBLIC_URL:-http://localhost:$(PORT)}; \
	$(BIN)/python -m iccard.agent --emulate --port $(AGENT_PORT) --trust "$$public" & agent=$$!; \
	MARKETPLACE_PORT=$(MARKET_PORT) MARKETPLACE_MOCERT_URL="$$public" $(BIN)/python -m examples.marketplace & market=$$!; \
	trap 'kill $$agent $$market 2>/dev/null' EXIT INT TERM; \
	MOCERT_PUBLIC_URL="$$public" MOCERT_COMPONENT_URL=http://localhost:$(AGENT_PORT) \
	  $(FLASK) run --host localhost --port $(PORT)

# The marketplace registered once as an OIDC client (its secret goes to instance/marketplace-client.json) and
# as an agency of the TW FidO API (its sp_service_id and key to instance/marketplace-agency.json).
marketplace-registration: db
	MARKETPLACE_PORT=$(MARKET_PORT) MARKETPLACE_MOCERT_URL=$${MOCERT_PUBLIC_URL:-http://localhost:$(PORT)} \
	  $(BIN)/python -m examples.marketplace register

# Several instances behind HAProxy on PostgreSQL and Redis at 127.0.0.1 (README: Running several instances;
# SEVERAL_ARGS="--instances 3 --port 8100").
several-instances: setup translations
	$(BIN)/python -m deploy.several_instances $(SEVERAL_ARGS)

# The tests run in parallel workers (pytest-xdist), each with its own databases, servers and browser; those
# that need pcscd's one vpcd reader take turns on a lock. TEST_WORKERS=0 runs them all in one process.
TEST_WORKERS ?= 3
test: setup-test translations
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Every route, 1,000 requests each, against gunicorn on SQLite and PostgreSQL (FUZZ_ARGS="--seed 1 -n 200").
fuzz: setup-test translations
	$(BIN)/python -m fuzz $(FUZZ_ARGS)

# The full OIDC passkey login against python-fido2's example server in interleaved rounds (bench/README.md;
# BENCH_ARGS="--clients 16 --seconds 10 --rounds 3 --server 1x8 --database postgresql|sqlite"). PostgreSQL on
# 127.0.0.1:5432 (MOCERT_BENCH_POSTGRES_URL), and PyPI the first time (the fido2 sdist, fetched by pip to ~/.cache).
bench: setup translations
	$(BIN)/python -m bench.login $(BENCH_ARGS)

# MoCert's login with 1 k and with 1 M accounts in the deployment, interleaved rounds (bench/README.md;
# BENCH_ACCOUNTS_ARGS="--accounts 1000,1000000 --clients 4 --seconds 20 --rounds 4"). PostgreSQL as for bench;
# the 1 M database takes about 5 GB and some minutes to load.
bench-accounts: setup translations
	$(BIN)/python -m bench.accounts $(BENCH_ACCOUNTS_ARGS)

# The passkey verify path against the raw ECDSA-P256 verify under it, in one process (bench/README.md;
# BENCH_VERIFY_ARGS="--iterations 20000 --rounds 9" for a longer run).
bench-verify: setup
	$(BIN)/python -m bench.verify_path $(BENCH_VERIFY_ARGS)

# The venv is rebuilt only when the pinned requirements change: the lock, every file checked by its hash.
$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.txt
	touch $@

# The suite also drives the card agent through PC/SC: pyscard needs libpcsclite-dev and swig (Debian).
$(BIN)/.installed-test: $(BIN)/.installed requirements-test.txt requirements-agent.txt
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-test.txt -r requirements-agent.txt
	touch $@

# requirements.txt again from pyproject.toml's dependencies, keeping its pins (LOCK_ARGS=--upgrade to move
# them), with pip-tools in a venv of its own.
lock:
	test -x $(VENV)-lock/bin/pip-compile || \
	  ($(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet pip-tools)
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)-lock/bin/pip-compile --quiet --strip-extras --generate-hashes \
	  --allow-unsafe --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_ARGS) \
	  -o requirements.txt pyproject.toml

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

# Mobile certificates from before they named their CRL and OCSP (or naming another public URL): reissued.
mobile-certificates: db demo-pki
	MOCERT_PUBLIC_URL=$${MOCERT_PUBLIC_URL:-http://localhost:$(PORT)} $(FLASK) mobile-certificates reissue

clean:
	rm -rf $(VENV) $(VENV)-lock instance build
