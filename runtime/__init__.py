"""The service: collector, learner loop, goal daemon, MQTT bridge, metrics, config, CLI."""
