"""Serving: the OpenAI-compatible gateway, its model backends and metering."""
