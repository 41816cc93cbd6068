"""Reading a record's fields by key, as the dicts it replaced were read (`version["records"]`).

The data domain answers frozen records. Callers outside it that still index the dicts it used
to answer (compute.inputs, serve.apps, assets.detail, economy.licences and economy.lineage,
web.apps and web.builder, the demo, and their tests) keep working through this while they move
to attributes (issue 14); new code reads attributes, and this goes once no caller indexes.
"""

from __future__ import annotations

from typing import Any


class KeyAccess:
    """`record[name]` reads the field `name`; an unknown name is a `KeyError`, as in a dict."""

    __slots__ = ()

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None
