"""Server-rendered pages of the node."""
