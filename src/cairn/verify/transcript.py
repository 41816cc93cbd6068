"""A committed call's transcript document: the token ids a validator reads on the model.

The gateway stores one per committed call (`cairn.economy.receipts.Transcripts`): its schema, a
random salt (the receipt's public CID of the document does not let anyone test a guessed prompt),
the prompt's token ids (chat template included) and the generated ones. Pure: the command line
reads it without the node's libraries.
"""

from __future__ import annotations

from typing import Any

from cairn.core.errors import InvalidInput

TRANSCRIPT_SCHEMA = "cairn.inference-transcript/v1"


def transcript_ids(doc: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The prompt and completion token ids of a transcript document; InvalidInput if it is not
    one."""
    if not isinstance(doc, dict) or doc.get("schema") != TRANSCRIPT_SCHEMA:
        raise InvalidInput(f"not an inference transcript (schema {TRANSCRIPT_SCHEMA})")
    ids = doc.get("prompt"), doc.get("completion")
    if not all(isinstance(i, list) and all(type(t) is int and t >= 0 for t in i) for i in ids):
        raise InvalidInput("a transcript's prompt and completion are lists of token ids")
    return tuple(doc["prompt"]), tuple(doc["completion"])
