"""tf2onnx export of the registry models: metadata, parity gate, int8 and fp16 variants."""
