"""The ONNX opsets an export can be made at.

tf2onnx 1.17 converts up to opset 18 (a test keeps :data:`MAX_OPSET` in step with
``tf2onnx.constants``); below 9 its graphs list the weights as graph inputs (IR 3), which the
simplifier and the runtime's checks refuse. Kept apart so that ``edgerun export --opset`` is
checked before TensorFlow loads.
"""

MIN_OPSET = 9
MAX_OPSET = 18
DEFAULT_OPSET = 17
