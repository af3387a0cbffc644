#!/bin/sh
# GPU figures (issue 14) for a machine with an NVIDIA GPU: `make gpu-bench`.
# No GPU has been lent to this project yet, so none of this has run; it is what a session with
# one should run. CUDA and TensorRT execution providers, mnist_cnn and ResNet50, fp32 and fp16,
# batch 1-64; edgerun (IO binding: input copied once, output kept on the device until the end)
# against raw onnxruntime-gpu (session.run with numpy in and out) and TensorFlow (Keras twin).
set -eu
BIN=${BIN:-.venv/bin}
OUT=${OUT:-out}/gpu
BATCHES=${BATCHES:-1,2,4,8,16,32,64}
mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/gpu.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee -a "$OUT/gpu.txt"
"$BIN/python" -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())" | tee -a "$OUT/gpu.txt"
[ -f models/resnet50.onnx ] || make resnet50 WEIGHTS=none
for m in mnist_cnn resnet50; do  # fp16 twins (onnxconverter-common, float32 inputs and outputs kept)
  [ -f "$OUT/$m.fp16.onnx" ] || "$BIN/python" -c "import sys; from pathlib import Path; \
from edgerun.export.quantize import convert_fp16; convert_fp16(Path(sys.argv[1]), Path(sys.argv[2]))" \
    "models/$m.onnx" "$OUT/$m.fp16.onnx"
done
for provider in cuda tensorrt; do
  for m in models/mnist_cnn.onnx models/resnet50.onnx; do
    name=$(basename "$m" .onnx)
    "$BIN/edgerun" bench "$m" --provider "$provider" --batch "$BATCHES" --vs ort-raw,keras --seconds 2 --rounds 4 \
      --json "$OUT/$name.$provider.fp32.json" --markdown "$OUT/$name.$provider.fp32.md" || echo "$name $provider fp32 failed"
    "$BIN/edgerun" bench "$OUT/$name.fp16.onnx" --provider "$provider" --batch "$BATCHES" --vs ort-raw --seconds 2 \
      --rounds 4 --json "$OUT/$name.$provider.fp16.json" --markdown "$OUT/$name.$provider.fp16.md" || echo "$name $provider fp16 failed"
  done
done
# One image end to end on the GPU, against the minimal script (which runs on CPU: compare with care).
"$BIN/python" -m edgerun.bench.coldstart models/mnist_cnn.onnx --runs 7 --edgerun-args "--provider cuda" \
  --json "$OUT/coldstart.cuda.json" || echo "coldstart on cuda failed"
echo "results in $OUT"
