"""The audit log: one signed, hash-chained record per request, in a Redis Stream."""
