"""Projects: what a user's images belong to."""
