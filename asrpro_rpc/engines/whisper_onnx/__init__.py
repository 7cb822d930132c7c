"""Whisper on ONNX Runtime: onnx-community's exports (``onnx/encoder_model.onnx`` +
``onnx/decoder_model_merged.onnx``) decoded here with timestamps, language detection and translation."""
