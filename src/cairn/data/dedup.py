"""Near-duplicate detection: word shingles, batched MinHash, and MinHash LSH over a dataset.

A record's text becomes a set of word n-grams (shingles); its MinHash signature estimates the
Jaccard similarity of two such sets as the share of equal positions. `MinHasher` computes the
signatures of a whole upload in one numpy expression and gives exactly what
`datasketch.MinHash(num_perm, seed, hashfunc=crc32 of UTF-8)` gives (the "affine32" scheme of
datasketch 2), so signatures can be handed to datasketch and back.

`NearDuplicateIndex` holds a dataset's signatures in a `datasketch.MinHashLSH`. Its bands (16
of 8 rows for Jaccard 0.8 and 128 permutations; datasketch's own choice, 9 of 13, would miss a
third of the pairs at 0.85) make nearly every pair above the threshold a candidate; candidates
are then checked by their estimated Jaccard, so the banding decides speed and recall, never
precision. `UploadNearDuplicates` does the same among the records of one upload, without
datasketch's per-record cost: most records share no band with any other and are passed over
by one vectorised pass.
"""

from __future__ import annotations

import functools
import string
import zlib
from itertools import chain

import numpy as np

from cairn.core.collector import collector_paused

NUM_PERM = 128  # permutations per signature: the estimate's standard error is about 0.03 near 0.85
SEED = 1  # seed of the permutations; signatures from different seeds do not compare
# Banding: a pair exactly at the threshold must share a band with probability 0.9, and one
# 0.05 above it with probability 0.99. (A pair at the threshold is flagged only about half the
# time anyway, its estimate being as likely below as above; each band costs a bucket per record.)
CANDIDATE_AT_THRESHOLD = 0.9
CANDIDATE_ABOVE_THRESHOLD = 0.99
MAX_HASH = 0xFFFFFFFF  # the value of every position of an empty set's signature

# Punctuation is a word boundary, so "yes," and "yes" are one word. str.translate and
# str.split are about twice as fast as a regular expression over \w+.
_PUNCTUATION = (
    string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00ab\u00bb\u00bf\u00a1"
)
_TO_SPACE = str.maketrans(dict.fromkeys(_PUNCTUATION, " "))
_U32 = np.uint32


def words(text: str) -> list[str]:
    """The lower-cased words of a text, split at whitespace and punctuation."""
    return text.lower().translate(_TO_SPACE).split()


def shingles(text: str, words: int) -> set[str]:
    """Word n-grams of the lower-cased text; shorter texts give one shingle of the whole text.

    Words are split at whitespace and punctuation, so neither makes two texts differ. Empty
    text gives no shingles.
    """
    if words < 1:
        raise ValueError(f"a shingle is at least one word, not {words}")
    lowered = text.lower()
    tokens = lowered.translate(_TO_SPACE).split()  # as words(), without lower-casing twice
    if len(tokens) < words:
        whole = " ".join(tokens) if tokens else lowered.strip()
        return {whole} if whole else set()
    if words == 1:
        return set(tokens)
    return set(map(" ".join, zip(*(tokens[i:] for i in range(words)), strict=False)))


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, as datasketch applies it before its permutations."""
    values = values ^ (values >> _U32(16))
    values = values * _U32(0x85EBCA6B)
    values = values ^ (values >> _U32(13))
    values = values * _U32(0xC2B2AE35)
    return values ^ (values >> _U32(16))


@functools.lru_cache(maxsize=8)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own affine32 permutation parameters: a (odd) and b, each (num_perm,)."""
    from datasketch import MinHash  # with scipy, most of a second: loaded on first use

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(_U32), b.astype(_U32)


class MinHasher:
    """Batched MinHash signatures, equal to datasketch's affine32 MinHash with a CRC-32 hash."""

    CHUNK_SHINGLES = 512  # shingles per numpy block: (128, 512) uint32 is 256 KiB, in cache

    def __init__(self, num_perm: int = NUM_PERM, seed: int = SEED) -> None:
        if num_perm < 2:
            raise ValueError(f"a signature needs at least 2 permutations, not {num_perm}")
        self.num_perm = num_perm
        self.seed = seed
        a, b = _permutations(num_perm, seed)
        self._a, self._b = a.reshape(-1, 1), b.reshape(-1, 1)  # (P, 1)

    def signatures(self, shingle_sets: list[set[str]]) -> np.ndarray:
        """Signatures of the sets, shape (n, num_perm) uint64; an empty set's are all MAX_HASH."""
        n = len(shingle_sets)
        out = np.full((self.num_perm, n), MAX_HASH, dtype=_U32)  # (P, n), transposed at the end
        sizes = np.fromiter(map(len, shingle_sets), dtype=np.intp, count=n)
        total = int(sizes.sum())
        if total:
            every = chain.from_iterable(shingle_sets)
            hashes = np.fromiter(map(zlib.crc32, map(str.encode, every)), dtype=_U32, count=total)
            mixed = _fmix32(hashes)  # (S,)
            filled = np.flatnonzero(sizes)
            ends = np.cumsum(sizes[filled])  # where each non-empty set ends in `mixed`
            starts = ends - sizes[filled]
            # Blocks of whole sets, each (P, S_block) block small enough to stay in cache;
            # the minimum runs along the contiguous axis.
            first = 0
            while first < len(filled):
                limit = starts[first] + self.CHUNK_SHINGLES
                last = max(int(np.searchsorted(ends, limit, side="right")), first + 1)
                lo, hi = int(starts[first]), int(ends[last - 1])
                permuted = self._a * mixed[lo:hi] + self._b  # (P, S_block), wraps mod 2**32
                block = np.minimum.reduceat(permuted, starts[first:last] - lo, axis=1)
                out[:, filled[first:last]] = block
                first = last
        return out.T.astype(np.uint64)  # (n, P)


