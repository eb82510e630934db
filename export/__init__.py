"""Export (installed as ``tocoad_edge.export``): ONNX export, graph clean-up, bundle writing, TensorRT engines."""
