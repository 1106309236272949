# Every target sets up what it needs: a fresh clone needs only python3 and make.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
ETL := $(VENV)/bin/etl
PYTEST_ARGS ?=

help: ## List the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-groups --quiet --compile-bytecode
	@touch $@

venv: $(VENV)/.synced ## Create or update the virtual environment from uv.lock

system-deps: ## Install the Debian packages tests need when missing (mariadb-server, chromium)
	@missing=""; \
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || command -v mysqld >/dev/null || missing="$$missing mariadb-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing system packages:$$missing (install them, or set ETL_TEST_MYSQL_URI)"; fi; \
	fi

migrate: venv ## Run the migration playbook (sample data and a local server unless MYSQL_URI / --from say otherwise)
	$(ETL) migrate $(ARGS)

load: venv ## Write the stage into MySQL: chunked, checked, resumable; loading it again writes nothing
	$(ETL) load $(ARGS)

parity: venv ## Compare the stage with MySQL (exit 1 on a mismatch); report in runtime/parity/
	$(ETL) parity --fail-on-mismatch $(ARGS)

docs: venv ## Build the Great Expectations data docs: expectations/gx/uncommitted/data_docs/local_site/index.html
	$(ETL) docs

test: venv system-deps ## Run the test suite against real MySQL, DuckDB and files
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-mysql: venv system-deps ## The test suite against Oracle MySQL (Debian sid's, in a chroot; root; builds it the first time)
	tests/mysql/chroot.sh up
	ETL_TEST_MYSQL_URI=mysql://root@127.0.0.1:$${MYSQL_CHROOT_PORT:-3307}/etl_test $(VENV)/bin/pytest $(PYTEST_ARGS)

db-up: venv ## Start the project-local MySQL server
	$(ETL) db up

db-down: venv ## Stop the project-local MySQL server
	$(ETL) db down

duckdb: venv ## Open DuckDB's shell on the staged data (views per table, rejects, export store; ARGS=--mysql adds mysql_<table>)
	$(ETL) sql --shell $(ARGS)

clean: ## Remove generated data (keeps the virtual environment and the local server's data)
	rm -rf data/stage runtime/sample-export runtime/runs

.PHONY: help venv system-deps migrate load parity docs test test-mysql db-up db-down duckdb clean