def signature_to_bytes(sig: np.ndarray) -> bytes:
    """A signature as little-endian 32-bit words (every position fits in 32 bits)."""
    values = np.asarray(sig)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"a signature is a non-empty vector; got shape {values.shape}")
    if values.dtype.kind not in "iu" or int(values.min()) < 0 or int(values.max()) > MAX_HASH:
        raise ValueError("a signature holds 32-bit unsigned values")
    return values.astype("<u4").tobytes()


def signature_from_bytes(data: bytes) -> np.ndarray:
    """The signature `signature_to_bytes` wrote, as uint64."""
    if not data or len(data) % 4:
        raise ValueError(f"a stored signature is a non-zero multiple of 4 bytes, not {len(data)}")
    return np.frombuffer(data, dtype="<u4").astype(np.uint64)


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band): the fewest bands that make pairs at and just above `threshold`
    candidates as often as CANDIDATE_AT_THRESHOLD and CANDIDATE_ABOVE_THRESHOLD say."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the threshold is a Jaccard similarity in (0, 1], not {threshold}")
    above = min(1.0, threshold + 0.05)
    for rows in range(num_perm // 2, 0, -1):
        bands = num_perm // rows
        if (
            1.0 - (1.0 - threshold**rows) ** bands >= CANDIDATE_AT_THRESHOLD
            and 1.0 - (1.0 - above**rows) ** bands >= CANDIDATE_ABOVE_THRESHOLD
        ):
            return bands, rows
    return num_perm, 1


def _as_sigs32(signatures: np.ndarray, num_perm: int) -> np.ndarray:
    """Signatures, shape (n, num_perm), checked for length and range, as uint32."""
    values = np.asarray(signatures)
    if values.ndim != 2 or values.shape[1] != num_perm:
        raise ValueError(f"expected signatures of {num_perm} values; got shape {values.shape}")
    if values.dtype != _U32:
        if values.size and (
            values.dtype.kind not in "iu" or int(values.min()) < 0 or int(values.max()) > MAX_HASH
        ):
            raise ValueError("a signature holds 32-bit unsigned values")
        values = values.astype(_U32)
    return values


def _as_sig32(signature: np.ndarray, num_perm: int) -> np.ndarray:
    """One signature, checked for length and range, as uint32."""
    values = np.asarray(signature)
    if values.shape != (num_perm,):
        raise ValueError(f"expected a signature of {num_perm} values; got shape {values.shape}")
    return _as_sigs32(values.reshape(1, -1), num_perm)[0]


class NearDuplicateIndex:
    """A dataset's signatures in a MinHash LSH: which stored record is this one nearly a copy of?

    Keys are the records' content hashes; adding a key already held changes nothing. The
    buckets are a `datasketch.MinHashLSH`'s own storage, filled and read with the band keys
    datasketch itself uses (the bytes of each band of the big-endian signature), so
    `MinHashLSH.query` with a `LeanMinHash` of the same values finds the same candidates. The
    band keys are cut from one byte string per signature instead of one numpy call per band:
    that makes adding and querying several times faster.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = NUM_PERM) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.bands, self.rows = lsh_params(threshold, num_perm)
        from datasketch import MinHashLSH  # with scipy, most of a second: loaded on first use

        self._lsh = MinHashLSH(num_perm=num_perm, params=(self.bands, self.rows))
        self._byte_ranges = [(start * 4, end * 4) for start, end in self._lsh.hashranges]
        self._keys: list[str] = []
        self._row: dict[str, int] = {}
        self._matrix = np.empty((1024, num_perm), dtype=_U32)  # row i: signature of _keys[i]

    def __len__(self) -> int:
        """Number of records held."""
        return len(self._keys)

    def _band_keys(self, sig32: np.ndarray) -> list[bytes]:
        raw = sig32.byteswap().tobytes()
        return [raw[start:end] for start, end in self._byte_ranges]

    def best_match(self, signature: np.ndarray) -> tuple[str, float] | None:
        """The most similar stored record at or above the threshold and its estimated Jaccard."""
        return self.best_matches(_as_sig32(signature, self.num_perm).reshape(1, -1))[0]

    def best_matches(self, signatures: np.ndarray) -> list[tuple[str, float] | None]:
        """`best_match` for each row of an (n, num_perm) array, in one pass."""
        sigs = _as_sigs32(signatures, self.num_perm)
        if not self._keys:
            return [None] * len(sigs)
        raw = sigs.byteswap().tobytes()  # band keys are slices of this, as datasketch cuts them
        width = 4 * self.num_perm
        tables = self._lsh.hashtables
        ranges = self._byte_ranges
        results: list[tuple[str, float] | None] = []
        for i, sig in enumerate(sigs):
            offset = i * width
            found: set[str] = set()
            for (start, end), table in zip(ranges, tables, strict=True):
                found.update(table.get(raw[offset + start : offset + end]))
            results.append(self._closest(found, sig) if found else None)
        return results

    def _closest(self, keys: set[str], sig32: np.ndarray) -> tuple[str, float] | None:
        """Of the candidate keys, the most similar at or above the threshold."""
        rows = np.sort(np.fromiter((self._row[k] for k in keys), np.intp, len(keys)))
        similarity = np.count_nonzero(self._matrix[rows] == sig32, axis=1) / self.num_perm
        best = int(np.argmax(similarity))  # ties: the record added first
        if similarity[best] < self.threshold:
            return None
        return self._keys[rows[best]], float(similarity[best])

    def query(self, signature: np.ndarray) -> str | None:
        """Key of the most similar stored record with estimated Jaccard >= threshold, else None."""
        match = self.best_match(signature)
        return None if match is None else match[0]

    def add(self, key: str, signature: np.ndarray) -> None:
        """Hold `key`'s signature (after its record is stored)."""
        sig32 = _as_sig32(signature, self.num_perm)
        if key in self._row:
            return
        row = len(self._keys)
        if row == len(self._matrix):
            self._matrix = np.concatenate([self._matrix, np.empty_like(self._matrix)])
        self._matrix[row] = sig32
        self._keys.append(key)
        self._row[key] = row
        band_keys = self._band_keys(sig32)
        self._lsh.keys.insert(key, *band_keys)
        for band_key, table in zip(band_keys, self._lsh.hashtables, strict=True):
            table.insert(band_key, key)

    def add_many(self, keys: list[str], signatures: np.ndarray) -> None:
        """`add` for many records at once (rebuilding an index from stored signatures)."""
        if len(keys) != len(signatures):
            raise ValueError(f"{len(keys)} keys for {len(signatures)} signatures")
        sigs = _as_sigs32(signatures, self.num_perm)
        with collector_paused():  # millions of small buckets: no need to walk them repeatedly
            for key, sig in zip(keys, sigs, strict=True):
                self.add(key, sig)


class UploadNearDuplicates:
    """Near duplicates among one upload's records, taken in order: for each record, the most
    similar earlier record that was kept. Banded like `NearDuplicateIndex`, but a record that
    shares no band with any other in the upload (most of them) costs nothing per record."""

    def __init__(self, signatures: np.ndarray, threshold: float) -> None:
        n, num_perm = signatures.shape
        self.threshold = threshold
        self._sigs = signatures.astype(_U32)
        bands, rows = lsh_params(threshold, num_perm)
        # One 64-bit key per (record, band): a random linear combination of the band's values.
        weights = np.random.RandomState(SEED).randint(1, 2**63, size=rows, dtype=np.uint64) | 1
        banded = self._sigs[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
        self._keys = (banded * weights).sum(axis=2, dtype=np.uint64)  # (n, bands)
        shared = np.zeros(n, dtype=bool)
        for band in range(bands):
            _, inverse, counts = np.unique(
                self._keys[:, band], return_inverse=True, return_counts=True
            )
            shared |= counts[inverse] > 1
        self._shared = shared
        self._buckets: list[dict[int, list[int]]] = [{} for _ in range(bands)]

    def best_earlier(self, index: int) -> tuple[int, float] | None:
        """The kept earlier record most similar to record `index` at or above the threshold."""
        if not self._shared[index]:
            return None
        found: set[int] = set()
        for bucket, key in zip(self._buckets, self._keys[index].tolist(), strict=True):
            found.update(bucket.get(key, ()))
        if not found:
            return None
        rows = np.array(sorted(found), dtype=np.intp)
        similarity = np.count_nonzero(self._sigs[rows] == self._sigs[index], axis=1)
        similarity = similarity / self._sigs.shape[1]
        best = int(np.argmax(similarity))
        if similarity[best] < self.threshold:
            return None
        return int(rows[best]), float(similarity[best])

    def keep(self, index: int) -> None:
        """Record `index` was accepted: later records are compared with it."""
        if not self._shared[index]:
            return
        for bucket, key in zip(self._buckets, self._keys[index].tolist(), strict=True):
            bucket.setdefault(key, []).append(index)
