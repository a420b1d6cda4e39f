//! mb-activity's library module (filled in by its issue).
