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

.PHONY: demo test lint models resnet50 bench bench-baseline gate-check soak field-eval clean help constraints wheel-check ray-bench tune coldstart gpu-bench

help:
	@echo "make demo    set up .venv and run the main job"
	@echo "make test    set up .venv and run the test suite (what CI runs)"
	@echo "make models  train and export the bundled models (DATA=dir with mnist/)"
	@echo "make resnet50 WEIGHTS=imagenet|PATH|none  export ResNet50 (never committed)"
	@echo "make bench   pytest-benchmark over the bundled models; BASELINE=FILE adds the CI gate"
	@echo "make bench-baseline BASELINE=FILE  save the CI gate's baseline"
	@echo "make gate-check  the gate's 5-of-5 acceptance runs (busy-loop load, planted slowdown)"
	@echo "make soak    10,000 frames through run: memory, threads, files, fps"
	@echo "make ray-bench  run --engine ray against the local engine on 5,000 MNIST PNGs"
	@echo "make tune    edgerun tune the bundled mnist_cnn (batch 1,8,64), then bench it tuned vs default vs peers"
	@echo "make coldstart  one image through edgerun run vs a minimal cv2 + onnxruntime script (7 runs each)"
	@echo "make gpu-bench  CUDA and TensorRT, fp32 and fp16, mnist_cnn and ResNet50 (needs an NVIDIA GPU)"
	@echo "make field-eval  localizer and photo accuracy on field pictures of MNIST test digits, fps"
	@echo "make lint    ruff over the code"
	@echo "make clean   remove .venv and build outputs"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# One stamp per set of extras, redone when pyproject.toml changes.
# constraints.txt pins the versions the README's figures came from (make constraints rewrites it).
$(VENV)/.runtime-$(EXTRA): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRA)]"
	touch $@

# The ray extra is in the test install so that make test runs a small job on a local Ray instance;
# openvino so that the OpenVINO peer is tested.
$(VENV)/.all-$(EXTRA): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRA),tools,train,dev,ray,openvino]"
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
BUNDLED = mnist_cnn.onnx mnist_cnn.int8.onnx mnist_cnn.keras mnist_cnn.tflite mnist_cnn.int8.tflite \
	mnist_small.onnx mnist_fcn.onnx mnist_small_fcn.onnx
SWEEP ?= 0.6,0.7,0.8,0.85,0.9,0.95
# The MNIST models are trained for camera pictures (--recipe field); --recipe book
# reproduces the book's exact models (README, Results).
models: $(VENV)/.all-$(EXTRA)
	$(BIN)/edgerun train mnist_cnn --recipe field $(DATAFLAG) --out $(MODELS)
	$(BIN)/edgerun export $(MODELS)/mnist_cnn.keras --tflite $(CALIB)
	$(BIN)/edgerun train mnist_small --recipe field $(DATAFLAG) --out $(MODELS)
	$(BIN)/edgerun export $(MODELS)/mnist_small.keras
	$(BIN)/edgerun train mnist_fcn --recipe field $(DATAFLAG) --out $(MODELS)
	$(BIN)/edgerun export $(MODELS)/mnist_fcn.keras
	# the field localizer: the recipe is chosen on 500 training images kept apart, then refit on all
	# 5,000. Held-out run: mnist_small trained on field digits without those 500, made fully
	# convolutional and trained on field pages (still without them); its threshold is swept on
	# pages of the 500. Final: the same recipe from the mnist_small above (all 5,000), --holdout 0,
	# with the held-out run's threshold carried into its card (--also).
	$(BIN)/edgerun train mnist_small --recipe field --holdout 500 $(DATAFLAG) --out $(MODELS)/heldout/init
	$(BIN)/edgerun train mnist_small_fcn --recipe field --init $(MODELS)/heldout/init/mnist_small.keras $(DATAFLAG) --out $(MODELS)/heldout
	$(BIN)/edgerun export $(MODELS)/heldout/mnist_small_fcn.keras
	$(BIN)/edgerun train mnist_small_fcn --recipe field --init $(MODELS)/mnist_small.keras --holdout 0 $(DATAFLAG) --out $(MODELS)
	@if [ -n "$(DATA)" ]; then \
		$(BIN)/python -m edgerun.scenes.evaluate --data-dir $(DATA) --split train --holdout $(MODELS)/heldout/mnist_small_fcn.json \
			--fcn $(MODELS)/heldout/mnist_small_fcn.onnx --sweep $(SWEEP) --pages 60 --book 0 --photos 0 --fps-frames 0 \
			--record --also $(MODELS)/mnist_small_fcn.json; \
	else echo "mnist_small_fcn keeps the recipe's threshold: DATA=dir chooses one on its held-out images"; fi
	$(BIN)/edgerun export $(MODELS)/mnist_small_fcn.keras
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

