"""Verdicts to the plant's MQTT broker with store-and-forward, and model rollout to a fleet of gateways.

Modules, one concept each: ``topics`` (the topic tree), ``verdict`` (the message and consumer-side dedup),
``spool`` (bounded SQLite-WAL queue), ``mqtt_link`` (paho connection: QoS 1, TLS, will, birth), ``forwarder`` (spool
→ broker thread), ``sink`` (the stream sink), ``bundle_transfer`` (bundle archives in chunks), ``rollout`` (the
gateway side of a rollout), ``gateway`` (a gateway process), ``cli`` (``tocoad-fleet``). See docs/fleet.md.

Needs ``paho-mqtt`` (``pip install 'tocoad-edge[fleet]'``), imported only when a connection is made.
"""
