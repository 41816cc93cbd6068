"""Pure functions and value types: no I/O. Everything money or trust depends on lives here."""
