"""Test doubles of the vendors, shared by the test suite and the benchmarks."""
