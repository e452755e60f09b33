"""The runtime around the contracts: the loop (``loop``), its evaluation
(``evaluation``), what it reports (``telemetry``), how it is controlled and heard
(``transport``: MQTT), the asyncio service that wires them (``service``), the
configuration (``config``) and the command line (``commands``). docs/architecture.md
draws the layers; each imports only those below it."""
