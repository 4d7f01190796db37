"""Users and the JWT endpoints that authenticate them."""
