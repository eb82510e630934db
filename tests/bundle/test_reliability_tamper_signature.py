"""Item 3: a manifest or file changed after export is refused; an optional Ed25519 signature over the manifest
is checked when a key is configured."""
from __future__ import annotations

import json

import pytest

from reliability_fixtures import (assert_no_partial_files, bundle_copy, golden_fingerprint, rel_bundle,  # noqa: F401
                                  rewrite_manifest, serving, tree)
from tocoad_edge.errors import BundleError, ConfigError
from tocoad_edge.runtime import Detector

pytest.importorskip("cryptography", reason="signatures need the 'signing' extra (cryptography)")

from tocoad_edge.bundle.signature import (SIGNATURE_NAME, generate_key_pair, key_id, sign_bundle,  # noqa: E402
                                          verify_bundle_signature)


@pytest.fixture(scope="module")
def keys():
    return generate_key_pair(), generate_key_pair()


def test_file_replaced_with_same_size_is_refused(bundle_copy, serving):
    before = golden_fingerprint(serving)
    data = bytearray((bundle_copy / "coreset.npy").read_bytes())
    data[-4:] = b"\x00\x00\x80\x7f"          # last float → +inf, same size
    (bundle_copy / "coreset.npy").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="coreset.npy fails its sha256 check") as info:
        serving.swap(bundle_copy)
    assert info.value.expected and info.value.got and info.value.fix
    assert golden_fingerprint(serving) == before


def test_manifest_hash_edited_to_match_a_swapped_file_still_fails_the_signature(bundle_copy, serving, keys):
    (private, public), _ = keys
    sign_bundle(bundle_copy, private)
    before = golden_fingerprint(serving)
    # attacker swaps the memory bank and fixes the manifest hash: sha256 passes, the signature does not
    import numpy as np

    bank = np.load(bundle_copy / "coreset.npy")
    np.save(bundle_copy / "coreset.npy", np.zeros_like(bank))
    rewrite_manifest(bundle_copy, rehash=["coreset.npy"])
    Detector.open(bundle_copy, search="exact").close()            # unsigned check alone passes...
    with pytest.raises(BundleError, match="manifest changed after signing"):
        serving.swap(bundle_copy, public_key=public)
    assert golden_fingerprint(serving) == before


def test_threshold_edit_refused_with_key(bundle_copy, keys, serving):
    (private, public), _ = keys
    sign_bundle(bundle_copy, private)
    assert verify_bundle_signature(bundle_copy, public) == key_id(public)
    rewrite_manifest(bundle_copy, lambda d: d["scoring"].update(image_threshold=1e9))   # never NG again
    listing = {bundle_copy: tree(bundle_copy)}
    with pytest.raises(BundleError, match="signature does not match"):
        Detector.open(bundle_copy, public_key=public)
    assert_no_partial_files(bundle_copy, before=listing)


def test_unsigned_or_foreign_signature_refused(bundle_copy, keys, serving):
    (private, public), (other_private, _) = keys
    before = golden_fingerprint(serving)
    with pytest.raises(BundleError, match="not signed") as info:
        serving.swap(bundle_copy, public_key=public)
    assert key_id(public) in str(info.value)
    sign_bundle(bundle_copy, other_private)
    with pytest.raises(BundleError, match="signed by another key") as info:
        serving.swap(bundle_copy, public_key=public)
    assert key_id(public) in info.value.expected
    (bundle_copy / SIGNATURE_NAME).write_text("{not json")
    with pytest.raises(BundleError, match="damaged"):
        Detector.open(bundle_copy, public_key=public)
    assert golden_fingerprint(serving) == before


def test_valid_signature_opens_and_serves(bundle_copy, keys, serving, tmp_path):
    (private, public), _ = keys
    key_file = tmp_path / "device.pub.pem"
    key_file.write_bytes(public)
    sign_bundle(bundle_copy, private)
    record = json.loads((bundle_copy / SIGNATURE_NAME).read_text())
    assert record["algorithm"] == "ed25519" and record["key_id"] == key_id(public)
    report = serving.swap(bundle_copy, public_key=key_file)
    assert report.self_test.relative_error is not None and report.self_test.relative_error < 1e-3
    assert_no_partial_files(bundle_copy)


def test_bad_key_configuration_is_a_config_error(bundle_copy):
    with pytest.raises(ConfigError, match="not a PEM public key"):
        Detector.open(bundle_copy, public_key=b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="cannot read"):
        Detector.open(bundle_copy, public_key="/nonexistent/key.pem")


def test_sign_refuses_a_bundle_whose_files_do_not_match(bundle_copy, keys):
    (private, _), _ = keys
    (bundle_copy / "index.hnsw").write_bytes(b"x")
    with pytest.raises(BundleError, match="index.hnsw"):
        sign_bundle(bundle_copy, private)
    assert not (bundle_copy / SIGNATURE_NAME).exists()
    assert_no_partial_files(bundle_copy)


def test_sign_cli_round_trip(bundle_copy, tmp_path):
    from tocoad_edge.cli.sign import main

    prefix = tmp_path / "line3"
    assert main(["--generate-key", str(prefix)]) == 0
    assert (tmp_path / "line3.key.pem").stat().st_mode & 0o077 == 0
    assert main(["--generate-key", str(prefix)]) == 2                       # never overwrites a key
    assert main([str(bundle_copy), "--key", str(tmp_path / "line3.key.pem")]) == 0
    assert main([str(bundle_copy), "--verify", str(tmp_path / "line3.pub.pem")]) == 0
    Detector.open(bundle_copy, public_key=tmp_path / "line3.pub.pem").close()


def test_signed_manifest_is_parsed_from_the_verified_bytes(bundle_copy, keys, monkeypatch):
    """No time-of-check/time-of-use gap: the manifest a device uses is parsed from the very bytes whose signature
    was checked. Simulated: the file on disk is swapped right after it was read for verification."""
    import tocoad_edge.bundle.signature as signature
    from tocoad_edge.bundle.signature import read_signed_manifest

    (private, public), _ = keys
    sign_bundle(bundle_copy, private)
    original = signature._verified_manifest_bytes

    def verify_then_swap(bundle, key):
        result = original(bundle, key)
        rewrite_manifest(bundle_copy, lambda d: d["scoring"].update(image_threshold=1e9))   # the race
        return result
    monkeypatch.setattr(signature, "_verified_manifest_bytes", verify_then_swap)
    manifest = read_signed_manifest(bundle_copy, public)
    assert manifest.scoring.image_threshold != 1e9
