"""Retrieval for apps: passages, the index (real all-MiniLM-L6-v2, real blob store), search,
the augmented chat, the cached retriever, and the token cap on what passages add to a prompt
(never over the budget, cut at token boundaries, each passage still naming its record)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cairn.core.errors import IntegrityError, InvalidInput, NotFound
from cairn.serve.backends import ServedModel
from cairn.serve.backends.transformers import TransformersBackend
from cairn.serve.passage_budget import (
    MIN_CUT_TOKENS,
    PASSAGES_INTRO,
    TRUNCATED,
    Passage,
    fit_passages,
    passages_block,
)
from cairn.serve.retrieval import (
    NO_RECORDS,
    SCHEMA,
    RetrievalIndex,
    Retriever,
    augment_messages,
    build_index,
    passage_text,
    unit_rows,
)
from cairn.store.local import LocalBlobStore

MINILM = "all-MiniLM-L6-v2"
VERSION = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"  # any CID will do

CAPITALS = [
    ("France", "Paris", "the Eiffel Tower stands on the Seine"),
    ("Japan", "Tokyo", "it is the largest metropolitan area in the world"),
    ("Italy", "Rome", "the Colosseum once held gladiator fights"),
    ("Egypt", "Cairo", "it lies on the Nile near the pyramids of Giza"),
    ("Canada", "Ottawa", "Parliament Hill overlooks the Ottawa River"),
    ("Australia", "Canberra", "it was planned as a compromise between Sydney and Melbourne"),
    ("Brazil", "Brasília", "it was built in the 1950s to a modernist plan"),
    ("Kenya", "Nairobi", "a national park with lions lies inside the city limits"),
    ("Norway", "Oslo", "the Nobel Peace Prize is awarded there"),
    ("Peru", "Lima", "it was founded by Spanish conquistadors on the Pacific coast"),
    ("Germany", "Berlin", "a wall divided it until 1989"),
    ("Spain", "Madrid", "the Prado museum holds paintings by Velázquez"),
    ("India", "New Delhi", "it houses the Indian parliament"),
    ("Mexico", "Mexico City", "it was built on the ruins of the Aztec city Tenochtitlan"),
    ("Argentina", "Buenos Aires", "it is known for tango"),
    ("Turkey", "Ankara", "Atatürk chose it over Istanbul"),
    ("Thailand", "Bangkok", "its canals earned it the name Venice of the East"),
    ("Poland", "Warsaw", "its old town was rebuilt after the Second World War"),
    ("Vietnam", "Hanoi", "it sits on the banks of the Red River"),
    ("Ireland", "Dublin", "Trinity College keeps the Book of Kells"),
]
ANIMALS = [
    ("giraffe", "the tallest animal, with a very long neck for eating acacia leaves"),
    ("penguin", "a flightless bird that swims in the cold Antarctic sea"),
    ("elephant", "the largest land animal, with a trunk and ivory tusks"),
    ("cheetah", "the fastest land animal, sprinting after gazelles"),
    ("giant panda", "a black and white bear that eats bamboo in China"),
    ("kangaroo", "a marsupial that hops and carries its young in a pouch"),
    ("octopus", "a sea creature with eight arms and three hearts"),
    ("honeybee", "an insect that makes honey and pollinates flowers"),
    ("bat", "a flying mammal that finds its way at night by echolocation"),
    ("camel", "a desert animal that stores fat in its hump"),
    ("owl", "a night bird that can turn its head almost all the way round"),
    ("dolphin", "a clever marine mammal that breathes through a blowhole"),
    ("tortoise", "a slow reptile with a heavy shell that can live over a century"),
    ("chameleon", "a lizard that changes colour and moves its eyes independently"),
    ("salmon", "a fish that swims upriver to spawn where it hatched"),
    ("wolf", "a pack hunter that howls to its pack"),
    ("koala", "a sleepy marsupial that eats eucalyptus leaves"),
    ("hummingbird", "a tiny bird that hovers while drinking nectar"),
    ("polar bear", "a white bear that hunts seals on Arctic sea ice"),
    ("snail", "a slow mollusc that carries a spiral shell"),
]


def anchored(content: dict[str, Any], n: int) -> dict[str, Any]:
    """A record as `Anchoring.records` returns it: content plus who gave it and its hash."""
    return {**content, "_contributor": f"0x{n:040x}", "_record_hash": f"{n:064x}"}


RECORDS = [
    anchored(
        {
            "prompt": f"Tell me about {city}.",
            "response": f"{city} is the capital of {country}; {fact}.",
        },
        n,
    )
    for n, (country, city, fact) in enumerate(CAPITALS)
] + [
    anchored({"prompt": f"What is a {animal}?", "response": f"The {animal} is {about}."}, 100 + n)
    for n, (animal, about) in enumerate(ANIMALS)
]


@pytest.fixture(scope="module")
def minilm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged all-MiniLM-L6-v2's Hugging Face folder."""
    from cairn.train.base_models import find
    from cairn.train.weights import base_model_folder

    return base_model_folder(find(MINILM), tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def minilm(minilm_folder: Path) -> Callable[[list[str]], list[list[float]]]:
    """The packaged all-MiniLM-L6-v2 on the transformers backend, as an embed function."""
    folder = minilm_folder
    backend = TransformersBackend(memory_budget_bytes=1 << 30, device="cpu")
    model = ServedModel("1", folder, "encoder")
    return lambda texts: backend.embed(model, texts)[0]


@pytest.fixture(scope="module")
def built(
    minilm: Callable[[list[str]], list[list[float]]],
) -> tuple[RetrievalIndex, list[tuple[int, int]]]:
    """The 40 records indexed in batches of 16, and the progress reported."""
    calls: list[tuple[int, int]] = []
    index = build_index(
        RECORDS,
        minilm,
        model=MINILM,
        version=VERSION,
        batch_size=16,
        progress=lambda done, total: calls.append((done, total)),
    )
    return index, calls


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def hand_made(rows: list[list[float]], passages: list[str] | None = None) -> RetrievalIndex:
    vectors = unit_rows(np.asarray(rows, dtype=np.float32))
    texts = passages or [f"passage {i}" for i in range(len(rows))]
    return RetrievalIndex(texts, vectors, MINILM, VERSION)


# --- passages -------------------------------------------------------------------------------


def test_a_passage_is_the_records_fields_as_sorted_lines_without_provenance() -> None:
    record = anchored(
        {"response": "Paris.", "prompt": "Capital of France?", "tags": ["geo", "é"], "n": 2}, 7
    )

    assert passage_text(record) == (
        'n: 2\nprompt: Capital of France?\nresponse: Paris.\ntags: ["geo","é"]'
    )


def test_a_passage_keeps_zero_and_false_but_leaves_out_empty_values() -> None:
    record: dict[str, Any] = {
        "a": "",
        "b": "  ",
        "c": None,
        "d": [],
        "e": {},
        "f": 0,
        "g": False,
        "h": {"y": 1},
    }

    assert passage_text(record) == 'f: 0\ng: false\nh: {"y":1}'
    assert passage_text({"text": "", "_contributor": "0x1"}) == ""


# --- building an index with the real encoder ------------------------------------------------


def test_an_index_holds_one_unit_vector_per_record_embedded_in_batches(
    built: tuple[RetrievalIndex, list[tuple[int, int]]],
    minilm: Callable[[list[str]], list[list[float]]],
) -> None:
    index, calls = built

    assert index.vectors.shape == (40, 384) and index.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-5)
    assert index.passages[0] == (
        "prompt: Tell me about Paris.\n"
        "response: Paris is the capital of France; the Eiffel Tower stands on the Seine."
    )
    assert (index.model, index.version, index.dim) == (MINILM, VERSION, 384)
    assert calls == [(16, 40), (32, 40), (40, 40)]
    # batching changes nothing: one call over the first passages gives the same vectors
    whole = np.asarray(minilm(index.passages[:20]), dtype=np.float32)
    assert np.allclose(index.vectors[:20], whole, atol=1e-5)
    assert not index.vectors.flags.writeable


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is the capital of France?", "Paris is the capital of France"),
        ("Which city is the capital of Japan?", "Tokyo is the capital of Japan"),
        ("Which animal has a long neck?", "The giraffe"),
        ("What eats bamboo?", "The giant panda"),
        ("Which bird cannot fly and lives in Antarctica?", "The penguin"),
    ],
)
def test_a_question_finds_the_record_about_its_topic_first(
    built: tuple[RetrievalIndex, list[tuple[int, int]]],
    minilm: Callable[[list[str]], list[list[float]]],
    question: str,
    expected: str,
) -> None:
    index, _ = built
    (query,) = minilm([question])

    (best, score), (_, second) = index.search(query, 2)

    assert expected in index.passages[best]
    assert score > second and 0.3 < score <= 1.0 + 1e-6


