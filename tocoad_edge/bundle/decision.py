"""Rewrite only the decision section of a bundle: the image threshold, the review threshold below it, the score
normalisation that maps the image threshold to 1.0, the image score they apply to, and the record of how they were
chosen. Every model file, hash and engine record stays as it is.

A signed manifest no longer verifies once it changes, so a signed bundle is re-signed with the key given, or its
signature is removed only when asked (``drop_signature``): never left behind invalid, never dropped silently.
The manifest is replaced atomically (temporary file, fsync, rename): a reader sees the old or the new one.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import BundleError
from .atomic import write_text_atomically
from .manifest import MANIFEST_NAME, Manifest, ScoringSpec, read_manifest
from .signature import SIGNATURE_NAME, sign_bundle


def decision_scoring(scoring: ScoringSpec, image_threshold: float, review_threshold: float | None,
                     image_score: str | None = None) -> ScoringSpec:
    """The scoring section with new thresholds (set on ``image_score``'s scale, None: the bundle's image score):
    the normalisation keeps its offset and rescales so that the new image threshold maps to 1.0 (as training
    calibrates it)."""
    offset = scoring.normalization_offset if image_threshold > scoring.normalization_offset else 0.0
    scale = image_threshold - offset if image_threshold > offset else max(image_threshold, 1e-6)
    return dataclasses.replace(scoring, image_score=image_score or scoring.image_score,
                               image_threshold=float(image_threshold), pixel_threshold=float(image_threshold),
                               review_threshold=None if review_threshold is None else float(review_threshold),
                               normalization_offset=float(offset), normalization_scale=float(scale))


def write_decision(bundle_dir: str | Path, image_threshold: float, review_threshold: float | None,
                   record: dict[str, Any], *, sign_key: Any = None, drop_signature: bool = False,
                   image_score: str | None = None) -> Manifest:
    """Write the new decision into ``bundle_dir/manifest.json``; returns the new manifest. ``image_score``: the
    image score the thresholds were set on, where it changes (``runtime/scoring.py``)."""
    bundle = Path(bundle_dir)
    manifest = read_manifest(bundle)
    signed = (bundle / SIGNATURE_NAME).is_file()
    if signed and sign_key is None and not drop_signature:
        raise BundleError("this bundle is signed, and a new decision changes the signed manifest",
                          expected="a key to re-sign it with", got="no --sign-key",
                          fix="pass --sign-key PRIVATE.pem to re-sign, or --drop-signature to remove the signature "
                              "(then sign it later with tocoad-sign)")
    if review_threshold is not None and not review_threshold < image_threshold:
        raise BundleError("the review threshold must lie below the image threshold",
                          expected=f"< {image_threshold}", got=str(review_threshold),
                          fix="choose a review false-call rate above the NG target")
    new = dataclasses.replace(manifest, scoring=decision_scoring(manifest.scoring, image_threshold, review_threshold,
                                                                 image_score), decision=dict(record))
    if signed and sign_key is None:              # drop_signature: the old signature would no longer verify
        (bundle / SIGNATURE_NAME).unlink()
    write_text_atomically(bundle / MANIFEST_NAME, new.to_json())
    if sign_key is not None:
        sign_bundle(bundle, sign_key)
    return new
