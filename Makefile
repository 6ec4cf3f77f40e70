# Keyturn: `make run` serves the token service (SQLite, demo user); `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= .keyturn
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@mkdir -p $(DATA_DIR) && chmod 700 $(DATA_DIR)
	@test -s $(DATA_DIR)/demo-password || \
		(umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(12))' > $(DATA_DIR)/demo-password)
	@KEYTURN_DATA_DIR=$(DATA_DIR) $(BIN)/keyturn users add demo --password-stdin --exist-ok < $(DATA_DIR)/demo-password
	@echo "Demo user: demo, password in $(DATA_DIR)/demo-password (see the README's walk-through)."
	KEYTURN_DATA_DIR=$(DATA_DIR) $(BIN)/keyturn serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/refresh.py
	$(BIN)/python bench/verify.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