def test_an_empty_dataset_version_cannot_be_indexed(
    minilm: Callable[[list[str]], list[list[float]]],
) -> None:
    blank: list[dict[str, Any]] = [{"text": "  ", "_contributor": "0x1"}, {"label": None}]
    for records in ([], blank):
        with pytest.raises(InvalidInput, match=NO_RECORDS):
            build_index(records, minilm, model=MINILM, version=VERSION)
    with pytest.raises(InvalidInput, match="batch_size must be at least 1; got 0"):
        build_index(RECORDS, minilm, model=MINILM, version=VERSION, batch_size=0)


def test_records_without_text_are_left_out_of_the_index() -> None:
    records = [{"text": "a"}, {"text": ""}, {"text": "b"}]

    index = build_index(
        records, lambda texts: [[1.0, float(len(t))] for t in texts], model="m", version="v"
    )

    assert index.passages == ["text: a", "text: b"]


def test_an_embedder_that_answers_wrongly_is_refused_with_the_passage_at_fault() -> None:
    records = [{"text": str(i)} for i in range(5)]

    def one_short(texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0]] * (len(texts) - 1)

    def zero_for_three(texts: list[str]) -> list[list[float]]:
        return [[0.0, 0.0] if t == "text: 3" else [1.0, 2.0] for t in texts]

    def growing(texts: list[str]) -> list[list[float]]:
        return [[1.0] * (2 + int(t[-1])) for t in texts]

    with pytest.raises(InvalidInput, match=r"model m: embedding 2 passages gave shape \(1, 2\)"):
        build_index(records, one_short, model="m", version="v", batch_size=2)
    with pytest.raises(InvalidInput, match="passage 3: its embedding is zero or not finite"):
        build_index(records, zero_for_three, model="m", version="v", batch_size=2)
    with pytest.raises(InvalidInput, match="vectors changed length from 2 to 3 at passage 1"):
        build_index(records, growing, model="m", version="v", batch_size=1)


