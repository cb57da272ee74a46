"""The measurements stage: one routine measures every variant, and the statistics it reports."""
