"""Ray actors: the usage shards that aggregate the usage log into PostgreSQL."""
