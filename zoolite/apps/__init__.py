"""What users run on a dataset, a finished run or a model file: check, predict, evaluate, export (with its
model card), serve and the web page."""
