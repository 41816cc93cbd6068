"""Fixtures for the serving domain: tiny models saved as Hugging Face folders, built offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cairn.serve.backends import ServedModel
from cairn.train.tiny import tiny_causal_lm, tiny_encoder

LABELS = ("negative", "neutral", "positive")


def save(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """chat: a Llama with a ChatML template; plain: one without a template; classifier: a BERT
    with three labels; encoder: the same BERT without its head."""
    root = tmp_path_factory.mktemp("models")
    chat, chat_tokenizer = tiny_causal_lm(seed=0, hidden_size=32, layers=2, heads=2)
    plain, plain_tokenizer = tiny_causal_lm(seed=1, hidden_size=32, layers=2, heads=2)
    plain_tokenizer.chat_template = None
    classifier, encoder_tokenizer = tiny_encoder(num_labels=len(LABELS), seed=0)
    classifier.config.id2label = dict(enumerate(LABELS))
    classifier.config.label2id = {label: i for i, label in enumerate(LABELS)}
    return {
        "chat": save(chat, chat_tokenizer, root / "chat"),
        "plain": save(plain, plain_tokenizer, root / "plain"),
        "classifier": save(classifier, encoder_tokenizer, root / "classifier"),
        "encoder": save(classifier.bert, encoder_tokenizer, root / "encoder"),
    }


@pytest.fixture(scope="session")
def models(folders: dict[str, Path]) -> dict[str, ServedModel]:
    """The tiny folders as served models, with the ids clients send."""
    return {
        "chat": ServedModel("5", folders["chat"], "causal-lm"),
        "plain": ServedModel("6", folders["plain"], "causal-lm"),
        "classifier": ServedModel("7", folders["classifier"], "encoder"),
        "encoder": ServedModel("8", folders["encoder"], "encoder"),
    }
