"""tocoad-edge: ToCoAD industrial visual anomaly detection for the edge.

Train on a workstation (``tocoad-train``), export a bundle (``tocoad-export``), run it without torch
(``tocoad_edge.runtime.Detector``).
"""
__version__ = "0.1.0"
