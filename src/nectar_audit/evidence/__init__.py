"""Raw evidence: what a target gathers in one pass, before any interpretation."""
