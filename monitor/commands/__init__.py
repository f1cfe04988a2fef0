"""The ``driftwarden`` command and what its commands run: replay, the demo, the CLI tools."""
