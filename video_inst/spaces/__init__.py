"""Model spaces: which space answers a search, and the whitened spaces derived from a base one."""
