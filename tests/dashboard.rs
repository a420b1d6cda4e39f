//! Integration tests of mb-dashboard (filled in by its issue).
