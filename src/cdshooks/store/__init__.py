"""Durable records: feedback (acknowledged only once committed), audit rows off the response path,
JWT replay, form launches."""
