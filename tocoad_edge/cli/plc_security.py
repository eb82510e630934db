"""``tocoad-plc-security``: certificates and users for the gateway's OPC UA security (and the live view's login).

    tocoad-plc-security make-cert --out pki/                 # pki/server_cert.der + pki/server_key.pem
    tocoad-plc-security make-cert --out pki/ --client --name plc   # a client pair (for a test client / a PLC)
    tocoad-plc-security add-user pki/users.txt plc --role operator   # asks for the password twice

The password can come from standard input instead (``--password-stdin``), for scripts.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..errors import TocoadError
from ..plc.config import OPCUA_ROLES as ROLES   # operator, viewer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tocoad-plc-security", description=(
        "Make a self-signed OPC UA certificate pair for commissioning, or add a user to a password file."))
    sub = p.add_subparsers(dest="command", required=True)
    cert = sub.add_parser("make-cert", help="write NAME_cert.der and NAME_key.pem (key mode 0600; never overwritten)")
    cert.add_argument("--out", type=Path, required=True, help="folder to write into")
    cert.add_argument("--name", default=None, help="file name prefix (default: server, or client with --client)")
    cert.add_argument("--uri", default=None,
                      help="application URI in the certificate (default: urn:tocoad-edge:plc:gateway, or "
                           "urn:tocoad-edge:plc:NAME with --client)")
    cert.add_argument("--host", action="append", default=[],
                      help="host name or IP address the gateway is reached by (repeat; default: this host's name)")
    cert.add_argument("--client", action="store_true", help="a client certificate (clientAuth only)")
    cert.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    user = sub.add_parser("add-user", help="add a user to a password file, or set a new password (mode 0600)")
    user.add_argument("file", type=Path)
    user.add_argument("name")
    user.add_argument("--role", choices=ROLES, required=True,
                      help="operator: may write Trigger and Ack; viewer: read only")
    user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "make-cert":
            from ..plc.certs import DEFAULT_URI, make_self_signed

            name = args.name or ("client" if args.client else "server")
            uri = args.uri or (f"urn:tocoad-edge:plc:{name}" if args.client else DEFAULT_URI)
            cert, key = make_self_signed(args.out / f"{name}_cert.der", args.out / f"{name}_key.pem",
                                         application_uri=uri, hostnames=tuple(args.host), client=args.client,
                                         days=args.days)
            print(f"certificate: {cert}\nprivate key: {key} (keep it on this machine)\napplication URI: {uri}")
            return 0
        from ..credentials import add_user

        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for {args.name}: ")
            if getpass.getpass("again: ") != password:
                print("tocoad-plc-security: error: the two passwords differ", file=sys.stderr)
                return 2
        new = add_user(args.file, args.name, args.role, password, ROLES)
        print(f"{'added' if new else 'updated'} {args.name} ({args.role}) in {args.file}")
        return 0
    except TocoadError as exc:
        print(f"tocoad-plc-security: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
