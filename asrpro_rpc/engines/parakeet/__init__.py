"""NVIDIA Parakeet TDT: the NeMo and ONNX routes, what they share, and the ONNX export."""
