#!/bin/bash
set -x
O=out/perf
.venv/bin/python -m edgerun.bench.pair models/resnet50.onnx models/resnet50.int8.onnx --batch 1,8 --rounds 3 --seconds 2 > $O/int8_resnet50.txt 2>&1
.venv/bin/python -m edgerun.bench.coldstart models/mnist_cnn.onnx $O/one.png --runs 7 --json $O/coldstart.json > $O/coldstart.txt 2>&1
.venv/bin/edgerun bench models/resnet50.onnx --batch 1,8 --vs ort-raw,tflite --seconds 4 --rounds 2 --warmup 1 --json $O/resnet50.json --markdown $O/resnet50.md > $O/bench_resnet50.txt 2>&1
echo done > $O/DONE
