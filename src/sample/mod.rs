//! mb-sample's library module (filled in by its issue).
