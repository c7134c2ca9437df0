# make demo: set up, make a sample clip and run the main job on it.
# make test: set up and run the test suite (fast tests); make test-slow: the slow ones; make test-gpu: the CUDA ones.
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_WEIGHTS := psp-ffhq-encode fse-encoder fse-direction-smile

.PHONY: setup test-setup demo test test-slow test-gpu bench clean
setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml constraints.txt scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

# the tests also want chromium (to open the benchmark report)
test-setup: $(VENV)/.test-setup-done
$(VENV)/.test-setup-done: pyproject.toml constraints.txt scripts/setup.sh
	WITH_CHROMIUM=1 VENV=$(VENV) scripts/setup.sh
	touch $(VENV)/.setup-done $@

demo: setup
	mkdir -p samples
	$(BIN)/videoinv sample samples/sample.mp4 --seconds 5 -y
	$(BIN)/videoinv inspect samples/sample.mp4 -o samples/sample_inspect.mp4 --json samples/tracks.json -y
	@if $(BIN)/videoinv weights check $(DEMO_WEIGHTS) -q 2>/dev/null; then \
		echo "$(BIN)/videoinv edit samples/sample.mp4 -o samples/sample_edit.mp4 --edit smile=0:0s,1.5:2s -y"; \
		$(BIN)/videoinv edit samples/sample.mp4 -o samples/sample_edit.mp4 --edit smile=0:0s,1.5:2s -y; \
	else \
		echo "demo: the FFHQ weights are not in the cache ('videoinv weights fetch $(DEMO_WEIGHTS)');"; \
		echo "demo: editing with random weights instead, which only shows the plumbing"; \
		echo "$(BIN)/videoinv edit samples/sample.mp4 -o samples/sample_edit.mp4 --model random:256:32 --edit sefa0=0:0s,3:2s -y"; \
		$(BIN)/videoinv edit samples/sample.mp4 -o samples/sample_edit.mp4 --model random:256:32 --edit sefa0=0:0s,3:2s -y; \
	fi
	$(BIN)/videoinv probe samples/sample_edit.mp4

test: test-setup
	$(BIN)/python -m pytest -q

test-slow: test-setup
	$(BIN)/python -m pytest -q -m "slow and not gpu"

bench: setup
	$(BIN)/python benchmarks/io_throughput.py
	$(BIN)/python benchmarks/encode_presets.py
	$(BIN)/python benchmarks/model_throughput.py
	$(BIN)/python benchmarks/faces_throughput.py
	$(BIN)/python benchmarks/edit_throughput.py
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/cold_start.py

clean:
	rm -rf samples benchmarks/results .pytest_cache

# the GPU tests skip one by one without CUDA; here no CUDA device is an error, not a green run
NO_CUDA := test-gpu: torch {} in $(VENV) sees no CUDA device (a CPU build of torch, or no GPU driver); install a CUDA build of torch into $(VENV) and run again
test-gpu: test-setup
	@$(BIN)/python -c "import sys, torch; torch.cuda.is_available() or sys.exit('$(NO_CUDA)'.format(torch.__version__))"
	$(BIN)/python -m pytest -q -m gpu
