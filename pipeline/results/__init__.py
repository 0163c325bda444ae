"""Converters from test-runner output to JUnit XML."""
