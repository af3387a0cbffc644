# Two commands on a fresh clone: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv if missing and installs what it needs; nothing is installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The gpu extra where an NVIDIA GPU answers, else cpu.
EXTRA  := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
# Real data for local runs and tests: ../shared/data when it is there (see README, "Data").
DATA   ?= $(if $(EDGERUN_DATA_DIR),$(EDGERUN_DATA_DIR),$(wildcard ../shared/data))
OUT    ?= out

.PHONY: demo test lint models resnet50 bench soak field-eval clean help

help:
	@echo "make demo    set up .venv and run the main job"
	@echo "make test    set up .venv and run the test suite (what CI runs)"
	@echo "make models  train and export the bundled models (DATA=dir with mnist/)"
	@echo "make resnet50 WEIGHTS=imagenet|PATH|none  export ResNet50 (never committed)"
	@echo "make bench   pytest-benchmark over the bundled models"
	@echo "make soak    10,000 frames through run: memory, threads, files, fps"
	@echo "make field-eval  localizer and photo accuracy on field pictures of MNIST test digits, fps"
	@echo "make lint    ruff over the code"
	@echo "make clean   remove .venv and build outputs"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# One stamp per set of extras, redone when pyproject.toml changes.
$(VENV)/.runtime-$(EXTRA): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$(EXTRA)]"
	touch $@

$(VENV)/.all-$(EXTRA): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[$(EXTRA),train,dev]"
	touch $@ $(VENV)/.runtime-$(EXTRA)

# The main job: the bundled models through the runtime only (no TensorFlow needed).
demo: $(VENV)/.runtime-$(EXTRA)
	$(BIN)/edgerun demo $(if $(DATA),--data-dir $(DATA)) --out $(OUT)/demo

test: $(VENV)/.all-$(EXTRA)
	$(BIN)/python -m pytest tests

# Train and export the bundled models from data; the MNIST ones are committed (see README).
MODELS ?= models
DATAFLAG = $(if $(DATA),--data-dir $(DATA)/mnist)
CALIB = $(if $(DATA),--int8 --calib-data $(DATA)/mnist)
# The committed files (keep in step with .gitignore's exceptions).
BUNDLED = mnist_cnn.onnx mnist_cnn.int8.onnx mnist_cnn.keras mnist_cnn.tflite mnist_small.onnx mnist_fcn.onnx
# The MNIST models are trained for camera pictures (--recipe field); --recipe book
# reproduces the book's exact models (README, Results).
models: $(VENV)/.all-$(EXTRA)
	$(BIN)/edgerun train mnist_cnn --recipe field $(DATAFLAG) --out $(MODELS)
	$(BIN)/edgerun export $(MODELS)/mnist_cnn.keras --tflite $(CALIB)
	$(BIN)/edgerun train mnist_small --recipe field $(DATAFLAG) --out $(MODELS)
	$(BIN)/edgerun export $(MODELS)/mnist_small.keras
	$(BIN)/edgerun train mnist_fcn --recipe field $(DATAFLAG) --out $(MODELS)
	$(BIN)/edgerun export $(MODELS)/mnist_fcn.keras
	@if [ -f "$(DATA)/fashion-mnist/train-images-idx3-ubyte.gz" ] || [ -z "$(DATA)" ]; then \
		$(BIN)/edgerun train fashion_cnn $(if $(DATA),--data-dir $(DATA)/fashion-mnist) --out $(MODELS) && \
		$(BIN)/edgerun export $(MODELS)/fashion_cnn.keras; \
	else echo "fashion_cnn skipped: no Fashion-MNIST training files in $(DATA)/fashion-mnist"; fi
	$(BIN)/python -m edgerun.export.manifest $(MODELS) $(BUNDLED)

# ResNet50 is never committed (about 100 MB): WEIGHTS=imagenet (downloads), a file, or none.
WEIGHTS ?= imagenet
resnet50: $(VENV)/.all-$(EXTRA)
	$(BIN)/edgerun train resnet50 --weights $(WEIGHTS) --out $(MODELS)
	$(BIN)/edgerun export $(MODELS)/resnet50.keras --tflite $(if $(CALIB_IMAGES),--int8 --calib-data $(CALIB_IMAGES))

# pytest-benchmark over the bundled models; compare runs with --benchmark-compare (README).
bench: $(VENV)/.all-$(EXTRA)
	mkdir -p $(OUT)/bench
	$(BIN)/python -m pytest bench/test_latency.py --benchmark-json=$(OUT)/bench/pytest-benchmark.json $(BENCH_ARGS)

# Long-run check (10,000 frames): memory, threads, open files, steady fps. Not part of make test.
soak: $(VENV)/.all-$(EXTRA)
	$(BIN)/python -m pytest tests/soak -m slow -s

# Field pictures made from the MNIST test split (never trained on): pages on light paper and on
# dark backgrounds, the book's scenes, photos of one digit, and 640x480 fps on THREADS threads.
# FIELD_THRESHOLD was chosen on pages of the 500 training images mnist_fcn kept apart
# (python -m edgerun.scenes.evaluate --split train --holdout models/mnist_fcn.json --sweep ...).
FIELD_THRESHOLD ?= 0.8
FIELD_PAGES ?= 200
FIELD_PHOTOS ?= 5000
THREADS ?= 2
field-eval: $(VENV)/.runtime-$(EXTRA)
	@if [ -z "$(DATA)" ]; then echo "field-eval needs MNIST test files: DATA=dir (with mnist/)"; exit 2; fi
	$(BIN)/python -m edgerun.scenes.evaluate --data-dir $(DATA) --fcn $(MODELS)/mnist_fcn.onnx \
		--cnn $(MODELS)/mnist_cnn.onnx --pages $(FIELD_PAGES) --book 100 --photos $(FIELD_PHOTOS) \
		--fps-frames 40 --threads $(THREADS) --threshold $(FIELD_THRESHOLD) --json $(OUT)/field-eval.json

lint: $(VENV)/.all-$(EXTRA)
	$(BIN)/ruff check train export runtime bench scenes tests

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info .pytest_cache
