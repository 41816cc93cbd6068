"""cairn.data.dedup: shingles, batched MinHash equal to datasketch's, and the LSH index."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash

from cairn.data.dedup import (
    MAX_HASH,
    NUM_PERM,
    MinHasher,
    NearDuplicateIndex,
    UploadNearDuplicates,
    lsh_params,
    shingles,
    signature_from_bytes,
    signature_to_bytes,
    words,
)

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def vocabulary(seed: int, size: int = 5_000) -> list[str]:
    """Distinct letter-only words."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < size:
        found["".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 9)))] = None
    return list(found)


VOCAB = vocabulary(0)


def text_of(rng: random.Random, n: int) -> list[str]:
    """n random words."""
    return [rng.choice(VOCAB) for _ in range(n)]


def jaccard(a: set[str], b: set[str]) -> float:
    """The true Jaccard similarity of two sets."""
    return len(a & b) / len(a | b) if a | b else 1.0


def test_shingles_are_word_ngrams_of_the_lower_cased_text() -> None:
    assert shingles("The cat, the Hat!", 2) == {"the cat", "cat the", "the hat"}
    assert shingles("a b c d", 3) == {"a b c", "b c d"}
    assert shingles("one two three", 1) == {"one", "two", "three"}


def test_punctuation_and_spacing_do_not_change_shingles() -> None:
    assert shingles("Yes, it is -- really.", 3) == shingles("yes it   is really", 3)
    assert words("Don't “stop”—now…") == ["don", "t", "stop", "now"]


def test_short_texts_give_one_shingle_of_the_whole_text() -> None:
    assert shingles("Hello, World", 3) == {"hello world"}
    assert shingles("?!", 3) == {"?!"}
    assert shingles("   ", 3) == set()
    assert shingles("", 2) == set()
    with pytest.raises(ValueError, match="at least one word"):
        shingles("x", 0)


@pytest.mark.parametrize("num_perm", [NUM_PERM, 64])
def test_signatures_equal_datasketch_minhash_with_crc32(num_perm: int) -> None:
    rng = random.Random(1)
    sets = [shingles(" ".join(text_of(rng, rng.randint(1, 90))), 3) for _ in range(40)]
    sets.append(set())
    sigs = MinHasher(num_perm).signatures(sets)
    assert sigs.shape == (len(sets), num_perm)
    assert sigs.dtype == np.uint64
    for sig, items in zip(sigs, sets, strict=True):
        reference = MinHash(num_perm=num_perm, seed=1, hashfunc=lambda s: zlib.crc32(s.encode()))
        reference.update_batch(list(items))
        assert np.array_equal(sig, reference.hashvalues.astype(np.uint64))
    assert (sigs[-1] == MAX_HASH).all()


def test_signatures_do_not_depend_on_batching() -> None:
    rng = random.Random(2)
    sets = [shingles(" ".join(text_of(rng, 60)), 3) for _ in range(50)]
    hasher = MinHasher()
    hasher_small_blocks = MinHasher()
    hasher_small_blocks.CHUNK_SHINGLES = 7
    together = hasher.signatures(sets)
    assert np.array_equal(together, hasher_small_blocks.signatures(sets))
    assert np.array_equal(together[10:11], hasher.signatures(sets[10:11]))
    assert hasher.signatures([]).shape == (0, NUM_PERM)


def test_estimated_jaccard_is_within_a_tenth_of_the_true_jaccard() -> None:
    """With 128 permutations the estimate's standard error is at most 0.044 (at J = 0.5), so
    about 1 % of mid-range pairs land beyond 0.1 by chance: allow 2 %, none beyond 0.2, and
    no bias."""
    rng = random.Random(3)
    pairs: list[tuple[set[str], set[str]]] = []
    for _ in range(500):
        base = text_of(rng, rng.randint(20, 120))
        other = list(base)
        for _ in range(rng.randint(0, len(base))):  # from identical to unrelated
            other[rng.randrange(len(other))] = rng.choice(VOCAB)
        pairs.append((shingles(" ".join(base), 3), shingles(" ".join(other), 3)))
    sigs = MinHasher().signatures([s for pair in pairs for s in pair])
    estimates = np.mean(sigs[0::2] == sigs[1::2], axis=1)
    errors = estimates - np.array([jaccard(a, b) for a, b in pairs])
    assert np.mean(np.abs(errors) <= 0.1) >= 0.98
    assert np.max(np.abs(errors)) <= 0.2
    assert abs(np.mean(errors)) < 0.01


def test_signatures_round_trip_through_bytes() -> None:
    sig = MinHasher().signatures([{"a b c"}])[0]
    data = signature_to_bytes(sig)
    assert len(data) == 4 * NUM_PERM
    back = signature_from_bytes(data)
    assert back.dtype == np.uint64
    assert np.array_equal(back, sig)


@pytest.mark.parametrize(
    "bad", [np.array([2**32], dtype=np.uint64), np.array([-1]), np.zeros((2, 2)), np.array([])]
)
def test_signatures_out_of_range_are_not_written(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        signature_to_bytes(bad)


@pytest.mark.parametrize("data", [b"", b"abc"])
def test_malformed_stored_signatures_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="multiple of 4 bytes"):
        signature_from_bytes(data)


