# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1:8000
# Tests run with DEBUG off, as in production; the key is for tests only.
TEST_ENV := SECRET_KEY=test-only-not-a-secret DJANGO_ALLOW_ASYNC_UNSAFE=true

.PHONY: run test test-fast lint install system-packages worker beat benchmark clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { echo "Cannot create a virtual environment: install python3-venv (apt-get install python3-venv)"; exit 1; }

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

## Debian packages the tests need (WeasyPrint's libraries); installs only what is missing.
system-packages:
	@bash scripts/install-system-packages.sh

## Run the app on the embedded default: SQLite, tasks in process, the seeded partnership, demo users.
run: install
	DEBUG=true $(BIN)/python manage.py migrate --noinput
	DEBUG=true $(BIN)/python manage.py seed_demo
	DEBUG=true $(BIN)/python manage.py runserver $(HOST)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(TEST_ENV) $(BIN)/mypy

# The families that start servers, workers or browsers, or stop services: one test at a time.
SERIAL := slow or browser or worker or services

## Run the whole test suite: lint, types, then pytest (against DATABASE_URL / CELERY_BROKER_URL when set):
## the tests that need no service on both cores, then the SERIAL families one at a time. A phase
## that PYTEST_ARGS leaves empty (pytest's exit status 5) is not a failure.
test: system-packages lint
	$(TEST_ENV) $(BIN)/pytest -n 2 -m "not ($(SERIAL))" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(TEST_ENV) $(BIN)/pytest -m "$(SERIAL)" $(PYTEST_ARGS) || [ $$? -eq 5 ]

## The quick local loop (about three minutes here): no lint, no slow families, browsers, workers or
## services; on both cores.
test-fast: install
	$(TEST_ENV) $(BIN)/pytest -q -p no:cacheprovider -n 2 -m "not ($(SERIAL))" $(PYTEST_ARGS)

worker: install
	$(BIN)/celery -A partnership worker --loglevel=INFO

beat: install
	$(BIN)/celery -A partnership beat --loglevel=INFO

benchmark: install
	SECRET_KEY=$${SECRET_KEY:-benchmark-only} DATABASE_URL=$${BENCHMARK_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/partnership_benchmark} \
		$(BIN)/python benchmarks/run.py --scale $${BENCHMARK_SCALES:-1000,10000} --json $${BENCHMARK_JSON:-benchmark-results.json} $(BENCHMARK_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .mypy_cache .ruff_cache
