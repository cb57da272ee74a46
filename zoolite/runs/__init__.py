"""A run: where its files live, the stages in order, resume, and where its figures come from."""
