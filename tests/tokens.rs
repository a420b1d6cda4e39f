//! Integration tests of mb-tokens (filled in by its issue).
