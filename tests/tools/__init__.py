"""Developer tools around the tests (not collected by pytest)."""
