"""The HTTP API: a FastAPI app served by Ray Serve (or plain uvicorn, for comparison)."""
