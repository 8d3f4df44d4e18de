"""`make bench`: performance figures, each beside a baseline from the same run."""
