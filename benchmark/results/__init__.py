"""The result of one job: its identity, the stored JSON and predictions, provenance and rescoring."""
