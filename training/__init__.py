"""Training pipeline: corpus, tokenizer, objective, trainer, evaluation. Imports infill, never lsp."""
