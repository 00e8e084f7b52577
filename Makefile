# Two targets that work on a fresh machine from a clean clone: `make pipeline` and `make test`.
# Both create (or reuse) .venv and install hilci with the extras it needs, pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# airflow: the DAG's tests (tests/test_airflow.py); on Python < 3.11 its marker installs nothing (docs/airflow.md)
EXTRAS ?= train,cluster,dev,airflow
PYTEST_ARGS ?=
# The test tiers (markers registered in pyproject.toml). The fast tier needs no emulator process, server, browser
# or pipeline run: a developer runs it before each commit, and the pipeline's build stage runs it (hilci.yaml
# build.unit_test_marker says the same expression; tests/test_tiers.py checks they agree).
FAST_TIER := not (slow or pipeline or emulator or server or browser)

.PHONY: pipeline test test-fast test-rest venv lint jenkinsfile groovy chromium doctor clean deviceplugin-proto \
	images container-tools pods

# Without a Docker engine (a `docker` client alone is not one) images are built and run with podman.
CONTAINER_TOOLS := $(if $(shell docker info >/dev/null 2>&1 && echo engine),,container-tools)

# System packages: installed with apt-get when we are root; otherwise the exact command is printed and make
# stops (nothing here asks for a password). $(call apt,COMMAND,PACKAGE,WHY)
define apt
	@command -v $(1) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(2) ($(3))"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "$(1) is missing ($(3)): run 'sudo apt-get install -y $(2)', then make again" >&2; exit 1; \
	  fi; }
endef

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "$(PYTHON) cannot make a venv: run 'sudo apt-get install -y python3-venv', then make again" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

# Debian's groovy (2.4.21, the Groovy Jenkins embeds; it brings a Java runtime) parses the Jenkinsfile in the
# tests, which the build stage runs: both `make pipeline` and `make test` need it.
groovy:
	$(call apt,groovy,groovy,the build stage and the tests parse the Jenkinsfile with it)

# Debian's Chromium renders the HTML report in the browser test (tests/test_report_browser.py).
chromium:
	$(call apt,chromium,chromium,the tests look at the HTML report in a real browser)

# What every stage needs, named with its install command (exit 2 when something is missing).
doctor: groovy $(STAMP)
	$(BIN)/hilci doctor

pipeline: groovy $(STAMP)
	$(BIN)/hilci run

# The airflow extra installs nothing below Python 3.11: there the tests marked `airflow` are deselected, and
# make says so (`only` prefixes the -m expression). They are slow-marked: never in the fast tier.
AIRFLOW_OR_NOT = if $(BIN)/python -c 'import airflow.providers.cncf.kubernetes' 2>/dev/null; then only=; else \
	  echo "make: Airflow is not installed here (the airflow extra needs Python >= 3.11): -m 'not airflow'"; \
	  only="not airflow and "; fi

# Every test, once. When the pipeline's build stage has passed for exactly this code (`hilci plan` finds its entry
# cached: same tests, same sources, same settings), the fast tier it ran is not run again; else every tier runs.
# The slow tests in tests/test_images.py build the pod images and run them (make images says how).
test: groovy chromium $(CONTAINER_TOOLS) $(STAMP)
	@$(AIRFLOW_OR_NOT); \
	if $(BIN)/hilci plan --only build --json 2>/dev/null \
	    | $(BIN)/python -c 'import json, sys; sys.exit("build" not in json.load(sys.stdin)["cached"])'; then \
	  echo "make test: the build stage passed for this code (hilci plan: build cached): its fast tier is not run again"; \
	  $(BIN)/python -m pytest tests -p no:cacheprovider -m "$${only}not ($(FAST_TIER))" $(PYTEST_ARGS); \
	else \
	  $(BIN)/python -m pytest tests -p no:cacheprovider -m "$${only% and }" $(PYTEST_ARGS); \
	fi

# The fast tier: under 3 minutes on a 2-core machine.
test-fast: groovy $(STAMP)
	$(BIN)/python -m pytest tests -p no:cacheprovider -m "$(FAST_TIER)" $(PYTEST_ARGS)

# Every tier but the fast one: what CI runs after `make pipeline`, whose build stage ran the fast tier.
test-rest: groovy chromium $(CONTAINER_TOOLS) $(STAMP)
	@$(AIRFLOW_OR_NOT); \
	$(BIN)/python -m pytest tests -p no:cacheprovider -m "$${only}not ($(FAST_TIER))" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check ci conversion hil_tests tests benchmarks images

jenkinsfile: $(STAMP)
	$(BIN)/hilci jenkinsfile --write

# The rig device plugin's gRPC code, from the kubelet's api.proto (ci/kube/deviceplugin/PROTO.md).
# The import name is hilci (folder ci/): protoc sees the file as hilci/kube/deviceplugin/api.proto through a link.
deviceplugin-proto: $(STAMP)
	@tmp=$$(mktemp -d) && ln -s $(CURDIR)/ci $$tmp/hilci && \
	  $(BIN)/python -m grpc_tools.protoc -I $$tmp --python_out=$$tmp --grpc_python_out=$$tmp \
	    $$tmp/hilci/kube/deviceplugin/api.proto; rc=$$?; rm -rf $$tmp; exit $$rc

# The pod images (images/*/Dockerfile), each tagged with the name its pod templates use (LABEL dev.hilci.image),
# by images/build.py: with docker where its engine answers, else with podman over stand-in bases built here
# (the jetson one then amd64 and without TensorRT; images/build.py says how). IMAGES=cpu builds one.
IMAGES ?=
images: $(CONTAINER_TOOLS)
	$(PYTHON) images/build.py $(IMAGES)

# Every stage in its own pod template's container, as a Jenkins build runs it (`hilci pods`, ci/jenkins/pods.py):
# `podman kube play` of podtemplates/*.yaml, the Jenkinsfile's own steps, a SeaweedFS store shared by the pods,
# the emulated rig in the Jetson pods. Needs the images (make images); JUnit and report land in reports/pods/.
# PODS_ARGS passes options, e.g. PODS_ARGS='--boards orin-nx'.
PODS_ARGS ?=
pods: $(STAMP)
	$(call apt,podman,podman,make pods starts the pod templates with podman kube play)
	$(call apt,runc,runc,podman runs the pods with it: images/containers.conf)
	$(BIN)/hilci pods $(PODS_ARGS)

# What images/build.py needs without a Docker engine: podman with runc (crun fails on hybrid cgroups; settings
# in images/containers.conf) and debootstrap for the Debian base image.
container-tools:
	$(call apt,podman,podman,make images builds the pod images with it: no Docker engine answers here)
	$(call apt,runc,runc,podman runs the image builds with it: images/containers.conf)
	$(call apt,debootstrap,debootstrap,make images makes its Debian base image with it)

clean:
	rm -rf reports artifacts dist .hilci-cache build *.egg-info
