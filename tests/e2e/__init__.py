"""Browser tests: rendered pages opened in headless Chromium."""
