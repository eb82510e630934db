"""INT8 calibration (installed as ``tocoad_edge.calibration``): histograms, Q/DQ graph, TensorRT cache."""
