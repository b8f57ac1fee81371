"""MQTT: events to a broker for Home Assistant and other automations (topics.py lists them)."""