# pytest-benchmark over the bundled models (the latency record); with BASELINE=FILE, then edgerun's
# CI gate against that baseline (exit 3 regression, 4 inconclusive; README, "CI gate").
GATE_MODELS ?= models/mnist_cnn.onnx
GATE_BATCH ?= 1,8
BASELINE ?=
bench: $(VENV)/.all-$(EXTRA)
	mkdir -p $(OUT)/bench
	$(BIN)/python -m pytest benchmarks/test_latency.py --benchmark-json=$(OUT)/bench/pytest-benchmark.json $(BENCH_ARGS)
	@if [ -n "$(BASELINE)" ]; then \
		echo "$(BIN)/edgerun bench $(GATE_MODELS) --batch $(GATE_BATCH) --compare $(BASELINE)"; \
		$(BIN)/edgerun bench $(GATE_MODELS) --batch $(GATE_BATCH) --compare $(BASELINE) --json $(OUT)/bench/gate.json; \
	fi

# The gate's baseline, made once on the reference branch on the CI machine class: make bench-baseline BASELINE=FILE
bench-baseline: $(VENV)/.all-$(EXTRA)
	@test -n "$(BASELINE)" || { echo "give the file to write: make bench-baseline BASELINE=FILE"; exit 2; }
	$(BIN)/edgerun bench $(GATE_MODELS) --batch $(GATE_BATCH) --save-baseline $(BASELINE)

# The gate's acceptance runs (about 10 minutes): 5 comparisons each of the unchanged model under a
# busy-loop load, and of a planted 1.4x+ slowdown without and with load; out/gate-check/summary.md
gate-check: $(VENV)/.all-$(EXTRA)
	$(BIN)/python -m edgerun.bench.gatecheck --model models/mnist_cnn.onnx --out $(OUT)/gate-check $(GATE_CHECK_ARGS)

# Long-run check (10,000 frames): memory, threads, open files, steady fps. Not part of make test.
soak: $(VENV)/.all-$(EXTRA)
	$(BIN)/python -m pytest tests/soak -m slow -s

# Scale-out: --engine ray against the local engine, same cores, the 5,000 shared MNIST test images
# as PNG (about 10 minutes on 2 cores). RAY_BENCH_ARGS: e.g. --rounds 5 --sizes 1000,5000 --batch 64.
ray-bench: $(VENV)/.all-$(EXTRA)
	$(BIN)/python -m edgerun.bench.scaleout --data $(DATA) --out $(OUT)/ray-bench $(RAY_BENCH_ARGS)

# Tuned settings for this machine (stored in ~/.cache/edgerun/tune.json), then the acceptance table.
tune: $(VENV)/.all-$(EXTRA)
	$(BIN)/edgerun tune models/mnist_cnn.onnx --batch 1,8,64
	$(BIN)/edgerun bench models/mnist_cnn.onnx --batch 1,8,64 --vs ort-raw,tflite,opencv --seconds 4 --rounds 8

# Whole-process cold start: wall time and peak RSS medians, interleaved (a benchmark, not a test).
coldstart: $(VENV)/.runtime-$(EXTRA)
	$(BIN)/python -m edgerun.bench.coldstart models/mnist_cnn.onnx --runs 7 --workdir $(OUT)/coldstart

gpu-bench: $(VENV)/.all-$(EXTRA)
	BIN=$(BIN) OUT=$(OUT) sh bench/scripts/gpu_bench.sh

# Field pictures made from the MNIST test split (never trained on): pages on light paper and on
# dark backgrounds, the book's scenes, photos of one digit, and 640x480 fps on THREADS threads.
# FCN is the localizer (default the field one, mnist_small_fcn, with the threshold its card
# records, chosen on its 500 held-out training images; FIELD_THRESHOLD=t overrides it).
FCN ?= mnist_small_fcn
FIELD_PAGES ?= 200
FIELD_PHOTOS ?= 5000
THREADS ?= 2
field-eval: $(VENV)/.runtime-$(EXTRA)
	@if [ -z "$(DATA)" ]; then echo "field-eval needs MNIST test files: DATA=dir (with mnist/)"; exit 2; fi
	$(BIN)/python -m edgerun.scenes.evaluate --data-dir $(DATA) --fcn $(MODELS)/$(FCN).onnx \
		--cnn $(MODELS)/mnist_cnn.onnx --pages $(FIELD_PAGES) --book 100 --photos $(FIELD_PHOTOS) \
		--fps-frames 40 --threads $(THREADS) $(if $(FIELD_THRESHOLD),--threshold $(FIELD_THRESHOLD)) \
		--json $(OUT)/field-eval.json

lint: $(VENV)/.all-$(EXTRA)
	$(BIN)/ruff check train export runtime bench scenes tests

# Pin today's versions of everything make test installs (after an upgrade, with the figures redone).
constraints: $(VENV)/.all-$(EXTRA)
	{ head -3 constraints.txt; $(BIN)/python -m pip freeze | grep -v "^-e\|^edgerun\|^#"; } > constraints.tmp
	mv constraints.tmp constraints.txt

# The way users install: a wheel into a fresh venv outside the repository, then demo and run.
wheel-check:
	bash scripts/wheel_check.sh

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info .pytest_cache
