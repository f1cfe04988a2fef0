"""The label join: predictions waiting for their labels, labels waiting for predictions."""
