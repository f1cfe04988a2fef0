"""The batch path: every model's pipeline, and the runner that takes a batch from decoding to
its commit."""
