"""Topic rules: deny and allow lists matched by keywords, regex and sentence embeddings."""
