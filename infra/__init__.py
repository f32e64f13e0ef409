"""What the service runs on: settings, PostgreSQL schema and migrations, Redis, embedded servers, Ray."""
