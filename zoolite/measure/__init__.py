"""The measurements stage: one routine measures every variant, its "none of these" included, and the intervals and
statistics it reports."""
