"""Model backends behind one interface: in process (transformers), GGUF (llama.cpp), upstream.

The gateway holds one `Backend` per way of running models and hands each request a
`ServedModel`; see `base` for the interface, which this package exports. Each backend is
imported from its own module (`cairn.serve.backends.transformers`, `.llamacpp`, `.upstream`)
when the node builds it: the transformers backend loads torch, and `LlamaCppBackend` needs the
optional `llama-cpp-python` package; a node that serves no model loads neither.
"""

from cairn.serve.backends.base import (
    OPERATIONS,
    Backend,
    Classification,
    Generation,
    SamplingParams,
    ServedModel,
)

__all__ = [
    "OPERATIONS",
    "Backend",
    "Classification",
    "Generation",
    "SamplingParams",
    "ServedModel",
]
