"""Records and small utilities every stage shares (endpoint, request records, atomic files)."""
