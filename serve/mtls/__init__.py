"""mTLS for usage ingestion: the nginx config template and the code that runs it."""
