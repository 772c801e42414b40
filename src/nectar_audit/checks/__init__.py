"""One module per checklist item; each defines ``CHECK = Check(...)``. The registry lists them."""
