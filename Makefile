# One entry point for everything: `make test` sets up a fresh machine and runs every check.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The synthesizer and its SoundFont; a real browser and its driver (web app and study tests);
# speech for test clips (ducking); MuseScore (notation programs read our MIDI).
DEBIAN_PACKAGES := fluidsynth fluid-soundfont-gm chromium chromium-driver espeak-ng musescore3 g++

.PHONY: setup test lint demo bench clean

setup: $(STAMP)

# torch first, from its pinned CPU build, so nothing later pulls the CUDA wheels.
$(STAMP): vbgm/pyproject.toml ap10k/pyproject.toml
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && ! dpkg -s $(DEBIAN_PACKAGES) >/dev/null 2>&1; then \
		echo "installing $(DEBIAN_PACKAGES) (Debian)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_PACKAGES) >/dev/null; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e 'vbgm[test]' -e 'ap10k[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# One pytest run per distribution: both have tests/conftest.py and test modules of the same name.
test: lint
	$(VENV)/bin/pytest -q vbgm/tests
	$(VENV)/bin/pytest -q ap10k/tests

demo: $(STAMP)
	$(VENV)/bin/vbgm demo -o out

bench: $(STAMP)
	$(PY) -m pip install -q -e 'vbgm[bench]'
	$(VENV)/bin/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out
