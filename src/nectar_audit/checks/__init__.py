"""One module per checklist item; each defines ``CHECK = Check(...)``, its metadata written once. ``catalog`` lists them."""
