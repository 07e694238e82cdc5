"""Policies the security team edits as YAML: models, loader and the generated schema.json."""
