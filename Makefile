# Keyturn: `make run` serves the token service (SQLite, demo user); `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= .keyturn
HOST ?= 127.0.0.1
PORT ?= 8000

JS := clients/js
JS_STAMP := $(JS)/node_modules/.installed
DEMO_JS := src/keyturn/server/demo/keyturn.js
DEMO_DPOP_JS := src/keyturn/server/demo/dpop.js
CHROMIUM := /usr/bin/chromium

EXAMPLE_DIR ?= .keyturn-example
EXAMPLE_PORT ?= 8001

.PHONY: install run example test lint format bench clean js js-test browser nginx pgbouncer

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The browser client: npm packages from the lock file, then the bundle the demo page loads.
$(JS_STAMP): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The base bundle and the DPoP entry (which loads the base bundle beside it), built together.
$(DEMO_JS) $(DEMO_DPOP_JS) &: $(JS_STAMP) $(wildcard $(JS)/src/*.ts) $(JS)/tsconfig.build.json $(JS)/scripts/build.mjs
	cd $(JS) && npm run --silent build
	cp $(JS)/dist/keyturn.js $(DEMO_JS)
	cp $(JS)/dist/dpop.js $(DEMO_DPOP_JS)

js: $(DEMO_JS) $(DEMO_DPOP_JS)

js-test: $(JS_STAMP)
	cd $(JS) && npm run --silent typecheck && npm test --silent && npm run --silent build && npm run --silent size

# The browser tests drive Debian's Chromium (never a downloaded browser).
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The README's reverse-proxy example is checked with Debian's nginx (tests/e2e/test_reverse_proxy.py); the test
# starts its own, so the package's service is not started (RUNLEVEL=1).
nginx:
	@test -x /usr/sbin/nginx || (apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light)

# The PostgreSQL store behind a pooler in transaction mode is checked with Debian's PgBouncer
# (tests/contract/test_pg_pooler.py); the test starts its own, so the package's service is not started.
pgbouncer:
	@test -x /usr/sbin/pgbouncer || (apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer)

run: $(STAMP) $(DEMO_JS)
	@mkdir -p $(DATA_DIR) && chmod 700 $(DATA_DIR)
	@test -s $(DATA_DIR)/demo-password || \
		(umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(12))' > $(DATA_DIR)/demo-password)
	@KEYTURN_DATA_DIR=$(DATA_DIR) $(BIN)/keyturn users add demo --password-stdin --exist-ok < $(DATA_DIR)/demo-password
	@echo "Demo user: demo, password in $(DATA_DIR)/demo-password (see the README's walk-through)."
	@echo "Demo page: http://$(HOST):$(PORT)/demo/ (sign in as demo with that password)."
	KEYTURN_DATA_DIR=$(DATA_DIR) KEYTURN_DOCS=on $(BIN)/keyturn serve --host $(HOST) --port $(PORT)

# examples/fastapi_app: an app with its own users serving Keyturn's sessions (docs/fastapi.md).
example: $(STAMP)
	@mkdir -p $(EXAMPLE_DIR) && chmod 700 $(EXAMPLE_DIR)
	@test -s $(EXAMPLE_DIR)/demo-password || \
		(umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(12))' > $(EXAMPLE_DIR)/demo-password)
	@KEYTURN_DATA_DIR=$(EXAMPLE_DIR) $(BIN)/python -m examples.fastapi_app users add demo@example.com --exist-ok < $(EXAMPLE_DIR)/demo-password
	@echo "Example user: demo@example.com, password in $(EXAMPLE_DIR)/demo-password (see docs/fastapi.md)."
	KEYTURN_DATA_DIR=$(EXAMPLE_DIR) $(BIN)/python -m examples.fastapi_app serve --host $(HOST) --port $(EXAMPLE_PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

test: lint js-test $(DEMO_JS) browser nginx pgbouncer
	$(BIN)/pytest

# Keyturn against djangorestframework-simplejwt, side by side (bench/compare/run.py, about 5 minutes; it makes
# its own venv for SimpleJWT): bench/compare/results/ (JSON, plots) and docs/benchmarks.md. Then access-token
# validation (bench/verify.py). bench/refresh.py, client_overhead.py and soak.py are run by hand, and so is
# bench/compare/profile_django.py (the Django drop-in beside SimpleJWT alone, CPU per refresh, py-spy).
bench: $(STAMP)
	$(BIN)/python bench/compare/run.py
	$(BIN)/python bench/verify.py

clean:
	rm -rf build dist $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info $(JS)/node_modules $(JS)/dist $(DEMO_JS) $(DEMO_DPOP_JS) bench/compare/.venv
