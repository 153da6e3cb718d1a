"""The control channel between the CLI and a running engine (protocol, server, client)."""
