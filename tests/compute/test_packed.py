"""A round's tensors packed into one Flower array per dtype come back exactly, and a layout that
does not fit its arrays is refused (`cairn.compute.packed`)."""

from __future__ import annotations

import json

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from hypothesis import given
from hypothesis import strategies as st

from cairn.compute.packed import LAYOUT, pack, unpack
from cairn.compute.records import task_params
from cairn.core.errors import InvalidInput

DTYPES = [torch.float32, torch.int8, torch.uint8, torch.float64, torch.int64]
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3)


@st.composite
def tensor_dicts(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    names = draw(st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=8))
    out = {}
    for name in names:
        shape, dtype = draw(shapes), draw(st.sampled_from(DTYPES))
        seed = draw(st.integers(0, 2**16))
        values = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 50
        out[name] = values.to(dtype)
    return out


@given(tensor_dicts())
def test_packed_tensors_come_back_exactly_with_their_names_shapes_and_dtypes(
    tensors: dict[str, torch.Tensor],
) -> None:
    arrays, layout = pack(tensors)
    assert len(arrays) == len({t.dtype for t in tensors.values()})  # one array per dtype
    back = unpack(arrays, layout)
    assert back.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape
        assert torch.equal(back[name], tensor)


def test_a_model_is_a_few_flower_objects_not_one_per_parameter() -> None:
    params = {f"layer{i}.weight": torch.randn(8, 8) for i in range(40)}
    arrays, _ = pack(params)
    assert len(arrays) == 1
    message = Message(RecordDict({"params": arrays}), 5, "train")
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    assert len(get_all_nested_objects(message)) < 10  # was 40 arrays, 40 chunks and more


def layout_of(tensors: dict[str, torch.Tensor], edit: object) -> tuple[ArrayRecord, ConfigRecord]:
    arrays, layout = pack(tensors)
    spec = json.loads(str(layout[LAYOUT]))
    edited = edit(spec) if callable(edit) else edit
    return arrays, ConfigRecord({LAYOUT: json.dumps(edited)})


TENSORS = {"a": torch.ones(2, 3), "b": torch.zeros(4)}


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: {"float32": [["a", [2, 3]]]},  # leaves the rest unused
        lambda s: {"float32": [["a", [2, 3]], ["b", [5]]]},  # runs past the end
        lambda s: {"float32": [["a", [2, 3]], ["a", [4]]]},  # a name twice
        lambda s: {"float32": [["a", [2, -3]], ["b", [4]]]},  # a negative dimension
        lambda s: {"float32": [["a", [2, 3.0]], ["b", [4]]]},  # not an integer
        lambda s: {"float32": [["a", [2, 3]], ["b", 4]]},  # a shape that is not a list
        lambda s: {"float32": [["a", [2, 3], "x"], ["b", [4]]]},  # not [name, shape]
        lambda s: {"int8": s["float32"]},  # names an array that is not there
        lambda s: {**s, "int8": []},  # and one more
        lambda s: [],  # not an object
    ],
)
def test_a_layout_that_does_not_fit_its_arrays_is_invalid_input(edit: object) -> None:
    arrays, layout = layout_of(TENSORS, edit)
    with pytest.raises(InvalidInput):
        unpack(arrays, layout)


def test_an_array_of_another_dtype_or_shape_than_its_name_says_is_refused() -> None:
    _, layout = pack({"a": torch.ones(6)})
    with pytest.raises(InvalidInput, match="not a flat float32"):
        unpack(ArrayRecord({"float32": torch.ones(6, dtype=torch.float64)}), layout)
    with pytest.raises(InvalidInput, match="not a flat float32"):
        unpack(ArrayRecord({"float32": torch.ones(2, 3)}), layout)
    with pytest.raises(InvalidInput, match="readable layout"):
        unpack(ArrayRecord({"float32": torch.ones(6)}), ConfigRecord({LAYOUT: "{"}))


def test_a_task_message_without_its_parameters_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="no parameters"):
        task_params(RecordDict({"params": ArrayRecord({"w": torch.ones(2)})}))  # no layout
