"""Engine fingerprints, the device check before deserialising, and engine choice — no GPU needed."""
import pytest

from tocoad_edge.bundle.manifest import EngineFingerprint, InputSpec
from tocoad_edge.errors import BundleError, EngineIncompatibleError
from tocoad_edge.runtime.backends.trt import runner as trt_backend
from tocoad_edge.runtime.backends.trt.fingerprint import (DeviceInfo, check_engine, engine_file_name,
                                                          fingerprint_id, make_fingerprint, mismatches)

ORIN = DeviceInfo("10.3.0.30", "Orin", "8.7")
XAVIER = DeviceInfo("8.6.2.3", "Xavier", "7.2")
SHA = "ab" * 32


def test_fingerprint_id_is_stable_and_depends_on_every_field():
    base = fingerprint_id("10.3.0.30", "Orin", "8.7", "int8", (1, 224, 224, 3), SHA)
    assert base == fingerprint_id("10.3.0.30", "Orin", "8.7", "int8", (1, 224, 224, 3), SHA)
    assert len(base) == 16 and int(base, 16) >= 0
    variants = [("10.3.0.31", "Orin", "8.7", "int8", (1, 224, 224, 3), SHA, None),
                ("10.3.0.30", "Orin Nano", "8.7", "int8", (1, 224, 224, 3), SHA, None),
                ("10.3.0.30", "Orin", "8.6", "int8", (1, 224, 224, 3), SHA, None),
                ("10.3.0.30", "Orin", "8.7", "fp16", (1, 224, 224, 3), SHA, None),
                ("10.3.0.30", "Orin", "8.7", "int8", (1, 256, 256, 3), SHA, None),
                ("10.3.0.30", "Orin", "8.7", "int8", (1, 224, 224, 3), "cd" * 32, None),
                ("10.3.0.30", "Orin", "8.7", "int8", (1, 224, 224, 3), SHA, 0)]
    assert len({fingerprint_id(*v) for v in variants} | {base}) == len(variants) + 1
    fp = make_fingerprint(ORIN, "int8", (1, 224, 224, 3), SHA)
    assert fp.file == engine_file_name(base) == f"backbone.{base}.engine"


def test_matching_and_mismatching_devices():
    fp = make_fingerprint(ORIN, "int8", (1, 224, 224, 3), SHA)
    assert mismatches(fp, ORIN) == []
    assert mismatches(fp, DeviceInfo("10.3.0", "Orin", "8.7")) != []          # 10.3.0 ≠ 10.3.0.30
    diff = mismatches(fp, XAVIER)
    assert len(diff) == 3 and any("TensorRT" in d for d in diff)
    with pytest.raises(EngineIncompatibleError) as e:
        check_engine(fp, XAVIER)
    msg = str(e.value)
    assert "Orin" in msg and "Xavier" in msg and "tocoad-export engine" in msg     # names both sides and the fix
    assert trt_backend.engine_matches_device(fp, ORIN) is True
    assert trt_backend.engine_matches_device(fp, XAVIER) is False


def test_engine_matches_device_is_false_without_tensorrt_or_gpu(monkeypatch):
    from tocoad_edge.errors import BackendUnavailableError

    def no_device():
        raise BackendUnavailableError("no TensorRT here")

    monkeypatch.setattr(trt_backend, "current_device", no_device)
    assert trt_backend.engine_matches_device(make_fingerprint(ORIN, "int8", (1, 64, 64, 3), SHA)) is False


class _Manifest:
    def __init__(self, engines):
        self.engines = tuple(engines)
        self.input = InputSpec(height=64, width=64)


def test_engine_for_picks_this_devices_engine_of_the_precision():
    int8_orin = make_fingerprint(ORIN, "int8", (1, 64, 64, 3), SHA)
    fp16_orin = make_fingerprint(ORIN, "fp16", (1, 64, 64, 3), SHA)
    int8_xav = make_fingerprint(XAVIER, "int8", (1, 64, 64, 3), SHA)
    m = _Manifest([int8_xav, int8_orin, fp16_orin])
    assert trt_backend.engine_for(m, "int8", ORIN) == int8_orin
    assert trt_backend.engine_for(m, "fp32", ORIN) == fp16_orin     # a float request is served by FP16
    with pytest.raises(EngineIncompatibleError, match="Xavier"):
        trt_backend.engine_for(_Manifest([int8_xav]), "int8", ORIN)
    with pytest.raises(BundleError, match="no TensorRT engine"):
        trt_backend.engine_for(_Manifest([]), "int8", ORIN)


def test_backend_refuses_a_mismatching_engine_before_reading_it(tmp_path, monkeypatch):
    """The fingerprint check runs before TensorRT is imported or a byte of the engine is read."""
    fp = make_fingerprint(XAVIER, "int8", (1, 64, 64, 3), SHA)
    engine = tmp_path / fp.file
    engine.write_bytes(b"not an engine")
    monkeypatch.setattr(trt_backend, "current_device", lambda: ORIN)

    def must_not_import():
        raise AssertionError("TensorRT imported before the fingerprint check")

    monkeypatch.setattr(trt_backend, "import_tensorrt", must_not_import)
    be = trt_backend.TensorRTBackend(engine, manifest=_Manifest([fp]))
    with pytest.raises(EngineIncompatibleError, match="Xavier"):
        be.load()


def test_backend_needs_a_fingerprint_for_its_file(tmp_path):
    be = trt_backend.TensorRTBackend(tmp_path / "backbone.0000.engine", manifest=_Manifest([]))
    with pytest.raises(BundleError, match="no fingerprint"):
        be.load()
