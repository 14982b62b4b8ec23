"""End-to-end chains of the library's steps (the quickstart), each step resumable."""
