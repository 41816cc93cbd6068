"""The training domain: base models, recipe executors, evaluation and model packaging."""
