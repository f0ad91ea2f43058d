"""The infill language server (`infill serve`): LSP protocol only; the model is reached through
``infill.infiller.Infiller`` on one worker thread, and this package never imports torch itself."""
