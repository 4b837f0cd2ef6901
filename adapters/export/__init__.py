"""Export: merged weights and ONNX graphs, parity- and accuracy-gated."""