# --- search ---------------------------------------------------------------------------------


def test_search_ranks_by_dot_product_with_ties_by_lower_index() -> None:
    index = hand_made([[1, 0], [0, 1], [1, 0], [0.6, 0.8], [1, 0]])

    assert index.search([1.0, 0.0], 2) == [(0, 1.0), (2, 1.0)]
    assert index.search([1.0, 0.0], 3) == [(0, 1.0), (2, 1.0), (4, 1.0)]
    assert [i for i, _ in index.search([0.0, 1.0], 2)] == [1, 3]


def test_search_cuts_k_to_the_passages_and_refuses_k_below_one() -> None:
    index = hand_made([[1, 0], [0, 1], [0.6, 0.8]])

    ranked = index.search([1.0, 0.0], 10)

    assert [i for i, _ in ranked] == [0, 2, 1]
    assert [s for _, s in ranked] == pytest.approx([1.0, 0.6, 0.0])
    for k in (0, -1):
        with pytest.raises(InvalidInput, match=f"k must be at least 1; got {k}"):
            index.search([1.0, 0.0], k)


def test_a_query_of_the_wrong_length_is_refused() -> None:
    index = hand_made([[1, 0], [0, 1]])

    with pytest.raises(InvalidInput, match=r"must have 2 numbers .*got shape \(3,\)"):
        index.search([1.0, 0.0, 0.0], 1)


@settings(deadline=None, max_examples=50)
@given(
    rows=st.integers(1, 30).flatmap(
        lambda n: st.integers(1, 5).flatmap(
            lambda d: st.tuples(
                arrays(np.int8, (n, d), elements=st.integers(-2, 2)),
                arrays(np.int8, (d,), elements=st.integers(-2, 2)),
            )
        )
    ),
    k=st.integers(1, 35),
)
def test_search_agrees_with_sorting_every_score(
    rows: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]], k: int
) -> None:
    matrix, query = rows
    matrix = matrix.astype(np.float32)
    matrix[~matrix.any(axis=1), 0] = 1.0  # a zero row has no direction
    index = RetrievalIndex([str(i) for i in range(len(matrix))], unit_rows(matrix), MINILM, VERSION)
    q = query.astype(np.float32)
    scores = index.vectors @ q  # the small integers make many exact ties

    expected = sorted(range(len(matrix)), key=lambda i: (-scores[i], i))[: min(k, len(matrix))]

    assert index.search(q, k) == [(i, float(scores[i])) for i in expected]


