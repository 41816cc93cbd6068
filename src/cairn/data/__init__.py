"""The data domain: datasets, contributions, validation, review and quality, anchoring."""
