"""The lean onnxruntime runtime: numpy, OpenCV and onnxruntime only, never TensorFlow."""
