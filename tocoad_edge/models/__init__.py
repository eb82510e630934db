"""Network definitions (torch). Used by training, export and the optional torch backend; never by the
ONNX Runtime / TensorRT runtime."""
