# make demo: set up, make a sample clip and run the main job on it.
# make test: set up and run the test suite (fast tests); make test-slow: the slow ones.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow bench clean
setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml constraints.txt scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

demo: setup
	mkdir -p samples
	$(BIN)/videoinv sample samples/sample.mp4 --seconds 5 -y
	$(BIN)/videoinv inspect samples/sample.mp4 -o samples/sample_inspect.mp4 --json samples/tracks.json -y
	$(BIN)/videoinv edit samples/sample.mp4 -o samples/sample_edit.mp4 --chain copy -y
	$(BIN)/videoinv probe samples/sample_edit.mp4

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/io_throughput.py
	$(BIN)/python benchmarks/model_throughput.py
	$(BIN)/python benchmarks/faces_throughput.py

clean:
	rm -rf samples benchmarks/results .pytest_cache
