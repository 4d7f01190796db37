"""Image generation: the pipeline from a segment's prompt to a stored JPEG, and its API."""
