//! mb-tokens's library module (filled in by its issue).