# --- the index's own checks -----------------------------------------------------------------


def test_an_index_refuses_vectors_that_do_not_fit_its_passages() -> None:
    unit = np.eye(2, dtype=np.float32)

    with pytest.raises(InvalidInput, match="has 3 passages but 2 vectors"):
        RetrievalIndex(["a", "b", "c"], unit, MINILM, VERSION)
    with pytest.raises(InvalidInput, match="float32 numpy array"):
        RetrievalIndex(["a", "b"], unit.astype(np.float64), MINILM, VERSION)
    with pytest.raises(InvalidInput, match="non-empty"):
        RetrievalIndex([], np.zeros((0, 2), dtype=np.float32), MINILM, VERSION)
    with pytest.raises(InvalidInput, match="vector 1 has length 2"):
        RetrievalIndex(["a", "b"], unit * np.array([[1], [2]], dtype=np.float32), MINILM, VERSION)
    with pytest.raises(InvalidInput, match="name its embedding model"):
        RetrievalIndex(["a", "b"], unit, "", VERSION)


# --- storing and loading --------------------------------------------------------------------


def test_an_index_round_trips_through_the_blob_store(
    built: tuple[RetrievalIndex, list[tuple[int, int]]], store: LocalBlobStore
) -> None:
    index, _ = built

    cid = index.to_blobs(store)
    loaded = RetrievalIndex.from_blobs(store, cid)
    document = store.get_json(cid)

    assert loaded.passages == index.passages
    assert np.array_equal(loaded.vectors, index.vectors)
    assert (loaded.model, loaded.version) == (MINILM, VERSION)
    # each passage names its record: the hashes `Anchoring.records` gave, in the same order
    assert index.records is not None and loaded.records == index.records
    assert (index.records[0], index.records[20]) == (f"{0:064x}", f"{100:064x}")
    assert RetrievalIndex.blob_cids(store, cid) == [
        document["vectors"],
        document["passages"],
        document["records"],
    ]
    assert {k: v for k, v in document.items() if k not in ("vectors", "passages", "records")} == {
        "schema": SCHEMA,
        "model": MINILM,
        "version": VERSION,
        "dim": 384,
        "count": 40,
    }
    assert store.size(document["vectors"]) == 128 + 40 * 384 * 4  # .npy header + float32s
    assert index.to_blobs(store) == cid  # the same index, the same bytes, the same CID


def test_an_index_without_record_hashes_still_loads_and_names_no_records(
    store: LocalBlobStore,
) -> None:
    # indexes stored before record hashes were kept, or built from records without them
    cid = hand_made([[1, 0], [0, 1]]).to_blobs(store)
    assert "records" not in store.get_json(cid)
    assert RetrievalIndex.from_blobs(store, cid).records is None
    assert (
        build_index([{"text": "a"}], lambda t: [[1.0, 0.0]], model="m", version="v").records is None
    )
    [found] = Retriever(store, lambda t: [[0.0, 1.0]], model=MINILM).find(cid, "q", 1)
    assert found == Passage(1, None, "passage 1", 1.0)


def test_a_corrupted_vectors_blob_is_an_integrity_error(store: LocalBlobStore) -> None:
    cid = hand_made([[1, 0], [0, 1]]).to_blobs(store)
    path = store.path_of(store.get_json(cid)["vectors"])
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(IntegrityError, match="is corrupt"):
        RetrievalIndex.from_blobs(store, cid)


def test_a_missing_index_is_not_found(store: LocalBlobStore) -> None:
    with pytest.raises(NotFound):
        RetrievalIndex.from_blobs(store, VERSION)


