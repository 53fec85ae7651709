"""The wire contract between clients and the server: typed messages, parse and validate."""
