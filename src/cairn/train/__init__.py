"""The training domain: base models, recipe executors, evaluation and model packaging."""

# The schema of a stored model's manifest (one CID per file of its Hugging Face folder). Here,
# in a module that imports nothing, so that workers can read manifests without loading torch.
MANIFEST_SCHEMA = "cairn.model-files/v1"
