"""The service: the daemon's lifecycle and threads, its HTTP endpoints and API, metrics, logs."""
