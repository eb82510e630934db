"""Everything TensorRT in one place. Nothing here imports ``tensorrt`` or ``pycuda`` at module level: the
bindings are imported when an engine is built or run (``compat.import_tensorrt``).

- ``compat``      every TensorRT 8.6 / 10 / 11 API difference, asked of one module
- ``fingerprint`` what an engine was built for (TensorRT version, GPU, precision, input) and the match check
- ``runner``      the runtime backend (``TensorRTBackend``): deserialise a fingerprint-checked engine and run it
- ``build``       the on-device engine builder behind ``tocoad-export engine BUNDLE`` (Polygraphy, imported lazily)
- ``engine_session`` one deserialised engine with its context, stream and pycuda buffers (shared by both runners)
- ``search_engine`` the FP16 memory-bank search engine built beside the backbone engine (``search.<fp>.engine``)
- ``search_runner`` ``TensorRTGraphSearch``: ``search: graph`` on that engine, chosen by fingerprint and bank sha256
- ``fp16_onnx``   the FP32/Q-DQ → FP16 ONNX conversion TensorRT 11's strongly typed builds need (onnxconverter-common)
- ``calib_cache`` the TensorRT calibration cache (written by calibration; not replayed: no DLA engines yet)
"""
