"""Instance tracks: regions of consecutive keyframes of one shot linked into one object."""
