"""Tiny models built from a config, with tokenizers that need no download: for tests and benches.

The tokenizers are character level: one token per character of printable ASCII (plus any other
character in `texts`), and the special tokens. That is enough for toy tasks such as arithmetic,
builds in milliseconds, and is the same on every machine, so a seed fixes everything.

- `tiny_causal_lm`: a Llama-architecture causal LM of a few hundred thousand parameters, with a
  ChatML chat template like SmolLM2's (`<|im_start|>role\\n…<|im_end|>\\n`).
- `tiny_encoder`: a BERT sequence classifier of the same order, `[CLS] text [SEP]`.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, processors
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from cairn.core.errors import InvalidInput

CHAT_SPECIALS = ("<pad>", "<unk>", "<|im_start|>", "<|im_end|>")
ENCODER_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# ChatML as SmolLM2-Instruct writes it, without its default system message (short sequences)
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_ALPHABET = string.printable  # letters, digits, punctuation, space, \t \n \r \x0b \x0c


def _alphabet(texts: Iterable[str] | None) -> list[str]:
    chars = set(_ALPHABET)
    for text in texts or ():
        chars.update(text)
    return sorted(chars)  # sorted, so the same texts always give the same ids


def _char_tokenizer(specials: tuple[str, ...], texts: Iterable[str] | None) -> Tokenizer:
    vocab = {token: i for i, token in enumerate(specials)}
    for char in _alphabet(texts):
        vocab.setdefault(char, len(vocab))
    # BPE with no merges splits text into characters; specials are matched before it runs
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=specials[1]))
    tokenizer.add_special_tokens(list(specials))
    tokenizer.decoder = decoders.Fuse()  # characters join with nothing between them
    return tokenizer


def tiny_chat_tokenizer(texts: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """A character-level tokenizer with a ChatML chat template; `<|im_end|>` ends a turn."""
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_char_tokenizer(CHAT_SPECIALS, texts),
        pad_token="<pad>",
        unk_token="<unk>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_encoder_tokenizer(texts: Iterable[str] | None = None) -> PreTrainedTokenizerFast:
    """A character-level tokenizer that writes `[CLS] text [SEP]`, as BERT's does."""
    backend = _char_tokenizer(ENCODER_SPECIALS, texts)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _vocab_rows(tokenizer: PreTrainedTokenizerFast, vocab_size: int | None) -> int:
    need = len(tokenizer)
    if vocab_size is None:
        return need
    if vocab_size < need:
        raise InvalidInput(f"vocab_size must be at least the tokenizer's {need}; got {vocab_size}")
    return vocab_size


def tiny_causal_lm(
    vocab_size: int | None = None,  # embedding rows; None = the tokenizer's size
    seed: int = 0,  # initialisation seed: same seed, same weights
    *,
    hidden_size: int = 64,
    layers: int = 4,
    heads: int = 4,
    texts: Iterable[str] | None = None,  # extra characters the tokenizer must know
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A Llama causal LM (about 270k parameters by default) and its chat tokenizer, float32."""
    tokenizer = tiny_chat_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=_vocab_rows(tokenizer, vocab_size),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model, tokenizer


def tiny_encoder(
    num_labels: int = 2,
    seed: int = 0,  # initialisation seed: same seed, same weights
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    texts: Iterable[str] | None = None,  # extra characters the tokenizer must know
) -> tuple[BertForSequenceClassification, PreTrainedTokenizerFast]:
    """A BERT sequence classifier (about 140k parameters by default) and its tokenizer."""
    if num_labels < 2:
        raise InvalidInput(f"a classifier needs at least 2 labels; got {num_labels}")
    tokenizer = tiny_encoder_tokenizer(texts)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=512,
        num_labels=num_labels,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    return model, tokenizer
