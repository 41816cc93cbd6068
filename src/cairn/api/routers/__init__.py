"""One router per part of the node API."""
