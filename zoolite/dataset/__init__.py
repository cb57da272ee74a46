"""The dataset stage: a folder-per-class folder scanned, split (copies kept together) and streamed."""
