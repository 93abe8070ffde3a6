"""One video into the catalog: plan -> analyse -> commit, the files it leaves, and re-indexing."""
