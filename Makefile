# docker-runner: `make run` starts the runner, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ENV_FILE ?= .env

.PHONY: run test test-unit lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[server,dev]'
	touch $(STAMP)

$(ENV_FILE):
	cp .env.example $(ENV_FILE)

## run: start the runner on 127.0.0.1:7071 against the local daemon (a secret is generated into .env if none)
run: $(STAMP) $(ENV_FILE)
	$(BIN)/docker-runner --env-file $(ENV_FILE) --ensure-secret

## test: the whole suite (Docker-marked tests skip without a daemon unless RUNNER_REQUIRE_DOCKER=1)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## lint: ruff check, ruff format --check, mypy --strict on both packages
lint: $(STAMP)
	$(BIN)/ruff check runner client tests bench
	$(BIN)/ruff format --check runner client tests bench
	$(BIN)/mypy --strict runner/docker_runner client/docker_runner_client

format: $(STAMP)
	$(BIN)/ruff check --fix runner client tests bench
	$(BIN)/ruff format runner client tests bench

bench: $(STAMP)
	$(BIN)/python bench/exec_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
