# seqrec: `make demo` and `make test` are the two commands a newcomer types.
# Both run `setup` first, which creates .venv and installs system tools when it can.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# Speech engines (espeak-ng, flite, festival and its voices), text for the open-vocabulary
# corpus (WordNet, GCIDE, fortunes), text for the word LM only (Ding's example sentences,
# trans-de-en: lm.extra_sources) and ffmpeg (video decoding, codec augmentation).
APT_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
	wordnet-base dict-gcide fortunes fortunes-min trans-de-en ffmpeg
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup system-tools demo demo-speech demo-video test test-fast lint bench clean help

help:
	@echo "make demo   - install everything, run the speech and video recipes on the embedded data"
	@echo "make test   - install everything and run the test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - run the benchmark suite (recipes/benchmarks)"

setup: $(STAMP) system-tools

# Installs apt packages only when one is missing and we are root or have passwordless sudo.
system-tools:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "Missing system tools:$$missing. Install them with: sudo apt-get install -y $(APT_PACKAGES)"; exit 0; fi; \
	  echo "Installing system tools:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null \
	    || echo "apt-get failed; install by hand: sudo apt-get install -y $(APT_PACKAGES)"; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev,voices]'
	touch $(STAMP)

# A test file spoken by an engine never heard in training (piper), else the first test file.
SPEECH_SAMPLE = $$(f=$$(grep -m1 '"engine": "piper"' exp/speech_ctc/corpus/test.jsonl | sed 's/.*"audio_filepath": "\([^"]*\)".*/\1/'); \
	if [ -n "$$f" ]; then echo exp/speech_ctc/corpus/$$f; else ls exp/speech_ctc/corpus/wavs/test/*.wav | head -1; fi)
VIDEO_SAMPLE  = $$(find exp/video_activity/corpus/videos/test -name '*.mp4' | sort | head -1)

demo: demo-speech demo-video

demo-speech: setup
	$(PY) recipes/speech_ctc/run.py
	@echo "== seqrec transcribe of a test file from an engine never heard in training =="
	$(VENV)/bin/seqrec transcribe --model exp/speech_ctc/bundle --format json $(SPEECH_SAMPLE)

demo-video: setup
	$(PY) recipes/video_activity/run.py
	@echo "== seqrec label of an unseen-seed test clip =="
	$(VENV)/bin/seqrec label --model exp/video_activity/bundle --top-k 3 $(VIDEO_SAMPLE)

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lint: setup
	$(PY) -m ruff check pipeline data_prep recipes tests

bench: setup
	$(VENV)/bin/pip install -q -e '.[bench]'
	$(PY) recipes/benchmarks/run.py

clean:
	rm -rf exp .pytest_cache