def npy(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "cairn.retrieval/v0"}, "its schema is 'cairn.retrieval/v0'"),
        ({"model": 3}, "'model' must be a string"),
        ({"count": 3}, r"its vectors are float32 \(2, 2\), expected float32 \(3, 2\)"),
        ({"dim": 0}, "'count' and 'dim' must be positive integers"),
        ({"count": True}, "'count' and 'dim' must be positive integers"),
        ({"vectors": "npy:float64"}, r"its vectors are float64 \(2, 2\)"),
        ({"vectors": "not-npy"}, "its vectors are not a .npy array"),
        ({"vectors": "npy:long"}, r"its vectors are float32 \(2, 3\)"),
        (
            {"vectors": "npy:double-length"},
            "a retrieval index's vectors must have length 1; vector 0 has length 2",
        ),
        ({"passages": "one"}, "expected a list of 2 passages; got 1"),
        ({"passages": "numbers"}, "a retrieval index's passages must all be strings"),
        ({"records": 3}, "'records' must be a string"),
        ({"records": "no-list"}, "its record hashes are a dict, not a list"),
        ({"records": "one"}, "a retrieval index has 2 passages but 1 record hashes"),
        ({"records": "numbers"}, "a retrieval index's record hashes must all be strings"),
    ],
)
def test_a_mismatched_document_is_refused_with_what_is_wrong(
    store: LocalBlobStore, change: dict[str, Any], message: str
) -> None:
    document = store.get_json(hand_made([[1, 0], [0, 1]]).to_blobs(store))
    blobs = {
        "npy:float64": store.put(npy(np.eye(2))),
        "not-npy": store.put(b"not an array"),
        "npy:long": store.put(npy(np.eye(2, 3, dtype=np.float32))),
        "npy:double-length": store.put(npy(np.eye(2, dtype=np.float32) * 2)),
        "one": store.put_json(["a"]),
        "numbers": store.put_json([1, 2]),
        "no-list": store.put_json({"a": 1}),
    }
    document.update({k: blobs.get(v, v) if isinstance(v, str) else v for k, v in change.items()})
    cid = store.put_json(document)

    with pytest.raises(
        InvalidInput, match=f"blob {cid} is not a usable retrieval index: {message}"
    ):
        RetrievalIndex.from_blobs(store, cid)


def test_a_blob_that_is_not_an_index_document_is_refused(store: LocalBlobStore) -> None:
    for cid in (store.put_json([1, 2]), store.put(b"\xff")):
        with pytest.raises(InvalidInput):
            RetrievalIndex.from_blobs(store, cid)


# --- the augmented chat ---------------------------------------------------------------------


def test_the_app_prompt_and_numbered_passages_lead_the_chat() -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    chat = augment_messages(messages, "You answer geography questions.", ["Paris.", "Rome."])

    assert chat == [
        {
            "role": "system",
            "content": (
                f"You answer geography questions.\n\n{PASSAGES_INTRO}\n\n[1] Paris.\n\n[2] Rome."
            ),
        },
        {"role": "user", "content": "What is the capital of France?"},
    ]


def test_the_callers_own_system_message_follows_the_app_prompt() -> None:
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Capital?"},
        {"role": "assistant", "content": "Which country?"},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "France."},
    ]
    before = [dict(m) for m in messages]

    chat = augment_messages(messages, "You answer geography.", ["Paris."])

    assert chat[0] == {
        "role": "system",
        "content": f"You answer geography.\n\nAnswer in French.\n\n{PASSAGES_INTRO}\n\n[1] Paris.",
    }
    assert chat[1:] == messages[1:]  # later system messages stay where they are
    assert messages == before  # the caller's list is not changed


@pytest.mark.parametrize(
    ("system_prompt", "passages", "content"),
    [
        ("Be kind.", [], "Be kind.\n\nOwn."),
        (None, ["P."], f"Own.\n\n{PASSAGES_INTRO}\n\n[1] P."),
        ("  ", [], "Own."),
    ],
)
def test_the_leading_system_message_holds_only_what_there_is(
    system_prompt: str | None, passages: list[str], content: str
) -> None:
    messages = [{"role": "system", "content": "Own."}, {"role": "user", "content": "Hi"}]

    chat = augment_messages(messages, system_prompt, passages)

    assert chat == [{"role": "system", "content": content}, messages[1]]


def test_with_nothing_to_add_the_chat_is_unchanged() -> None:
    messages = [{"role": "user", "content": "Hi"}]

    chat = augment_messages(messages, None, [])

    assert chat == messages and chat is not messages
    with pytest.raises(InvalidInput, match="messages must hold at least one message"):
        augment_messages([], "Be kind.", ["P."])


# --- the retriever --------------------------------------------------------------------------


