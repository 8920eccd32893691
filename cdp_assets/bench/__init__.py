"""Benchmarks behind `cdp bench`: each measures the project's code side by side with a reference."""
