"""The yardstick for ``edgerun run``'s cold start: a minimal hand-written cv2 + onnxruntime script.

``python minimal_classify.py MODEL.onnx IMAGE`` classifies one image the way a user would write it
in ten lines (gray, resize to the model's input, scale by 1/255, NHWC) and prints the top five.
``bench/coldstart.py`` runs it beside ``edgerun run`` as separate processes. It imports nothing of
edgerun on purpose.
"""

import sys

import cv2
import numpy as np
import onnxruntime as ort

model, image = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
_, h, w, _ = inp.shape
gray = cv2.imread(image, cv2.IMREAD_GRAYSCALE)
x = cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)[None, :, :, None] / 255.0
probs = session.run(None, {inp.name: x})[0][0]
top = np.argsort(probs)[::-1][:5]
print(f"{image}: " + ", ".join(f"{i} {probs[i]:.3f}" for i in top))
