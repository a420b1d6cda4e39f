//! Integration tests of mb-report (filled in by its issue).
