"""``tocoad-sign --generate-key PREFIX`` and ``tocoad-sign BUNDLE --key PRIVATE.pem``: Ed25519 bundle signatures.

Devices that are given the public key (``Detector.open(..., public_key=...)``) refuse bundles not signed by it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import TocoadError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-sign", description=(
        "Sign a bundle's manifest with an Ed25519 key (manifest.sig), or generate a key pair."))
    p.add_argument("bundle", nargs="?", help="bundle folder to sign")
    p.add_argument("--key", help="private key PEM file (PKCS8)")
    p.add_argument("--generate-key", metavar="PREFIX", help="write PREFIX.key.pem (private) and PREFIX.pub.pem")
    p.add_argument("--verify", metavar="PUBLIC_PEM", help="verify BUNDLE's signature with this public key")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from ..bundle.signature import generate_key_pair, sign_bundle, verify_bundle_signature

        if args.generate_key:
            private, public = generate_key_pair()
            key_path = Path(f"{args.generate_key}.key.pem")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(private)
            Path(f"{args.generate_key}.pub.pem").write_bytes(public)
            print(f"private key: {key_path} (keep it off the devices)\npublic key: {args.generate_key}.pub.pem")
            return 0
        if not args.bundle:
            parser.error("BUNDLE is required (or --generate-key PREFIX)")
        if args.verify:
            print(f"signature valid: key {verify_bundle_signature(args.bundle, Path(args.verify))}")
            return 0
        if not args.key:
            parser.error("--key PRIVATE.pem is required to sign")
        print(f"signed: {sign_bundle(args.bundle, Path(args.key))}")
        return 0
    except FileExistsError as exc:
        print(f"tocoad-sign: error: {exc.filename} exists; refusing to overwrite a key", file=sys.stderr)
        return 2
    except TocoadError as exc:
        print(f"tocoad-sign: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
