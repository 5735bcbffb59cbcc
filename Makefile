# docker-runner: `make run` starts the runner, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ENV_FILE ?= .env

.PHONY: run test test-unit test-cluster lint format bench clean up up-monitoring down logs image engine
.PHONY: web web-if-possible clean-web bench-terminal stack-up stack-up-monitoring stack-down

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

## engine: a local Docker Engine with the test image (installs docker.io, starts dockerd when needed)
engine:
	bash scripts/dev-engine.sh

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## test-cluster: tests/cluster alone, on a real three-engine Swarm (scripts/swarm-bed.sh: needs root; the tests
## skip without it unless RUNNER_REQUIRE_CLUSTER=1). `make test` runs them too.
test-cluster: $(STAMP)
	RUNNER_REQUIRE_CLUSTER=$(RUNNER_REQUIRE_CLUSTER) $(BIN)/python -m pytest tests/cluster $(PYTEST_ARGS)

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
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/pool.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# ---- the browser terminal (client/web): npm ci + tsc + esbuild into client/web/dist (not committed)
NPM ?= npm
WEB := client/web
WEB_BUNDLE := $(WEB)/dist/index.html
WEB_DEPS := $(WEB)/node_modules/.package-lock.json
WEB_SOURCES := $(WEB)/package.json $(WEB)/build.mjs $(WEB)/tsconfig.json $(WEB)/index.html $(wildcard $(WEB)/src/*)

$(WEB_DEPS): $(WEB)/package-lock.json
	@command -v $(NPM) >/dev/null || { echo "npm is needed to build the browser terminal (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(WEB) && $(NPM) ci --ignore-scripts --no-audit --no-fund
	touch $@

$(WEB_BUNDLE): $(WEB_DEPS) $(WEB_SOURCES)
	cd $(WEB) && $(NPM) run --silent build

## web: build the browser terminal (served at /ui/terminal with DOCKER_RUNNER_UI=true)
web: $(WEB_BUNDLE)

# the runner serves the bundle and the browser tests drive it: built when missing or older than its
# sources. Without npm, run and test go on without it (/ui/terminal answers 404 ui_not_built and the
# browser tests skip, or fail under RUNNER_REQUIRE_BROWSER=1) instead of failing the whole command.
web-if-possible:
	@if command -v $(NPM) >/dev/null 2>&1; then $(MAKE) --no-print-directory web; \
	else echo "npm not found: the browser terminal is not built (Debian: apt-get install nodejs npm; then make web)" >&2; fi

run test: web-if-possible

## bench-terminal: keystroke-to-echo latency in Chromium beside a raw WebSocket client
bench-terminal: $(STAMP) $(WEB_BUNDLE)
	$(BIN)/python bench/terminal.py

clean-web:
	rm -rf $(WEB)/node_modules $(WEB)/dist
clean: clean-web

# ---- deploy: the runner (and its monitoring) under docker-compose --------------------------
COMPOSE ?= docker-compose
RUNNER_IMAGE ?= docker-runner:latest
COMPOSE_PROJECT ?= docker-runner
DOCKER_SOCKET ?= /var/run/docker.sock
# the engine socket's group: the image's unprivileged user reaches the socket through it
DOCKER_GID ?= $(shell stat -c %g $(DOCKER_SOCKET) 2>/dev/null)
# CA certificates the image build trusts for PyPI (networks whose egress re-signs TLS)
EXTRA_CA_FILES ?= $(wildcard /usr/local/share/ca-certificates/*.crt)
COMPOSE_BASE := -f compose/docker-compose.yml
COMPOSE_ALL := $(COMPOSE_BASE) -f compose/docker-compose.monitoring.yml
COMPOSE_ENV = DOCKER_GID=$(DOCKER_GID) DOCKER_SOCKET=$(DOCKER_SOCKET) DOCKER_RUNNER_IMAGE=$(RUNNER_IMAGE) \
	DOCKER_RUNNER_ENV_FILE=$(abspath $(ENV_FILE))
COMPOSE_RUN = $(COMPOSE_ENV) $(COMPOSE) -p $(COMPOSE_PROJECT) $(if $(wildcard $(ENV_FILE)),--env-file $(ENV_FILE))
# the same secret generation as `make run`, without needing the venv
ENSURE_SECRET = $(PYTHON) -c 'import sys; sys.path.insert(0, "runner"); from pathlib import Path; \
	from docker_runner import envfile; path = Path(sys.argv[1]); \
	envfile.ensure_secret(path, {}) and print(f"generated a shared secret into {path} ({envfile.SECRET_VARIABLE})")' $(ENV_FILE)

## image: build docker-runner:latest (debian:bookworm-slim is bootstrapped locally when absent)
image:
	bash tests/support/debian_base.sh
	docker build -f runner/Dockerfile -t $(RUNNER_IMAGE) \
		--build-arg EXTRA_CA_CERTS="$$(cat $(EXTRA_CA_FILES) </dev/null 2>/dev/null)" .

## up: build the image, then run the runner under compose with the settings of .env (a secret is generated if none)
up: image $(ENV_FILE)
	@$(ENSURE_SECRET)
	$(COMPOSE_RUN) $(COMPOSE_BASE) up -d

## up-monitoring: the same, plus Prometheus (127.0.0.1:9090) and Grafana (127.0.0.1:3000)
up-monitoring: image $(ENV_FILE)
	@$(ENSURE_SECRET)
	$(COMPOSE_RUN) $(COMPOSE_ALL) up -d

## down: stop and remove the runner and monitoring containers (their data volumes are kept)
down:
	$(COMPOSE_RUN) $(COMPOSE_ALL) down --remove-orphans

## logs: follow the services' logs
logs:
	$(COMPOSE_RUN) $(COMPOSE_ALL) logs -f --tail=100

# ---- deploy on a Docker Swarm: the stack of compose/docker-stack.yml (scripts/stack.sh) -----
# On a manager (DOCKER_HOST may name one). STACK_ENGINES: every node's engine to copy the images
# into (docker save | docker load, no registry), e.g. "ssh://node2 ssh://node3"; the manager's own
# engine is always one of them.
STACK_NAME ?= docker-runner
REDIS_IMAGE ?= docker-runner-redis:latest
STACK_ENGINES ?=
# DOCKER_SOCKET may be a Swarm template naming a per-node path (README, Deploy on Swarm): quoted
STACK_RUN = STACK_NAME=$(STACK_NAME) DOCKER_RUNNER_SECRET_NAME=$(STACK_NAME)-shared-secret \
	DOCKER_SOCKET='$(DOCKER_SOCKET)' DOCKER_GID=$(DOCKER_GID) DOCKER_RUNNER_IMAGE=$(RUNNER_IMAGE) DOCKER_RUNNER_REDIS_IMAGE=$(REDIS_IMAGE) \
	ENV_FILE=$(abspath $(ENV_FILE)) EXTRA_CA_FILES="$(EXTRA_CA_FILES)" bash scripts/stack.sh
STACK_LOADS = $(foreach engine,$(or $(DOCKER_HOST),unix:///var/run/docker.sock) $(STACK_ENGINES),--load $(engine))

## stack-up: build the images, copy them to STACK_ENGINES, create the Swarm secret from .env's (a secret is
## generated if none), deploy compose/docker-stack.yml as STACK_NAME and wait until every runner is healthy
stack-up: $(ENV_FILE)
	@$(ENSURE_SECRET)
	$(STACK_RUN) up $(STACK_LOADS)

## stack-up-monitoring: the same, plus Prometheus and Grafana (their images must be on the manager)
stack-up-monitoring: $(ENV_FILE)
	@$(ENSURE_SECRET)
	$(STACK_RUN) up --monitoring $(STACK_LOADS)

## stack-down: remove the stack and its Swarm secret
stack-down:
	$(STACK_RUN) down
