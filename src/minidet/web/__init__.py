"""Browser apps: a small local server base (:mod:`.server`) and the scoring app (:mod:`.scoring`)."""
