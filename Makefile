# Two targets that work on a fresh machine from a clean clone: `make pipeline` and `make test`.
# Both create (or reuse) .venv and install hilci with the extras it needs, pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= train,cluster,dev
PYTEST_ARGS ?=

.PHONY: pipeline test venv lint jenkinsfile groovy clean deviceplugin-proto images

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

# The rig device plugin's gRPC code, from the kubelet's api.proto (ci/kube/deviceplugin/PROTO.md).
deviceplugin-proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. ci/kube/deviceplugin/api.proto

# The pod images (images/*/Dockerfile), each tagged with the name its pod templates use (LABEL dev.hilci.image).
# The jetson image is arm64: build it on a Jetson or with `docker buildx build --platform linux/arm64`.
images:
	@for d in images/*/Dockerfile; do \
	  tag=$$(sed -n 's/^LABEL dev.hilci.image="\(.*\)"/\1/p' $$d); \
	  echo "docker build -f $$d -t $$tag ."; docker build -f $$d -t $$tag . || exit 1; done

clean:
	rm -rf reports artifacts dist .hilci-cache build *.egg-info
