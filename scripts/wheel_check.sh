#!/usr/bin/env bash
# Install edgerun the way users do: a wheel built from this checkout, into a fresh venv in an empty
# directory outside the repository, with one extra (default cpu). Then run the demo, the CLI on a
# bundled model by name, and the three-line API; check the environment holds exactly one
# onnxruntime and one OpenCV package, no onnx, and that the wheel carries LICENSE and no tests.
# Usage: scripts/wheel_check.sh [EXTRA]   (data: $EDGERUN_DATA_DIR or ../shared/data, optional)
set -euo pipefail
extra=${1:-cpu}
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
data=${EDGERUN_DATA_DIR:-$repo/../shared/data}
work=$(mktemp -d /tmp/edgerun-wheel.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A first-time user has no tune cache: the machine's own (~/.cache/edgerun) must not leak in.
export EDGERUN_TUNE_CACHE="$work/tune.json"
echo "== building the wheel from $repo (its tracked and unignored files, copied: no stale build/)"
mkdir "$work/src"
(cd "$repo" && git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$work/src")
"$python" -m pip wheel -q --no-deps -w "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/edgerun-*.whl)
echo "   $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KB)"
"$python" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert any(n.endswith("licenses/LICENSE") for n in names), "LICENSE missing from the wheel"
tests = [n for n in names if "/test_" in n or n.startswith("tests/")]
assert not tests, f"tests shipped in the wheel: {tests}"
models = sorted(n for n in names if n.startswith("edgerun/models/") and n.endswith(".onnx"))
assert "edgerun/models/mnist_cnn.onnx" in models and "edgerun/models/mnist_fcn.onnx" in models, models
print("   wheel holds LICENSE, no tests, models:", ", ".join(m.rsplit("/", 1)[1] for m in models))
PY
echo "== fresh venv in $work/venv, pip install 'edgerun[$extra]'"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --upgrade pip
"$work/venv/bin/python" -m pip install -q -c "$repo/constraints.txt" "$wheel[$extra]"
cd "$work" && mkdir empty && cd empty
"$work/venv/bin/python" -m pip list 2>/dev/null | grep -iE "^(onnx|onnxruntime|onnxruntime-gpu|opencv-python|opencv-python-headless) " | tee pkgs.txt
[ "$(grep -ciE '^onnxruntime(-gpu)? ' pkgs.txt)" = 1 ] || { echo "not exactly one onnxruntime package"; exit 1; }
[ "$(grep -ciE '^opencv-python(-headless)? ' pkgs.txt)" = 1 ] || { echo "not exactly one OpenCV package"; exit 1; }
! grep -qiE '^onnx ' pkgs.txt || { echo "onnx installed by the runtime extra"; exit 1; }
echo "== edgerun --version"; "$work/venv/bin/edgerun" --version
echo "== edgerun demo"
data_flag=()
[ -d "$data" ] && data_flag=(--data-dir "$data")
"$work/venv/bin/edgerun" -q demo --out demo_out "${data_flag[@]}" --digits 300 --scenes 5 --seconds 0.1
ls demo_out/*.png >/dev/null
echo "== edgerun run mnist_cnn --source digit.png"
"$work/venv/bin/python" -c "import cv2, numpy as np; im = np.zeros((28, 28), np.uint8); cv2.putText(im, '7', (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2); cv2.imwrite('digit.png', im)"
"$work/venv/bin/edgerun" run mnist_cnn --source digit.png --topk 1
echo "== the three-line API"
"$work/venv/bin/python" -c "import edgerun; r = edgerun.load('mnist_cnn')('digit.png')[0]; print(r.label, round(r.score, 3))"
echo "== edgerun inspect without the tools extra says which extra it needs"
set +e; msg=$("$work/venv/bin/edgerun" inspect mnist_cnn 2>&1); code=$?; set -e
echo "   exit $code: $msg"
[ "$code" = 2 ] && [[ "$msg" == *"edgerun[tools]"* ]]
echo "wheel check passed"
