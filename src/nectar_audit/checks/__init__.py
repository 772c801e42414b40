"""One module per checklist item, each defining ``CHECK = Check(...)`` (its metadata, written once); see ``catalog``."""
