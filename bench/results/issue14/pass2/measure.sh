#!/bin/bash
# Second pass (after the Pad fold): tuned mnist_cnn and ResNet50 against peers, cold start.
set -x
export EDGERUN_TUNE_CACHE=out/perf2/tune.json
E=.venv/bin/edgerun
O=out/perf2
$E tune models/mnist_cnn.onnx --batch 1,8,64 --seconds 0.5 --rounds 6 --margin 3 > $O/tune_mnist.txt 2>&1
$E bench models/mnist_cnn.onnx --batch 1,8,64 --vs ort-raw,tflite,opencv --seconds 4 --rounds 8 --json $O/mnist_cnn.json --markdown $O/mnist_cnn.md > $O/bench_mnist.txt 2>&1
$E tune models/resnet50.onnx --batch 1,8 --seconds 0.5 --rounds 2 --margin 3 > $O/tune_resnet50.txt 2>&1
$E bench models/resnet50.onnx --batch 1,8 --vs ort-raw,tflite --seconds 6 --rounds 3 --warmup 1 --json $O/resnet50.json --markdown $O/resnet50.md > $O/bench_resnet50.txt 2>&1
.venv/bin/python -m edgerun.bench.coldstart models/mnist_cnn.onnx $O/one.png --runs 7 --json $O/coldstart.json > $O/coldstart.txt 2>&1
echo done > $O/DONE
