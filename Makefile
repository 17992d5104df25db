# Every target works on a fresh machine with Python 3.11+ and git: the first one that needs the virtualenv
# builds it. Python 3.13 (the Lambda runtime) is preferred when it can be found.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# pyenv installs 3.13 without putting it first on PATH (and its shim fails unless selected), so look there too,
# and keep only a candidate that actually runs.
PY_CANDIDATES := $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13 python3
PYTHON ?= $(firstword $(foreach c,$(PY_CANDIDATES),$(shell $(c) -c 'import sys; assert sys.version_info >= (3, 11); print("$(c)")' 2>/dev/null)))
VENV := .venv
VENV_SAM := .venv-sam
BIN := $(VENV)/bin
SAM := $(VENV_SAM)/bin/sam

.PHONY: help venv lock run invoke pairs test lint typecheck unit integration e2e template sam-validate build check-build bench soak mutation format clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# The dev lock pins the layer's runtime packages at the layer lock's versions (tests/unit/test_locks.py checks it),
# so the tests run on the set that is deployed; every download is checked against the lock's hashes.
# The last step installs the slack-tokens command (editable, no dependencies); the egg-info it leaves in
# layers/common would ship in the layer, so it goes.
$(BIN)/.installed: requirements-dev.txt layers/common/requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (python3.13 preferred)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . && rm -rf layers/common/*.egg-info
	@touch $@

$(VENV_SAM)/.installed:
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (python3.13 preferred)"; exit 1; }
	$(PYTHON) -m venv $(VENV_SAM)
	$(VENV_SAM)/bin/python -m pip install --quiet aws-sam-cli==1.170.0
	@touch $@

venv: $(BIN)/.installed ## create .venv with the locked dev dependencies (hashes required)

# Both locks are resolved from their .in files. The layer's is for the Lambda target (the template's Architectures
# and Runtime, wheels only), whatever machine runs this; the dev lock is universal (any OS, Python 3.11+) and takes
# the runtime packages from the layer lock. Versions already locked are kept unless UPGRADE=1.
LAMBDA_PLATFORM := aarch64-manylinux2014
LOCK_FLAGS = --quiet --generate-hashes --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
lock: $(BIN)/.installed ## refresh both locks with hashes from the .in files (UPGRADE=1: newest versions allowed)
	$(BIN)/uv pip compile $(LOCK_FLAGS) --python-version 3.13 --python-platform $(LAMBDA_PLATFORM) \
	  --only-binary :all: layers/common/requirements.in -o layers/common/requirements.txt
	$(BIN)/uv pip compile $(LOCK_FLAGS) --universal --python-version 3.11 requirements-dev.in -o requirements-dev.txt

run: $(BIN)/.installed ## the whole flow on this machine until Ctrl-C (PORT=, TOKEN_LIFETIME=, ROTATE_EVERY=)
	$(BIN)/python -m local.run

invoke: $(BIN)/.installed ## run one function once: FN=<logical id> EVENT=events/<file>.json [ATTACH=1]
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=RotateFunction EVENT=events/rotate_sweep.json [ATTACH=1]"; exit 2; }
	$(BIN)/python -m local.invoke "$(FN)" "$(EVENT)" $(if $(ATTACH),--attach)

pairs: $(BIN)/.installed ## the token pairs (never a token): `slack-tokens pairs` (the running `make run`, else the stack) ARGS=
	$(BIN)/slack-tokens pairs $(ARGS)

test: lint typecheck ## the full suite: lint, types, unit + integration + browser tests with the coverage gate
	$(BIN)/python -m pytest tests --cov --cov-report=term

unit: $(BIN)/.installed ## unit tests only (fast)
	$(BIN)/python -m pytest tests/unit -q

integration: $(BIN)/.installed ## integration tests (moto server + fake Slack over HTTP)
	$(BIN)/python -m pytest tests/integration -q

e2e: $(BIN)/.installed ## browser test: headless Chromium installs into the sandbox (needs /usr/bin/chromium)
	$(BIN)/python -m pytest tests/e2e -q

lint: $(BIN)/.installed ## ruff lint + format check, cfn-lint on the template
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

format: $(BIN)/.installed ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(BIN)/.installed ## mypy --strict on the layer
	$(BIN)/mypy

sam-validate: $(VENV_SAM)/.installed ## sam validate --lint (no AWS account needed)
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint

build: $(VENV_SAM)/.installed ## sam build without Docker (needs python3.13, the functions' runtime)
	@PATH="$(dir $(PYTHON)):$$PATH" command -v python3.13 >/dev/null || { \
	  echo "sam build needs python3.13 on PATH (the functions' runtime); set PYTHON=/path/to/python3.13"; exit 1; }
	PATH="$(dir $(PYTHON)):$$PATH" $(SAM) build

check-build: $(BIN)/.installed ## check the last `make build`: a hash-based .pyc for every .py, nothing of the checkout
	REQUIRE_BUILD=1 $(BIN)/python -m pytest tests/built -q

# --- What `sam build` runs (BuildMethod: makefile, ContextPath: .) -------------------------------------------------
# SAM copies the resource's CodeUri/ContentUri to a scratch directory, runs `make build-<LogicalId>` there with this
# Makefile and ARTIFACTS_DIR set, and zips ARTIFACTS_DIR as is. Each target ships every module as a hash-based .pyc
# for Python 3.13 beside its source: SAM's zip dates every entry 1980-01-01, which makes timestamp-based .pyc stale,
# and Lambda's read-only /opt and /var/task let no cache be written, so without them every cold start compiles every
# module. unchecked-hash: the deployed code never changes, so reading and hashing each source at import buys nothing
# (tests/built checks at build time that each .pyc matches its source). docs/build.md has the measurements.
LAMBDA_PYTHON ?= $(firstword $(foreach c,$(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) python3.13,$(shell $(c) -c 'import sys; assert sys.version_info[:2] == (3, 13); print("$(c)")' 2>/dev/null)))
LAMBDA_PIP_TARGET := --platform manylinux2014_aarch64 --implementation cp --python-version 3.13 --only-binary=:all:
COMPILE = $(LAMBDA_PYTHON) -m compileall -q --invalidation-mode unchecked-hash
COPY_SOURCES = tar --exclude=__pycache__ --exclude='*.py[co]' --exclude='*.egg-info' --exclude=build -cf -

build-SharedLayer:
	@test -n "$(ARTIFACTS_DIR)" || { echo "run by sam build (ARTIFACTS_DIR unset): use make build"; exit 2; }
	@test -n "$(LAMBDA_PYTHON)" || { echo "the layer is compiled for Python 3.13: python3.13 not found"; exit 1; }
	rm -rf "$(ARTIFACTS_DIR)/python"
	$(LAMBDA_PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile --no-deps --require-hashes \
	  $(LAMBDA_PIP_TARGET) --target "$(ARTIFACTS_DIR)/python" -r requirements.txt
	rm -rf "$(ARTIFACTS_DIR)/python/bin"
	$(COPY_SOURCES) slack_tokens | tar -xf - -C "$(ARTIFACTS_DIR)/python"
	$(COMPILE) -s "$(ARTIFACTS_DIR)/python" -p /opt/python "$(ARTIFACTS_DIR)/python"

build-InstallFunction build-OAuthCallbackFunction build-RotateFunction build-ExchangeFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo "run by sam build (ARTIFACTS_DIR unset): use make build"; exit 2; }
	@test -n "$(LAMBDA_PYTHON)" || { echo "the functions are compiled for Python 3.13: python3.13 not found"; exit 1; }
	$(COPY_SOURCES) --exclude=tests . | tar -xf - -C "$(ARTIFACTS_DIR)"
	$(COMPILE) -s "$(ARTIFACTS_DIR)" -p /var/task "$(ARTIFACTS_DIR)"

bench: $(BIN)/.installed ## benchmarks: cold start vs the boto3 floor, AWS calls per callback, rotation, crash table
	$(BIN)/python -m bench

soak: $(BIN)/.installed ## chaos soak of rotation (kills, Slack and AWS faults, overlaps): SOAK_ARGS="--seed N --duration S"
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Not part of `make test` or .ci/run: each mutant runs the rotation, guard and exchange tests in a copy of the tree.
mutation: $(BIN)/.installed ## mutation check of the write path (tests/mutation.py): MUTATION_ARGS="--sample 40 --seed 1"
	$(BIN)/python -m tests.mutation $(MUTATION_ARGS)

clean: ## remove build output and virtualenvs
	rm -rf .aws-sam $(VENV) $(VENV_SAM) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov artifacts
