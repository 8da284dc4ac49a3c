"""Command-line front ends: argument parsing and rendering only; the work is in the library."""
