"""The stage runner and whole jobs (edit a file, filter a raw pipe)."""
