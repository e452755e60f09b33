"""MQTT, the service's transport: the bridge that adapts the loop's control interface
to topics (``mqtt``), its settings (``mqtt_config``), the payloads (``messages``), the
embedded broker (``broker``) and the client the ``inject`` / ``status`` commands use
(``client``)."""
