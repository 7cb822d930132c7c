"""Audio input: decoding files to the engines' 16 kHz mono float32."""
