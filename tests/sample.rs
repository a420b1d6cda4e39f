//! Integration tests of mb-sample (filled in by its issue).
