"""Settings per environment: `base` holds everything, the others only override."""
