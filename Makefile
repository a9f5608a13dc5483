# The two commands: `make demo` (set up + run the main job) and `make test` (set up + tests).
VENV ?= .venv
PY := $(VENV)/bin/python
CORPUS ?= data/corpus_quickstart
RUN ?= runs/quickstart

.PHONY: setup demo test test-fast bench fsdd codec tts clean

setup:
	bash scripts/setup.sh

demo: setup
	VENV=$(VENV) CORPUS=$(CORPUS) RUN=$(RUN) bash scripts/demo.sh

test: setup
	$(PY) -m pytest tests

# The inner loop: everything but the tests marked slow (minutes of CPU each).
test-fast: setup
	$(PY) -m pytest tests -m "not slow"

fsdd: setup
	VENV=$(VENV) bash scripts/fsdd.sh

codec: setup
	VENV=$(VENV) bash scripts/codec.sh

tts: setup
	VENV=$(VENV) bash scripts/tts.sh

bench: setup
	bash scripts/bench.sh

clean:
	rm -rf $(RUN) $(CORPUS)
