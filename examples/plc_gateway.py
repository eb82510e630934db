#!/usr/bin/env python3
"""Run a camera + a bundle + one PLC transport (Modbus TCP or OPC UA) from a YAML config: the same program as
the ``tocoad-plc`` command (tocoad_edge/plc/app.py), for a checkout that is not pip-installed.

    python examples/plc_gateway.py gateway.yaml                # until Ctrl-C / SIGTERM
    python examples/plc_gateway.py gateway.yaml --duration 60  # stop after 60 s
    python examples/plc_gateway.py --print-config              # a complete config with every default
"""
import sys

from tocoad_edge.plc.app import main

if __name__ == "__main__":
    sys.exit(main(prog="plc_gateway.py"))
