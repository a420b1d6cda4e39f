//! Integration tests of mb-activity (filled in by its issue).