def test_lsh_bands_make_pairs_at_and_above_the_threshold_candidates() -> None:
    assert lsh_params(0.8, 128) == (16, 8)
    for threshold in (0.5, 0.8, 0.9, 1.0):
        bands, rows = lsh_params(threshold, 128)
        assert bands * rows <= 128 and bands >= 2
        assert 1 - (1 - threshold**rows) ** bands >= 0.9
        assert 1 - (1 - min(1.0, threshold + 0.05) ** rows) ** bands >= 0.99
    with pytest.raises(ValueError, match="Jaccard similarity in"):
        lsh_params(0.0, 128)


def near_copy(rng: random.Random, base: list[str], changes: int) -> list[str]:
    """base with `changes` words replaced."""
    copy = list(base)
    for position in rng.sample(range(len(copy)), changes):
        copy[position] = rng.choice(VOCAB)
    return copy


def test_index_finds_the_most_similar_stored_record_above_the_threshold() -> None:
    rng = random.Random(4)
    hasher = MinHasher()
    stored = [text_of(rng, 80) for _ in range(200)]
    index = NearDuplicateIndex()
    for i, sig in enumerate(hasher.signatures([shingles(" ".join(t), 3) for t in stored])):
        index.add(f"r{i}", sig)
    assert len(index) == 200
    close = near_copy(rng, stored[17], 1)  # true Jaccard about 0.93
    farther = near_copy(rng, stored[17], 2)
    unrelated = text_of(rng, 80)
    sig_close, sig_farther, sig_unrelated = hasher.signatures(
        [shingles(" ".join(t), 3) for t in (close, farther, unrelated)]
    )
    assert index.query(sig_close) == "r17"
    match = index.best_match(sig_close)
    assert match is not None and match[0] == "r17" and 0.8 <= match[1] <= 1.0
    assert index.query(sig_unrelated) is None
    # With a closer copy stored as well, the closer of the two is named.
    index.add("close", sig_close)
    assert index.query(sig_close) == "close"
    assert index.best_matches(np.stack([sig_farther, sig_unrelated]))[1] is None


def test_index_candidates_are_those_datasketch_itself_finds() -> None:
    rng = random.Random(5)
    hasher = MinHasher()
    texts = [text_of(rng, 40) for _ in range(50)]
    texts += [near_copy(rng, t, 3) for t in texts[:20]]
    sigs = hasher.signatures([shingles(" ".join(t), 3) for t in texts])
    index = NearDuplicateIndex(threshold=0.5)
    for i, sig in enumerate(sigs[:50]):
        index.add(str(i), sig)
    for i, sig in enumerate(sigs[50:]):
        lean = LeanMinHash(seed=1, hashvalues=sig.astype(np.uint32), scheme="affine32")
        assert str(i) in index._lsh.query(lean)
        assert index.query(sig) == str(i)


def test_adding_a_key_twice_changes_nothing() -> None:
    index = NearDuplicateIndex()
    sig = MinHasher().signatures([{"x y z"}])[0]
    index.add("a", sig)
    index.add("a", sig)
    assert len(index) == 1
    index.add_many(["b", "a"], np.stack([sig, sig]))
    assert len(index) == 2


def test_index_grows_past_its_first_allocation() -> None:
    rng = np.random.default_rng(6)
    sigs = rng.integers(0, 2**32, size=(2_500, NUM_PERM), dtype=np.uint64)
    index = NearDuplicateIndex()
    index.add_many([str(i) for i in range(len(sigs))], sigs)
    assert len(index) == 2_500
    assert index.query(sigs[2_400]) == "2400"


def test_index_refuses_signatures_of_another_length() -> None:
    index = NearDuplicateIndex()
    with pytest.raises(ValueError, match="expected a signature of 128 values"):
        index.add("a", np.zeros(64, dtype=np.uint64))
    with pytest.raises(ValueError, match="expected signatures of 128 values"):
        index.best_matches(np.zeros((2, 64), dtype=np.uint64))
    with pytest.raises(ValueError, match="keys for"):
        index.add_many(["a"], np.zeros((2, 128), dtype=np.uint64))


def test_empty_index_matches_nothing() -> None:
    index = NearDuplicateIndex()
    assert index.query(np.zeros(NUM_PERM, dtype=np.uint64)) is None
    assert index.best_matches(np.zeros((3, NUM_PERM), dtype=np.uint64)) == [None, None, None]


def test_upload_near_duplicates_count_only_kept_earlier_records() -> None:
    rng = random.Random(7)
    base = text_of(rng, 60)
    texts = [base, near_copy(rng, base, 1), text_of(rng, 60), near_copy(rng, base, 1)]
    sigs = MinHasher().signatures([shingles(" ".join(t), 3) for t in texts])
    upload = UploadNearDuplicates(sigs, 0.8)
    assert upload.best_earlier(0) is None
    upload.keep(0)
    earlier = upload.best_earlier(1)
    assert earlier is not None and earlier[0] == 0 and earlier[1] >= 0.8
    assert upload.best_earlier(2) is None
    upload.keep(2)
    # Record 1 was not kept: record 3 is compared with record 0 only.
    earlier = upload.best_earlier(3)
    assert earlier is not None and earlier[0] == 0


def test_upload_near_duplicates_with_nothing_shared() -> None:
    rng = random.Random(8)
    sigs = MinHasher().signatures([shingles(" ".join(text_of(rng, 50)), 3) for _ in range(30)])
    upload = UploadNearDuplicates(sigs, 0.8)
    for i in range(30):
        assert upload.best_earlier(i) is None
        upload.keep(i)
