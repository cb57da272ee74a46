"""What users run on a finished run or a model file: check, export, serve and the web page."""
