"""Cairn: a self-hostable platform where a community builds AI models together and owns them."""

__version__ = "0.1.0"
