"""Model backends behind one interface: in process (transformers), GGUF (llama.cpp), upstream.

The gateway holds one `Backend` per way of running models and hands each request a
`ServedModel`; see `base` for the interface. `LlamaCppBackend` needs the optional
`llama-cpp-python` package, imported only when that backend is built.
"""

from cairn.serve.backends.base import (
    OPERATIONS,
    Backend,
    Classification,
    Generation,
    SamplingParams,
    ServedModel,
)
from cairn.serve.backends.llamacpp import LlamaCppBackend
from cairn.serve.backends.transformers import TransformersBackend
from cairn.serve.backends.upstream import UpstreamBackend

__all__ = [
    "OPERATIONS",
    "Backend",
    "Classification",
    "Generation",
    "LlamaCppBackend",
    "SamplingParams",
    "ServedModel",
    "TransformersBackend",
    "UpstreamBackend",
]
