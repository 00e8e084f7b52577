# Two targets that work on a fresh machine from a clean clone: `make pipeline` and `make test`.
# Both create (or reuse) .venv and install hilci with the extras it needs, pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= train,cluster,dev
PYTEST_ARGS ?=

.PHONY: pipeline test venv lint jenkinsfile groovy clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's groovy (2.4.21, the Groovy Jenkins embeds) parses the Jenkinsfile in the tests.
groovy:
	@command -v groovy >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq groovy >/dev/null; \
	  else echo "groovy is missing: sudo apt-get install groovy" >&2; exit 1; fi; }

pipeline: $(STAMP)
	$(BIN)/hilci run

test: $(STAMP) groovy
	$(BIN)/python -m pytest tests -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check ci conversion hil_tests tests benchmarks

jenkinsfile: $(STAMP)
	$(BIN)/hilci jenkinsfile --write

clean:
	rm -rf reports artifacts dist .hilci-cache build *.egg-info
