"""System containers (docs/system.md): an image installed as a systemd service run by the OCI
runtime, checked out read-only next to the store, updated and rolled back by deployments."""