def test_the_retriever_returns_the_passages_nearest_a_question(
    built: tuple[RetrievalIndex, list[tuple[int, int]]],
    minilm: Callable[[list[str]], list[list[float]]],
    store: LocalBlobStore,
) -> None:
    cid = built[0].to_blobs(store)
    retriever = Retriever(store, minilm, model=MINILM)

    passages = retriever.retrieve(cid, "What is the capital of France?", 3)

    assert len(passages) == 3 and "Paris is the capital of France" in passages[0]
    assert retriever.retrieve(cid, "Which animal has a long neck?", 100)[0].endswith(
        "The giraffe is the tallest animal, with a very long neck for eating acacia leaves."
    )
    assert len(retriever.retrieve(cid, "anything", 100)) == 40
    assert retriever.loaded() == [cid]


def test_the_retriever_is_safe_to_share_between_threads(
    built: tuple[RetrievalIndex, list[tuple[int, int]]],
    minilm: Callable[[list[str]], list[list[float]]],
    store: LocalBlobStore,
) -> None:
    cid = built[0].to_blobs(store)
    retriever = Retriever(store, minilm, model=MINILM)
    questions = ["What is the capital of France?", "What eats bamboo?"] * 4

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda q: retriever.retrieve(cid, q, 1)[0], questions))

    assert answers[0::2] == [answers[0]] * 4 and "Paris" in answers[0]
    assert answers[1::2] == [answers[1]] * 4 and "panda" in answers[1]
    assert retriever.loaded() == [cid]


def test_the_retriever_keeps_only_the_most_recently_used_indexes(store: LocalBlobStore) -> None:
    cids = [hand_made([[1, 0], [0, 1]], [f"{n}a", f"{n}b"]).to_blobs(store) for n in range(3)]
    retriever = Retriever(store, lambda texts: [[0.0, 1.0]] * len(texts), model=MINILM, capacity=2)

    assert retriever.retrieve(cids[0], "q", 1) == ["0b"]
    retriever.retrieve(cids[1], "q", 1)
    retriever.retrieve(cids[0], "q", 1)  # 0 is now the most recent
    retriever.retrieve(cids[2], "q", 1)

    assert retriever.loaded() == [cids[0], cids[2]]
    assert retriever.index(cids[0]) is retriever.index(cids[0])


def test_the_retriever_refuses_an_index_from_another_model_and_empty_questions(
    store: LocalBlobStore,
) -> None:
    cid = hand_made([[1, 0], [0, 1]]).to_blobs(store)
    lock = threading.Lock()  # a real callable with state: counts the questions embedded
    embedded: list[str] = []

    def embed(texts: list[str]) -> list[list[float]]:
        with lock:
            embedded.extend(texts)
        return [[0.0, 0.0] if t == "zero" else [1.0, 0.0] for t in texts]

    other = Retriever(store, embed, model="another-encoder")
    with pytest.raises(InvalidInput, match=f"embedded with model {MINILM}, but this retriever"):
        other.retrieve(cid, "q", 1)
    retriever = Retriever(store, embed, model=MINILM)
    with pytest.raises(InvalidInput, match="the question to retrieve passages for is empty"):
        retriever.retrieve(cid, "  ", 1)
    with pytest.raises(InvalidInput, match="the question's embedding is zero"):
        retriever.retrieve(cid, "zero", 1)
    with pytest.raises(InvalidInput, match="capacity must be at least 1"):
        Retriever(store, embed, model=MINILM, capacity=0)
    assert embedded == ["zero"] and other.loaded() == []


def test_the_retriever_names_the_record_and_score_of_each_passage(
    built: tuple[RetrievalIndex, list[tuple[int, int]]],
    minilm: Callable[[list[str]], list[list[float]]],
    store: LocalBlobStore,
) -> None:
    cid = built[0].to_blobs(store)
    retriever = Retriever(store, minilm, model=MINILM)

    found = retriever.find(cid, "What eats bamboo?", 3)

    assert [p.text for p in found] == retriever.retrieve(cid, "What eats bamboo?", 3)
    best = found[0]
    assert (best.index, best.record, best.truncated) == (24, f"{104:064x}", False)  # the panda
    assert "giant panda" in best.text and best.score > found[1].score


# --- the token cap --------------------------------------------------------------------------


