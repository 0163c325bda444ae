"""Helpers the integration tests share: real servers and users, started and stopped by them."""