def words(text: str) -> int:
    """A tokenizer whose tokens are words: easy to reason about in the tests below."""
    return len(text.split())


def found_of(*texts: str) -> list[Passage]:
    return [Passage(i, f"{i:064x}", text, 1.0 - i / 10) for i, text in enumerate(texts)]


INTRO_WORDS = words(PASSAGES_INTRO)  # 13


def test_passages_that_fit_go_in_whole_and_the_first_that_does_not_is_cut() -> None:
    second = "four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    found = found_of("one two three", second, "x y")
    # the block: the intro, then "[1] one two three" (4 words) and "[2] four ..." (13 words)
    budget = INTRO_WORDS + 4 + 1 + 8 + words(TRUNCATED)  # room for 8 words of the second

    kept = fit_passages(found, budget, words)

    assert [p.text for p in kept] == [
        "one two three",
        "four five six seven eight nine ten eleven" + TRUNCATED,
    ]
    assert words(passages_block([p.text for p in kept])) == budget
    assert [(p.index, p.record, p.truncated) for p in kept] == [
        (0, f"{0:064x}", False),
        (1, f"{1:064x}", True),  # cut, and still naming its record
    ]  # the third is not used, so not reported: it never reached the prompt
    assert fit_passages(found, 10_000, words) == found  # room for all: nothing changes


def test_a_cut_that_would_keep_too_little_leaves_the_passage_out() -> None:
    found = found_of("a b", " ".join(["w"] * 50))
    room = MIN_CUT_TOKENS - 1  # for the second passage: "[2]", its words and the mark
    budget = INTRO_WORDS + 3 + 1 + room + words(TRUNCATED)
    assert [p.text for p in fit_passages(found, budget, words)] == ["a b"]
    kept = fit_passages(found, budget + 1, words)
    assert kept[1].truncated and words(kept[1].text) == MIN_CUT_TOKENS + 1  # the mark too
    assert fit_passages(found, INTRO_WORDS, words) == []  # not even "[1]" fits


def test_text_without_spaces_is_cut_between_characters() -> None:
    def chars(text: str) -> int:
        return len(text)

    found = found_of("x" * 500)
    budget = len(passages_block(["x" * 100 + TRUNCATED]))

    [kept] = fit_passages(found, budget, chars)

    assert kept.text == "x" * 100 + TRUNCATED and kept.truncated


def test_a_budget_below_one_token_is_refused() -> None:
    with pytest.raises(InvalidInput, match="token budget must be at least 1; got 0"):
        fit_passages(found_of("a"), 0, words)


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(
        st.lists(st.sampled_from(["the", "capital", "of", "Peru", "is", "Lima", "—"]), max_size=60),
        min_size=1,
        max_size=6,
    ).map(lambda passages: [" ".join(p) or "empty" for p in passages]),
    budget=st.integers(1, 200),
)
def test_the_passages_never_exceed_the_budget_and_keep_their_order_and_records(
    texts: list[str], budget: int
) -> None:
    found = found_of(*texts)

    kept = fit_passages(found, budget, words)

    if kept:
        assert words(passages_block([p.text for p in kept])) <= budget
    assert [(p.index, p.record) for p in kept] == [(p.index, p.record) for p in found[: len(kept)]]
    for got, original in zip(kept, found, strict=False):
        if got.truncated:
            assert got is kept[-1] and got.text.endswith(TRUNCATED)
            piece = got.text.removesuffix(TRUNCATED)
            assert original.text.startswith(piece) and original.text[len(piece)] == " "
        else:
            assert got == original


def test_a_cut_falls_on_a_token_boundary_of_a_real_tokenizer(minilm_folder: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)

    def tokens(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def count(text: str) -> int:
        return len(tokens(text))

    long = passage_text(RECORDS[6]) + " " + " ".join(passage_text(r) for r in RECORDS[20:30])
    found = [Passage(0, "a", passage_text(RECORDS[0]), 0.9), Passage(6, "b", long, 0.8)]
    for budget in (64, 100, 150, 200):
        kept = fit_passages(found, budget, count)

        block = passages_block([p.text for p in kept])
        assert budget - 12 < count(block) <= budget  # filled to within a word or two
        first, cut = kept
        assert first == found[0] and cut.truncated and cut.record == "b"
        piece = cut.text.removesuffix(TRUNCATED)
        assert tokens(long)[: count(piece)] == tokens(piece)  # no token was split
